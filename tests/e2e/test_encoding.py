"""Content-Encoding (README "How a request is decided", "Batches"): `gzip`/`x-gzip` and `deflate`
(zlib) bodies are decompressed to be judged; a body forwarded whole keeps the client's compressed
bytes, a rewritten batch is recompressed with the same encoding; the decompressed size is capped by
max_body_bytes (413); corrupt or truncated data is 400; any other encoding, or several, is 415
before the body is read. `identity` is the same as no header.

Routes in envoy/e2e.yaml: `/` (`/v1/track`, `/v1/batch`) → Analytics; `/open` → not gated.
"""

import base64
import gzip
import json
import time
import urllib.parse
import zlib

import pytest

from harness import clients
from harness.batches import (
    FILTERED,
    FORWARDED,
    MISSING,
    assert_batch_outcome,
    batch,
    compress,
    counter_delta,
    drop,
    drop_counters,
    ev,
    keep,
    refused,
)
from harness.checks import (
    ALLOW,
    INVALID,
    MISSING as MISSING_CONSENT,
    TOO_LARGE,
    Expect,
    assert_local_reply,
    assert_outcome,
    assert_untouched,
    denied,
    encode,
    sized_event,
)
from harness.clients import RawHttp1, request_head

JSON = {"content-type": "application/json"}
UNSUPPORTED = Expect(415, "UNSUPPORTED_CONTENT_ENCODING")
CONSENTED = encode(ev("s1", {"Analytics": True}, properties={"note": "x" * 300}))
REFUSED = encode(ev("s2", {"Analytics": False}, properties={"note": "x" * 300}))
NO_CONSENT = encode(ev("s3"))

ENCODINGS = ["gzip", "x-gzip", "GZIP", "deflate", "identity"]


def codec(label: str) -> str:
    return label.lower()


def post(envoy, upstream, body, headers, expect, path="/v1/track"):
    resp = clients.http1(envoy.port, "POST", path, body, headers)
    assert_outcome(resp, upstream, expect, body, path=path, sent_headers=headers)
    return resp


# ---- single events ------------------------------------------------------------------------------


@pytest.mark.parametrize("plain, expect", [
    pytest.param(CONSENTED, ALLOW, id="consented"),
    pytest.param(REFUSED, denied("Analytics"), id="refused"),
    pytest.param(NO_CONSENT, MISSING_CONSENT, id="no-consent"),
])
@pytest.mark.parametrize("label", ENCODINGS)
def test_single_event(gate, upstream, label, plain, expect):
    """Allowed: the upstream gets the client's exact compressed bytes and content-encoding."""
    body = compress(codec(label), plain)
    assert label == "identity" or body != plain
    post(gate, upstream, body, {**JSON, "content-encoding": label}, expect)


def test_gzip_over_http2_and_chunked(gate, upstream):
    body = gzip.compress(CONSENTED)
    headers = {**JSON, "content-encoding": "gzip"}
    resp = clients.http2(gate.port, "POST", "/v1/track", headers=headers, frames=[body[:20], body[20:]])
    assert_outcome(resp, upstream, ALLOW, body, path="/v1/track", sent_headers=headers)
    upstream.reset()
    resp = clients.http1(gate.port, "POST", "/v1/track", headers=headers,
                         chunks=[body[:10], body[10:60], body[60:]], chunk_delay=0.01)
    assert_outcome(resp, upstream, ALLOW, body, path="/v1/track", sent_headers=headers)
    upstream.reset()
    refused_body = gzip.compress(REFUSED)
    resp = clients.http1(gate.port, "POST", "/v1/track", headers=headers,
                         chunks=[refused_body[:30], refused_body[30:]], chunk_delay=0.01)
    assert_outcome(resp, upstream, denied("Analytics"), refused_body)


@pytest.mark.parametrize("plain, expect", [
    pytest.param(CONSENTED, ALLOW, id="consented"),
    pytest.param(REFUSED, denied("Analytics"), id="refused"),
])
def test_gzip_in_two_members_is_one_body(gate, upstream, plain, expect):
    """Two gzip members, the event split between them: judged as the whole event."""
    body = gzip.compress(plain[:70]) + gzip.compress(plain[70:])
    post(gate, upstream, body, {**JSON, "content-encoding": "gzip"}, expect)


