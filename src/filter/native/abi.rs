//! The part of Envoy's dynamic-module C ABI (`source/extensions/dynamic_modules/abi/abi.h`,
//! version "v0.2.0", Envoy 1.40) that the filter uses, declared here: the SDK is not published.
//! The callbacks are resolved against the Envoy binary when it loads the module.
//!
//! Enums that Envoy passes in are plain integers here: a value outside a Rust enum's range would
//! be undefined behaviour.

use std::ffi::{c_char, c_void};

/// The ABI version this module is built for: the minor version of Envoy it targets.
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

pub type ConfigEnvoyPtr = *mut c_void;
pub type FilterEnvoyPtr = *mut c_void;

/// A buffer Envoy owns, valid until the current hook returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, for the rest of the current hook.
    ///
    /// # Safety
    /// `ptr` and `length` must describe memory Envoy keeps alive for `'a`.
    pub unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.length == 0 {
            return &[];
        }
        // SAFETY: per the caller's contract.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) }
    }
}

/// A buffer the module owns, for the duration of a call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr().cast::<c_char>(),
            length: bytes.len(),
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

pub type KeyValuePair = ModuleHttpHeader;

/// A header line Envoy owns (`envoy_dynamic_module_type_envoy_http_header`), valid until the
/// current hook returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl EnvoyHttpHeader {
    pub const EMPTY: EnvoyHttpHeader = EnvoyHttpHeader {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };

    /// The name and the value, for the rest of the current hook.
    ///
    /// # Safety
    /// As [`EnvoyBuffer::bytes`]: Envoy filled this header in the current hook.
    pub unsafe fn pair<'a>(self) -> (&'a [u8], &'a [u8]) {
        let key = EnvoyBuffer {
            ptr: self.key_ptr,
            length: self.key_length,
        };
        let value = EnvoyBuffer {
            ptr: self.value_ptr,
            length: self.value_length,
        };
        // SAFETY: per the caller's contract.
        unsafe { (key.bytes(), value.bytes()) }
    }
}

// envoy_dynamic_module_type_http_header_type
pub const REQUEST_HEADER: u32 = 0;
pub const RESPONSE_HEADER: u32 = 2;
pub const RESPONSE_TRAILER: u32 = 3;
// envoy_dynamic_module_type_http_body_type
pub const RECEIVED_REQUEST_BODY: u32 = 0;
pub const BUFFERED_REQUEST_BODY: u32 = 1;
// envoy_dynamic_module_type_metadata_source
pub const METADATA_ROUTE: u32 = 1;
// envoy_dynamic_module_type_attribute_id
pub const ATTRIBUTE_XDS_ROUTE_NAME: u32 = 61;
// envoy_dynamic_module_type_metrics_result
pub const METRICS_SUCCESS: u32 = 0;

// Hook statuses.
pub const HEADERS_CONTINUE: u32 = 0;
pub const HEADERS_STOP_ITERATION: u32 = 1;
pub const BODY_CONTINUE: u32 = 0;
pub const BODY_STOP_AND_BUFFER: u32 = 1;
pub const BODY_STOP_NO_BUFFER: u32 = 3;
pub const TRAILERS_CONTINUE: u32 = 0;
pub const TRAILERS_STOP_ITERATION: u32 = 1;

extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    pub fn envoy_dynamic_module_callback_log_enabled(level: u32) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    /// All the lines of a header map, in order: `get_headers_size` entries.
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: u32,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_body_size(
        filter: FilterEnvoyPtr,
        body_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter: FilterEnvoyPtr,
        body_type: u32,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter: FilterEnvoyPtr,
        body_type: u32,
        bytes: usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: FilterEnvoyPtr,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(
        filter: FilterEnvoyPtr,
        namespace: ModuleBuffer,
        entries: *const KeyValuePair,
        entries_size: usize,
    );
    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_get_metadata_keys_count(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_metadata_keys(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_number(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut f64,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_bool(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut bool,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_list_size(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_list_string(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        index: usize,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_list_number(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        index: usize,
        result: *mut f64,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_list_bool(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        index: usize,
        result: *mut bool,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_get_most_specific_route_config(
        filter: FilterEnvoyPtr,
    ) -> *const c_void;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
}
