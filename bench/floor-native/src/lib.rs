//! The native floor for `make bench`: an Envoy dynamic module (Envoy 1.40, ABI "v0.2.0") that
//! holds every request until its body is complete and then lets it go, reading nothing. Whatever
//! consent-gate's dynamic module costs above this is its own work; this much is the price of any
//! body-inspecting dynamic module in Envoy.
//!
//! Only the ABI items it needs are declared (copied from consent-gate's
//! `src/filter/native/abi.rs`); it exports every hook Envoy 1.40 requires a module to have. It
//! runs inside Envoy's process, so no hook lets a panic unwind into Envoy.
//!
//! It is also the "other module" of an end-to-end test: its per-route configuration (two `1`s,
//! which read as consent-gate's would say `exempt: true`) put under consent-gate's filter name
//! must be refused by consent-gate, not read as its own.

use std::ffi::{c_char, c_void};
use std::panic::catch_unwind;

/// The ABI version this module is built for: the minor version of Envoy it targets.
const ABI_VERSION: &[u8] = b"v0.2.0\0";

type ConfigEnvoyPtr = *mut c_void;
type FilterEnvoyPtr = *mut c_void;

/// A buffer Envoy owns, valid until the current hook returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

// Hook statuses.
const HEADERS_CONTINUE: u32 = 0;
const HEADERS_STOP_ITERATION: u32 = 1;
const BODY_CONTINUE: u32 = 0;
const BODY_STOP_AND_BUFFER: u32 = 1;
const TRAILERS_CONTINUE: u32 = 0;

/// What `config_new` and `filter_new` hand back: Envoy wants a non-null pointer, the floor has no
/// state. Never written, never freed.
static NO_STATE: u8 = 0;

fn no_state() -> *const c_void {
    std::ptr::addr_of!(NO_STATE).cast::<c_void>()
}

/// Runs a hook with panics caught: a panic gives `fallback` instead of unwinding into Envoy.
#[inline(always)]
fn guarded<T>(fallback: T, hook: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    catch_unwind(hook).unwrap_or(fallback)
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr().cast::<c_char>()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config_envoy: ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    guarded(std::ptr::null(), no_state)
}

/// Nothing to free (and nothing that can panic).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_config: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    _config: *const c_void,
    _filter_envoy: FilterEnvoyPtr,
) -> *const c_void {
    guarded(std::ptr::null(), no_state)
}

/// Nothing to free (and nothing that can panic).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_filter: *const c_void) {}

/// Headers are held until the body is complete (released with it), unless there is no body.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    end_of_stream: bool,
) -> u32 {
    guarded(HEADERS_STOP_ITERATION, || {
        if end_of_stream {
            HEADERS_CONTINUE
        } else {
            HEADERS_STOP_ITERATION
        }
    })
}

/// The body is buffered until its end, then headers and body go on together.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    end_of_stream: bool,
) -> u32 {
    guarded(BODY_STOP_AND_BUFFER, || {
        if end_of_stream {
            BODY_CONTINUE
        } else {
            BODY_STOP_AND_BUFFER
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) -> u32 {
    guarded(TRAILERS_CONTINUE, || TRAILERS_CONTINUE)
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    guarded(HEADERS_CONTINUE, || HEADERS_CONTINUE)
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    guarded(BODY_CONTINUE, || BODY_CONTINUE)
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) -> u32 {
    guarded(TRAILERS_CONTINUE, || TRAILERS_CONTINUE)
}

// Hooks Envoy 1.40 requires every module to export; the floor has no use for them (their bodies
// are empty: nothing in them can panic).

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *mut c_void,
    _headers_size: usize,
    _body_chunks: *mut c_void,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _headers: *mut c_void,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _data: *const c_void,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _trailers: *mut c_void,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}

/// A per-route configuration of this module: what it holds does not matter here.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    guarded(std::ptr::null(), || {
        Box::into_raw(Box::new([1u64, 1u64]))
            .cast::<c_void>()
            .cast_const()
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    config: *const c_void,
) {
    if !config.is_null() {
        // SAFETY: made by Box::into_raw in per_route_config_new; destroyed once.
        let _ =
            catch_unwind(|| drop(unsafe { Box::from_raw(config.cast::<[u64; 2]>().cast_mut()) }));
    }
}