# ---- batches ------------------------------------------------------------------------------------

MIXED = batch(
    keep(ev("b1", {"Analytics": True})),
    drop(FILTERED, ev("b2", {"Analytics": False})),
    drop(MISSING, ev("b3")),
    keep(ev("b4", {"Analytics": True}, name="Caf\u00e9")),
)
ALL_ALLOWED = batch(keep(ev("a1", {"Analytics": True})), keep(ev("a2")), top_consent={"Analytics": True})
ALL_DENIED = batch(drop(FILTERED, ev("d1", {"Analytics": False})), drop(MISSING, ev("d2")))


@pytest.mark.parametrize("b, expect", [
    pytest.param(MIXED, FORWARDED, id="mixed-rewritten-and-recompressed"),
    pytest.param(ALL_ALLOWED, FORWARDED, id="all-allowed-client-bytes"),
    pytest.param(ALL_DENIED, refused(403, FILTERED, "Analytics"), id="all-denied"),
])
@pytest.mark.parametrize("label", ENCODINGS)
def test_batch(gate, upstream, label, b, expect):
    """A rewritten body decompresses (same encoding, content-encoding kept) to exactly the kept
    items in the client's bytes, with a content-length equal to the recompressed length."""
    body = compress(codec(label), b.body)
    headers = {**JSON, "content-encoding": label}
    before = drop_counters(gate)
    resp = clients.http1(gate.port, "POST", "/v1/batch", body, headers)
    req = assert_batch_outcome(resp, upstream, b, expect, sent=body, encoding=label, path="/v1/batch",
                               sent_headers=headers)
    if req is not None and b.dropped and label != "identity":
        assert req.body != compress(codec(label), b.body)
    want = dict(b.dropped_by_reason, batch_items_seen=len(b.items))
    assert counter_delta(before, drop_counters(gate)) == want


@pytest.mark.parametrize("transport", ["h2", "h1-chunked"])
def test_gzip_batch_rewritten_over(gate, upstream, transport):
    body = gzip.compress(MIXED.body)
    headers = {**JSON, "content-encoding": "gzip"}
    if transport == "h2":
        resp = clients.http2(gate.port, "POST", "/v1/batch", headers=headers,
                             frames=[body[:40], body[40:100], body[100:]])
    else:
        resp = clients.http1(gate.port, "POST", "/v1/batch", headers=headers,
                             chunks=[body[:40], body[40:100], body[100:]], chunk_delay=0.01)
    assert_batch_outcome(resp, upstream, MIXED, FORWARDED, sent=body, encoding="gzip", path="/v1/batch",
                         sent_headers=headers)


def test_gzip_batch_in_reject_mode_is_refused(envoys, upstream):
    rejecting = envoys.get("batch_reject")
    body = gzip.compress(MIXED.body)
    resp = clients.http1(rejecting.port, "POST", "/v1/batch", body, {**JSON, "content-encoding": "gzip"})
    assert_batch_outcome(resp, upstream, MIXED, refused(403, FILTERED, "Analytics"), sent=body)


# ---- decompression bombs: the cap applies to the decompressed size ------------------------------

BOMB_PLAIN = b'{"batch":[' + b" " * (8 << 20) + b"]}"  # 8 MiB of white space: valid JSON


@pytest.mark.parametrize("label", ["gzip", "deflate"])
def test_bomb_is_413(gate, upstream, label):
    body = compress(label, BOMB_PLAIN)
    assert len(body) < 20_000
    before = drop_counters(gate)
    resp = clients.http1(gate.port, "POST", "/v1/batch", body, {**JSON, "content-encoding": label})
    assert_outcome(resp, upstream, TOO_LARGE, body)
    assert counter_delta(before, drop_counters(gate)) == {"BODY_TOO_LARGE": 1}


def test_chunked_gzip_bomb_is_413(gate, upstream):
    body = gzip.compress(BOMB_PLAIN)
    resp = clients.http1(gate.port, "POST", "/v1/batch", headers={**JSON, "content-encoding": "gzip"},
                         chunks=[body[:1000], body[1000:]], chunk_delay=0.01)
    assert_outcome(resp, upstream, TOO_LARGE, body)


