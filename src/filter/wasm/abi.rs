//! The proxy-wasm host calls the filter makes, declared against the ABI directly.
//!
//! The SDK's own wrappers (`proxy_wasm::hostcalls`) `panic!` on any status they do not expect,
//! and a panic aborts the worker's VM; these wrappers turn every status into a `Result` instead.
//! The SDK is still used for what cannot fail: context dispatch and memory allocation.

use std::ptr::{null, null_mut};

pub use crate::host::{HostError, Level};

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

pub const BUFFER_HTTP_REQUEST_BODY: u32 = 0;
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
pub const MAP_HTTP_REQUEST_HEADERS: u32 = 0;
pub const MAP_HTTP_RESPONSE_HEADERS: u32 = 2;
pub const MAP_HTTP_RESPONSE_TRAILERS: u32 = 3;
pub const METRIC_COUNTER: u32 = 0;

// Same symbols as the SDK's declarations, with plain integer statuses (a status value the SDK's
// enum does not list would otherwise be undefined behaviour).
#[allow(clashing_extern_declarations)]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
}

fn status(code: u32) -> Result<(), HostError> {
    if code == OK {
        Ok(())
    } else {
        Err(HostError(code))
    }
}

/// Takes ownership of memory the host returned: the host allocated it through the module's own
/// `proxy_on_memory_allocate`, which the SDK implements with a `Vec<u8>` of exactly this size.
fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: see above: `data` is a live allocation of `size` bytes that the host handed over.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Calls a "return bytes" host function; `Ok(None)` for NOT_FOUND.
fn returned(
    call: impl FnOnce(*mut *mut u8, *mut usize) -> u32,
) -> Result<Option<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    match call(&mut data, &mut size) {
        OK => Ok(Some(owned(data, size))),
        NOT_FOUND => Ok(None),
        code => Err(HostError(code)),
    }
}

pub fn log(level: Level, message: &str) {
    // SAFETY: pointer and length describe `message`, valid for the call.
    // A failed log line has nowhere to be reported: it is dropped.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Whether Envoy would print a line at `level` (it can change at run time, through the admin
/// endpoint): lets the filter skip building a line nobody will see.
pub fn log_enabled(level: Level) -> bool {
    let mut current = 0u32;
    // SAFETY: `current` is a valid local.
    match unsafe { proxy_get_log_level(&mut current) } {
        OK => current <= level as u32,
        _ => true,
    }
}

pub fn get_buffer(buffer: u32, start: usize, max: usize) -> Result<Option<Vec<u8>>, HostError> {
    // SAFETY: the out-pointers are valid locals; the returned memory is taken over by `owned`.
    returned(|d, s| unsafe { proxy_get_buffer_bytes(buffer, start, max, d, s) })
}

pub fn set_buffer(buffer: u32, start: usize, size: usize, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointer and length describe `value`, valid for the call.
    status(unsafe { proxy_set_buffer_bytes(buffer, start, size, value.as_ptr(), value.len()) })
}

/// The whole header map in one call, in the pairs encoding (see `wire::decode_pairs`).
pub fn get_header_map(map: u32) -> Result<Vec<u8>, HostError> {
    // SAFETY: as for `get_buffer`.
    Ok(returned(|d, s| unsafe { proxy_get_header_map_pairs(map, d, s) })?.unwrap_or_default())
}

pub fn set_header(map: u32, name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: pointers and lengths describe `name` and `value`, valid for the call.
    status(unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_header(map: u32, name: &str) -> Result<(), HostError> {
    // SAFETY: the pointer and length describe `name`, valid for the call.
    status(unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) })
}

fn property_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
    let p = property_path(path);
    // SAFETY: as for `get_buffer`; `p` outlives the call.
    returned(|d, s| unsafe { proxy_get_property(p.as_ptr(), p.len(), d, s) })
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), HostError> {
    let p = property_path(path);
    // SAFETY: pointers and lengths describe `p` and `value`, valid for the call.
    status(unsafe { proxy_set_property(p.as_ptr(), p.len(), value.as_ptr(), value.len()) })
}

/// Sends a local reply. `details` shows in the access log as `%RESPONSE_CODE_DETAILS%`.
pub fn send_local_response(
    status_code: u32,
    details: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), HostError> {
    let map = serialize_map(headers);
    // SAFETY: pointers and lengths describe locals valid for the call.
    status(unsafe {
        proxy_send_local_response(
            status_code,
            details.as_ptr(),
            details.len(),
            if body.is_empty() {
                null()
            } else {
                body.as_ptr()
            },
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    })
}

pub fn define_counter(name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: pointer and length describe `name`; `id` is a valid local.
    status(unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment(metric: u32, by: u64) {
    // A counter that cannot be bumped must not fail the request: the miss is dropped.
    // SAFETY: plain integers.
    let _ = unsafe { proxy_increment_metric(metric, i64::try_from(by).unwrap_or(i64::MAX)) };
}

/// The proxy-wasm header map encoding: u32 count, (u32 name len, u32 value len) each, then
/// `name\0value\0` each.
fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        4 + pairs
            .iter()
            .map(|(k, v)| 10 + k.len() + v.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}
