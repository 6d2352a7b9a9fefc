-- The Lua baseline for the consent-gate benchmark: buffer the whole body, then one plain
-- (non-pattern) string search for the consent flag. It parses no JSON, so it is easily fooled
-- (white space, a "true" elsewhere, batch items): it is the speed to beat, not an equivalent.
function envoy_on_request(request_handle)
  local body = request_handle:body()
  if body ~= nil then
    local text = body:getBytes(0, body:length())
    if string.find(text, '"Advertising":true', 1, true) ~= nil then
      return
    end
  end
  request_handle:respond({[":status"] = "403", ["content-type"] = "text/plain"}, "no consent\n")
end