@pytest.mark.parametrize("size, expect", [
    pytest.param(1024, ALLOW, id="decompresses-to-the-limit"),
    pytest.param(1025, TOO_LARGE, id="decompresses-one-byte-over"),
    pytest.param(50_000, TOO_LARGE, id="decompresses-far-over"),
])
@pytest.mark.parametrize("label", ["gzip", "deflate"])
def test_decompressed_size_limit(small, upstream, label, size, expect):
    body = compress(label, sized_event(size, {"Analytics": True}))
    assert len(body) < 1024, "the compressed body alone must be under the limit"
    post(small, upstream, body, {**JSON, "content-encoding": label}, expect)


def test_batch_bomb_on_small_limit(small, upstream):
    plain = MIXED.body[:-1] + b',"pad":"' + b"x" * 2000 + b'"}'
    body = gzip.compress(plain)
    assert len(body) < 1024
    resp = clients.http1(small.port, "POST", "/v1/batch", body, {**JSON, "content-encoding": "gzip"})
    assert_outcome(resp, upstream, TOO_LARGE, body)


# ---- corrupt compressed data: 400 ---------------------------------------------------------------

GZ = gzip.compress(CONSENTED)
Z = zlib.compress(CONSENTED)


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


def gzip_member(data: bytes, *, flags: int = 0, mtime: bytes = b"\0\0\0\0", extra: bytes = b"",
                name: bytes = b"", comment: bytes = b"", hcrc: bool = False, method: int = 8) -> bytes:
    """One gzip member (RFC 1952) with the optional header fields a client may set."""
    if extra:
        flags |= 4
    if name:
        flags |= 8
    if comment:
        flags |= 16
    if hcrc:
        flags |= 2
    header = bytes([0x1F, 0x8B, method, flags]) + mtime + b"\0\x03"
    if extra:
        header += len(extra).to_bytes(2, "little") + extra
    if name:
        header += name + b"\0"
    if comment:
        header += comment + b"\0"
    if hcrc:
        header += (zlib.crc32(header) & 0xFFFF).to_bytes(2, "little")
    c = zlib.compressobj(wbits=-15)
    return (header + c.compress(data) + c.flush() + zlib.crc32(data).to_bytes(4, "little")
            + (len(data) & 0xFFFFFFFF).to_bytes(4, "little"))


@pytest.mark.parametrize("body", [
    pytest.param(gzip_member(CONSENTED), id="plain-header"),
    pytest.param(gzip_member(CONSENTED, mtime=b"\x01\x02\x03\x04"), id="with-mtime"),
    pytest.param(gzip_member(CONSENTED, name=b"event.json"), id="with-file-name"),
    pytest.param(gzip_member(CONSENTED, comment=b"made by hand"), id="with-comment"),
    pytest.param(gzip_member(CONSENTED, extra=b"AB\x02\x00xy"), id="with-extra-field"),
    pytest.param(gzip_member(CONSENTED, extra=b"AB\x02\x00xy", name=b"e.json", comment=b"c", hcrc=True),
                 id="with-every-optional-field"),
])
def test_gzip_header_fields_are_read(gate, upstream, body):
    """Optional gzip header fields (as the gzip tool and other libraries write them) are skipped
    correctly: the event is judged and forwarded with the client's bytes."""
    assert gzip.decompress(body) == CONSENTED
    post(gate, upstream, body, {**JSON, "content-encoding": "gzip"}, ALLOW)
    upstream.reset()
    refused_body = gzip_member(REFUSED, name=b"event.json", comment=b"c", hcrc=True)
    post(gate, upstream, refused_body, {**JSON, "content-encoding": "gzip"}, denied("Analytics"))


CORRUPT = [
    pytest.param("gzip", gzip_member(CONSENTED, flags=0x20), id="gzip-reserved-flag-bit"),
    pytest.param("gzip", gzip_member(CONSENTED, method=7), id="gzip-method-not-deflate"),
    pytest.param("gzip", gzip_member(CONSENTED, name=b"x")[:12], id="gzip-name-not-terminated"),
    pytest.param("gzip", gzip_member(CONSENTED, extra=b"abcd")[:13], id="gzip-extra-field-cut"),
    pytest.param("gzip", GZ + b"\0" * 8, id="gzip-trailing-zeros"),
    pytest.param("gzip", GZ[:-8], id="gzip-without-trailer"),
    pytest.param("gzip", GZ[:-1], id="gzip-missing-last-byte"),
    pytest.param("gzip", GZ[: len(GZ) // 2], id="gzip-cut-in-half"),
    pytest.param("gzip", GZ[:10], id="gzip-header-only"),
    pytest.param("gzip", flip(GZ, len(GZ) - 6), id="gzip-bad-crc"),
    # zlib, Go and flate2 refuse a wrong header CRC (Python's gzip module skips it): a fuzz finding.
    pytest.param("gzip", flip(gzip_member(CONSENTED, hcrc=True), 10), id="gzip-bad-header-crc"),
    pytest.param("gzip", flip(GZ, len(GZ) - 2), id="gzip-bad-length"),
    pytest.param("gzip", GZ + b"trailing", id="gzip-trailing-bytes"),
    pytest.param("gzip", b"\x1f\x8b garbage that is not gzip", id="gzip-garbage"),
    pytest.param("gzip", CONSENTED, id="gzip-label-on-plain-json"),
    pytest.param("gzip", Z, id="gzip-label-on-zlib"),
    pytest.param("gzip", gzip.compress(b'{"type":"track", oops'), id="gzip-of-invalid-json"),
    pytest.param("gzip", gzip.compress(b'{"type":"track","event":"\xff"}'), id="gzip-of-invalid-utf8"),
    pytest.param("deflate", Z[:-4], id="deflate-without-checksum"),
    pytest.param("deflate", Z[: len(Z) // 2], id="deflate-cut-in-half"),
    pytest.param("deflate", flip(Z, len(Z) - 1), id="deflate-bad-checksum"),
    pytest.param("deflate", Z + b"x", id="deflate-trailing-bytes"),
    pytest.param("deflate", CONSENTED, id="deflate-label-on-plain-json"),
    pytest.param("deflate", GZ, id="deflate-label-on-gzip"),
    pytest.param("deflate", raw_deflate(CONSENTED), id="deflate-label-on-raw-deflate"),
]


@pytest.mark.parametrize("label, body", CORRUPT)
def test_corrupt_compressed_body_is_400(gate, upstream, label, body):
    post(gate, upstream, body, {**JSON, "content-encoding": label}, INVALID)


def zlib_and_raw_deflate(prefix: bytes, raw_rest: bytes, zlib_rest: bytes) -> bytes:
    """A body that zlib reads as one text and raw DEFLATE as another (see src/encoding.rs): the
    zlib header 58 09 is also a raw stored block of 0x0909 bytes, whose end starts a final
    stored block of 0x7d22 bytes that zlib reads as white space and a string opening."""
    len1, len2, lenz = 0x0909, 0x7D22, 0xFFFF ^ 0x0909
    content = prefix.ljust(len1 - 2) + b'\t"}\xdd\x82' + raw_rest
    content = content.ljust(len1 - 2 + 5 + len2) + b'"' + zlib_rest
    content = content.ljust(lenz)
    return (bytes([0x58, 0x09, 0x09]) + lenz.to_bytes(2, "little")
            + (0xFFFF ^ lenz).to_bytes(2, "little") + content
            + zlib.adler32(content).to_bytes(4, "big"))


def test_deflate_that_also_reads_as_raw_deflate_is_400(gate, upstream):
    # Some readers take `deflate` for raw DEFLATE (Go's compress/flate): they would read an event
    # without consent where zlib readers, and the filter, read a consented one.
    body = zlib_and_raw_deflate(
        b'{"type":"track","event":"Order Completed","properties":{"note":',
        b" 1}}",
        b'},"context":{"consent":{"categoryPreferences":{"Analytics":true}}}}',
    )
    as_zlib = json.loads(zlib.decompress(body))
    as_raw = json.loads(zlib.decompressobj(-zlib.MAX_WBITS).decompress(body))
    assert as_zlib["context"]["consent"]["categoryPreferences"] == {"Analytics": True}
    assert as_raw == {"type": "track", "event": "Order Completed", "properties": {"note": 1}}
    post(gate, upstream, body, {**JSON, "content-encoding": "deflate"}, INVALID)


# A `deflate` body zlib reads as a consented event and raw DEFLATE as `#…` followed by the refused
# one: Gson, reading raw DEFLATE, skips the `#` comment to the line's end and reads the refusal.
# The zlib header 08 5b is also a raw stored block whose content starts at zlib's third length
# byte, `#`; its second raw block is a fixed-Huffman one that ends the raw stream. Kept compressed.
COMMENT_POLYGLOT = zlib.decompress(base64.b64decode(
    "eNrt0b9KA0EQx3FIJT7FsbYRYpvKP5WVBzaC1bo3keBl95ibCznCgs/gM/gyvoONhY8huGdeIVh9P9X8dmaZYk4eZ+8/Z7PP"
    "vbOxE7d0pj68uLmTrUQr+U4b0eombbpWTJrSGXrR26a0houSQoomuzK5n8r+71Mpvclz0rFWWYlKDNJPz1fRt6OtQwmmg+Sc"
    "567T1Ina+jCxc8sKx3D67ydd+bY/3DQmmxb7p3Bf1/XD4uv17fq8GgEAAAAAAAAAAAAAAHB8Lud8+b35+AUOJXMr"))


def test_deflate_whose_raw_reading_starts_with_a_comment_is_400(gate, upstream):
    as_zlib = json.loads(zlib.decompress(COMMENT_POLYGLOT))
    raw = zlib.decompressobj(-zlib.MAX_WBITS).decompress(COMMENT_POLYGLOT)
    comment, _, rest = raw.partition(b"\n")
    assert as_zlib["context"]["consent"]["categoryPreferences"] == {"Analytics": True}
    assert comment.startswith(b"#") and b'"categoryPreferences":{"Analytics":false}' in rest
    post(gate, upstream, COMMENT_POLYGLOT, {**JSON, "content-encoding": "deflate"}, INVALID)


def test_truncated_gzip_batch_is_400(gate, upstream):
    body = gzip.compress(MIXED.body)[:-8]
    post(gate, upstream, body, {**JSON, "content-encoding": "gzip"}, INVALID, path="/v1/batch")


# ---- encodings the filter cannot judge: 415, nothing read, nothing forwarded --------------------

UNSUPPORTED_ROWS = [
    pytest.param("br", CONSENTED, id="br"),
    pytest.param("zstd", CONSENTED, id="zstd"),
    pytest.param("compress", CONSENTED, id="compress"),
    pytest.param("unknown", CONSENTED, id="unknown"),
    pytest.param("gzip, gzip", gzip.compress(gzip.compress(CONSENTED)), id="gzip-gzip"),
    pytest.param("gzip,gzip", gzip.compress(gzip.compress(CONSENTED)), id="gzip-gzip-no-space"),
    pytest.param("deflate, gzip", gzip.compress(zlib.compress(CONSENTED)), id="deflate-gzip"),
    pytest.param("identity, gzip", GZ, id="identity-gzip"),
    pytest.param("gzip, identity", GZ, id="gzip-identity"),
    pytest.param("gzip, br", GZ, id="gzip-br"),
    pytest.param("gzip;q=1", GZ, id="gzip-with-parameter"),
    pytest.param("gzip,", GZ, id="gzip-trailing-comma"),
]


@pytest.mark.parametrize("label, body", UNSUPPORTED_ROWS)
def test_unsupported_encoding_is_415(gate, upstream, label, body):
    before = drop_counters(gate)
    post(gate, upstream, body, {**JSON, "content-encoding": label}, UNSUPPORTED)
    assert counter_delta(before, drop_counters(gate)) == {"UNSUPPORTED_CONTENT_ENCODING": 1}


@pytest.mark.parametrize("label", ["br", "gzip, gzip"])
def test_unsupported_encoding_batch_over_http2_is_415(gate, upstream, label):
    body = encode({"batch": [ev("h1", {"Analytics": True})]})
    resp = clients.http2(gate.port, "POST", "/v1/batch", body, {**JSON, "content-encoding": label})
    assert_outcome(resp, upstream, UNSUPPORTED, body)


@pytest.mark.parametrize("lines, body", [
    pytest.param(["gzip", "gzip"], gzip.compress(gzip.compress(CONSENTED)), id="gzip-twice"),
    pytest.param(["gzip", "identity"], GZ, id="gzip-then-identity"),
    pytest.param(["identity", "gzip"], GZ, id="identity-then-gzip"),
    pytest.param(["identity", "identity"], CONSENTED, id="identity-twice"),
])
def test_content_encoding_header_given_twice_is_415(gate, upstream, lines, body):
    """Two content-encoding header lines are two stacked codings (RFC 9110 8.4)."""
    headers = "".join(f"content-encoding: {v}\r\n" for v in lines).encode()
    head = request_head("POST", "/v1/track", {**JSON, "content-length": str(len(body))})
    with RawHttp1(gate.port) as conn:
        conn.send(head[:-2] + headers + b"\r\n" + body)
        resp = conn.read_response()
    assert_local_reply(resp, 415, "UNSUPPORTED_CONTENT_ENCODING")
    assert_untouched(upstream)


# Readers that honour the content-type's charset (Express's body-parser, aiohttp's
# request.json()) read other text from the same bytes: in UTF-7, `+ACI-` is a quote, so what the
# filter reads as a string is a second, refusing `Analytics` key to them.
UTF7_BODY = (b'{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":'
             b'{"categoryPreferences":{"Analytics":true,"x":"+ACIALAAiAEEAbgBhAGwAeQB0AGkAYwBzACIAOgBm'
             b'AGEAbABzAGUALAAiAHkAIgA6ACI-"}}}}')


@pytest.mark.parametrize("content_type, expect", [
    pytest.param("application/json; charset=utf-7", UNSUPPORTED, id="utf-7"),
    pytest.param("application/json; charset=ISO-8859-1", UNSUPPORTED, id="latin-1"),
    pytest.param('application/json; charset="utf-7"', UNSUPPORTED, id="quoted-utf-7"),
    pytest.param("text/plain; charset=UTF-8", ALLOW, id="utf-8"),
    pytest.param("application/json", ALLOW, id="no-charset"),
])
def test_charset_other_than_utf_8_is_415(gate, upstream, content_type, expect):
    prefs = json.loads(UTF7_BODY.decode("utf-7"))["context"]["consent"]["categoryPreferences"]
    assert prefs["Analytics"] is False  # as a UTF-7 reader sees it: the later key wins
    assert json.loads(UTF7_BODY)["context"]["consent"]["categoryPreferences"]["Analytics"] is True
    post(gate, upstream, UTF7_BODY, {"content-type": content_type}, expect)


def test_content_type_given_twice_is_415(gate, upstream):
    head = request_head("POST", "/v1/track", {"content-length": str(len(CONSENTED))})
    lines = b"content-type: application/json\r\ncontent-type: application/json; charset=utf-7\r\n"
    with RawHttp1(gate.port) as conn:
        conn.send(head[:-2] + lines + b"\r\n" + CONSENTED)
        resp = conn.read_response()
    assert_local_reply(resp, 415, "UNSUPPORTED_CONTENT_ENCODING")
    assert_untouched(upstream)



@pytest.mark.parametrize("alias", [
    pytest.param({"content_type": "application/json; charset=utf-7"}, id="content_type"),
    pytest.param({"content_encoding": "gzip"}, id="content_encoding"),
])
def test_a_header_named_with_an_underscore_is_that_header_too(gate, upstream, alias):
    """CGI, WSGI, PHP and Rack read `Content_Type` as `HTTP_CONTENT_TYPE`, as they read
    `Content-Type` (Envoy forwards such names by default): one more line of that header."""
    headers = {**JSON, **alias}
    if "content_encoding" in alias:
        headers["content-encoding"] = "identity"
    post(gate, upstream, CONSENTED, headers, UNSUPPORTED)


def test_unsupported_encoding_is_refused_before_the_body_arrives(gate, upstream):
    with RawHttp1(gate.port) as conn:
        conn.send(request_head("POST", "/v1/batch", {**JSON, "content-encoding": "br",
                                                     "content-length": "100000"}))
        start = time.monotonic()
        resp = conn.read_response(timeout=3)
    assert time.monotonic() - start < 2
    assert_local_reply(resp, 415, "UNSUPPORTED_CONTENT_ENCODING")
    assert_untouched(upstream)


def test_unsupported_encoding_on_an_ungated_route_passes(gate, upstream):
    body = b"\x00 opaque brotli bytes"
    post(gate, upstream, body, {"content-type": "application/json", "content-encoding": "br"}, ALLOW,
         path="/open/v1/batch")


# A body declared a form: Express's urlencoded(), Go's ParseForm, Flask's request.form, PHP and Rack read
# its `&`-separated fields, not its JSON. A consented event whose string hides
# `&type=identify&userId=…&traits[email]=…` is, to them, an identify with an email and no
# consent.
FORM = {"content-type": "application/x-www-form-urlencoded"}
HIDING = encode(ev("f1", {"Analytics": True},
                   properties={"p": "&type=identify&userId=u1&traits[email]=jane@example.com&z="}))


def test_a_form_body_hiding_event_fields_is_refused(gate, upstream):
    form = urllib.parse.parse_qs(HIDING.decode(), keep_blank_values=True)
    assert form["type"] == ["identify"] and form["traits[email]"] == ["jane@example.com"]
    post(gate, upstream, HIDING, FORM, INVALID)
    post(gate, upstream, HIDING, {"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
         INVALID)
    # Declared JSON, it is the consented event to every reader.
    post(gate, upstream, HIDING, JSON, ALLOW)


# Django's MultiPartParser (Django REST framework's default) finds its boundary anywhere in the
# body, mid-line inside a JSON string too, and skips header lines it cannot read; the blank line
# a part needs sits in JSON's white space. This allow-listed consent event is, to it, an
# `Order Completed` with an email trait.
MULTIPART = (b'{"type":"track","event":"Consent Change","userId":"u1","properties":{"--zzContent-Disposition: '
             b'form-data; name=event; x=":\r\n\r\n"Order Completed--zzContent-Disposition: form-data; '
             b'name=traits.email; x=","p":\r\n\r\n"alice@example.com--zz"}}')


def test_a_body_declared_multipart_is_refused(gate, upstream):
    json.loads(MULTIPART)  # valid JSON: the filter would read it as the allow-listed event
    for media in ("multipart/form-data; boundary=zz", "Multipart/Form-Data; boundary=zz",
                  "multipart/mixed; boundary=zz"):
        post(gate, upstream, MULTIPART, {"content-type": media}, INVALID)
    post(gate, upstream, MULTIPART, JSON, ALLOW)


def test_a_body_some_receiver_reads_as_a_form_is_held_to_the_form_rule(gate, upstream):
    """PHP cuts the media type at white space or `,` as well as `;`; Rack reads a POST with no
    media type as a form. Field names are also read as a Ruby or Python receiver names them."""
    for headers in ({"content-type": "application/x-www-form-urlencoded x"},
                    {"content-type": "application/x-www-form-urlencoded\tjson"},
                    # Fastify's form parser matches the media type by substring.
                    {"content-type": "application/x-www-form-urlencoded-x"},
                    {"content-type": ""},
                    {}):
        post(gate, upstream, HIDING, headers, INVALID)
    for names in ("&user_id=u1&anonymous_id=a", "&user.id=u1", "&[type]=identify",
                  "&%22type=identify"):
        spelled = encode(ev("f3", {"Analytics": True}, properties={"p": names}))
        post(gate, upstream, spelled, FORM, INVALID)
    # With no media type, a consented event whose strings hold no field name passes.
    body = encode(ev("f4", {"Analytics": True}, properties={"url": "https://shop.example/?a=1&b=2"}))
    post(gate, upstream, body, {}, ALLOW)


def test_a_json_body_declared_a_form_passes_without_hidden_fields(gate, upstream):
    """RudderStack's Node client declares its JSON batches a form: they still pass when their
    strings hold no event field a form reader could take."""
    body = encode(ev("f2", {"Analytics": True}, properties={"url": "https://shop.example/?a=1&b=2"}))
    post(gate, upstream, body, FORM, ALLOW)
