//! The Envoy dynamic-module adapter (`dist/libconsent_gate.so`): the hooks Envoy 1.40 calls, each
//! driving the shared [`Lifecycle`] through [`host::NativeHost`].
//!
//! The module runs inside Envoy's own process, so nothing may unwind into Envoy: every hook
//! catches a panic, refuses the request (`500 INTERNAL_ERROR`, never forwarded) and keeps
//! refusing what is left of it.

mod abi;
mod host;

use std::collections::BTreeSet;
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::RwLock;

use abi::{EnvoyBuffer, FilterEnvoyPtr};
use host::{Counters, NativeHost};

use crate::config::Config;
use crate::decision::{Judgement, Reason};
use crate::host::Level;
use crate::lifecycle::{Flow, Lifecycle, REASON_HEADER};
use crate::policy::{Match, RouteSetting};
use crate::reply;

/// The plugin configuration, shared read-only by every worker.
pub struct FilterConfig {
    config: Config,
    counters: Counters,
    /// The likeliest misspellings of the metadata namespace, looked for on routes without it.
    namespace_misspellings: Vec<String>,
}

/// A route's `DynamicModuleFilterPerRoute` configuration, parsed once when Envoy loads the
/// routes. The plugin's `match` applies where the route gives none, so both readings are kept.
pub struct PerRoute {
    match_all: RouteSetting,
    match_any: RouteSetting,
}

impl PerRoute {
    fn setting(&self, default_match: Match) -> &RouteSetting {
        match default_match {
            Match::All => &self.match_all,
            Match::Any => &self.match_any,
        }
    }

    /// The configuration at `ptr`, if this module made it. Envoy hands the filter the most
    /// specific per-route configuration under the filter's name whichever dynamic module made
    /// it (a `DynamicModuleFilterPerRoute` naming another module under the `consent_gate` key):
    /// read as ours, another module's object crashed Envoy or read as `exempt: true`.
    pub fn made_here<'a>(ptr: *const c_void) -> Option<&'a PerRoute> {
        let made = MADE_PER_ROUTE.read().unwrap_or_else(|e| e.into_inner());
        // SAFETY: a pointer in the set is a live PerRoute made by per_route_config_new (taken
        // out of the set before it is destroyed), alive while the route is.
        made.contains(&(ptr as usize))
            .then(|| unsafe { &*ptr.cast::<PerRoute>() })
    }
}

/// The per-route configurations this module made and Envoy has not destroyed.
static MADE_PER_ROUTE: RwLock<BTreeSet<usize>> = RwLock::new(BTreeSet::new());

/// One request.
struct Filter {
    config: *const FilterConfig,
    lifecycle: Lifecycle,
    route_name: Option<String>,
    /// A hook panicked: the request was refused, and everything left of it is held.
    failed: bool,
}

fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// The bytes of a buffer Envoy hands to a hook.
fn bytes<'a>(buffer: EnvoyBuffer) -> &'a [u8] {
    // SAFETY: Envoy keeps hook arguments alive until the hook returns; callers copy what they
    // keep.
    unsafe { buffer.bytes() }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr().cast::<c_char>()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: abi::ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let made = catch_unwind(AssertUnwindSafe(|| {
        let parsed = std::str::from_utf8(bytes(config))
            .map_err(|_| "plugin configuration is not UTF-8".to_string())
            .and_then(Config::parse);
        match parsed {
            Ok(config) => {
                for warning in config.warnings() {
                    log(Level::Warn, &warning);
                }
                log(
                    Level::Info,
                    &format!(
                        "consent-gate {} (dynamic module) configured",
                        crate::VERSION
                    ),
                );
                let counters = Counters::define(config_envoy);
                let namespace_misspellings =
                    crate::policy::namespace_misspellings(&config.metadata_namespace);
                let shared = FilterConfig {
                    config,
                    counters,
                    namespace_misspellings,
                };
                Box::into_raw(Box::new(shared)).cast_const()
            }
            Err(message) => {
                // Envoy refuses the configuration (at start, or in `--mode validate`).
                log(
                    Level::Error,
                    &format!("invalid plugin configuration: {message}"),
                );
                std::ptr::null()
            }
        }
    }));
    made.unwrap_or(std::ptr::null()).cast::<c_void>()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if !config.is_null() {
        // SAFETY: made by Box::into_raw in config_new; Envoy destroys it once, after its filters.
        let _ = catch_unwind(|| {
            drop(unsafe { Box::from_raw(config.cast::<FilterConfig>().cast_mut()) })
        });
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let made = catch_unwind(AssertUnwindSafe(|| {
        let read = |default_match| {
            let text =
                std::str::from_utf8(bytes(config)).map_err(|_| "is not UTF-8".to_string())?;
            RouteSetting::from_json(text, default_match)
        };
        match (read(Match::All), read(Match::Any)) {
            (Ok(match_all), Ok(match_any)) => {
                let made = Box::into_raw(Box::new(PerRoute {
                    match_all,
                    match_any,
                }))
                .cast_const();
                MADE_PER_ROUTE
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(made as usize);
                made
            }
            (Err(message), _) | (_, Err(message)) => {
                // Envoy refuses the route configuration: a mistake never switches the gate off.
                log(
                    Level::Error,
                    &format!("invalid per-route configuration: {message}"),
                );
                std::ptr::null()
            }
        }
    }));
    made.unwrap_or(std::ptr::null()).cast::<c_void>()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    config: *const c_void,
) {
    let _ = catch_unwind(|| {
        let ours = MADE_PER_ROUTE
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(config as usize));
        if ours {
            // SAFETY: made by Box::into_raw in per_route_config_new; destroyed once (it has
            // just left the set).
            drop(unsafe { Box::from_raw(config.cast::<PerRoute>().cast_mut()) });
        }
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: FilterEnvoyPtr,
) -> *const c_void {
    if config.is_null() {
        return std::ptr::null();
    }
    let filter = Filter {
        config: config.cast::<FilterConfig>(),
        lifecycle: Lifecycle::default(),
        route_name: None,
        failed: false,
    };
    Box::into_raw(Box::new(filter))
        .cast_const()
        .cast::<c_void>()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    if !filter.is_null() {
        // SAFETY: made by Box::into_raw in filter_new; Envoy destroys it once.
        let _ = catch_unwind(|| drop(unsafe { Box::from_raw(filter.cast::<Filter>().cast_mut()) }));
    }
}

/// Runs a request-side hook: the lifecycle through a host for this hook, with panics caught.
/// A panic (or a filter that already failed) refuses the request and holds it: `stop`.
fn request_hook<T: Copy>(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
    stop: T,
    in_body_hook: bool,
    run: impl FnOnce(&mut Lifecycle, &Config, &mut NativeHost) -> T,
) -> T {
    if filter.is_null() {
        return stop;
    }
    // SAFETY: made by filter_new; Envoy calls a filter's hooks one at a time, on its worker.
    let filter = unsafe { &mut *filter.cast::<Filter>().cast_mut() };
    if filter.failed {
        return stop;
    }
    // SAFETY: the configuration outlives its filters.
    let shared = unsafe { &*filter.config };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        with_lifecycle(envoy, filter, shared, in_body_hook, run)
    }));
    match outcome {
        Ok(status) => status,
        Err(_) => {
            filter.failed = true;
            log(
                Level::Error,
                "a panic was caught in the filter; the request is refused (INTERNAL_ERROR), never forwarded",
            );
            // Counted and recorded first (the access log is written once the reply ends the
            // stream), each step on its own: a second panic must not keep the reply from going.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                with_lifecycle(envoy, filter, shared, in_body_hook, |lc, config, host| {
                    lc.record_failure(config, host)
                })
            }));
            let _ = catch_unwind(AssertUnwindSafe(|| fail_closed(envoy)));
            stop
        }
    }
}

/// Runs `run` on the filter's lifecycle, through a host for this hook.
fn with_lifecycle<T>(
    envoy: FilterEnvoyPtr,
    filter: &mut Filter,
    shared: &FilterConfig,
    in_body_hook: bool,
    run: impl FnOnce(&mut Lifecycle, &Config, &mut NativeHost) -> T,
) -> T {
    let mut host = NativeHost::new(
        envoy,
        &shared.counters,
        &shared.namespace_misspellings,
        &mut filter.route_name,
        in_body_hook,
        shared.config.decision_metadata,
    );
    run(&mut filter.lifecycle, &shared.config, &mut host)
}

/// After a caught panic: a local `500 INTERNAL_ERROR`.
fn fail_closed(envoy: FilterEnvoyPtr) {
    let reason = Reason::InternalError;
    let body = reply::body(reason, &Judgement::refused(reason), None);
    let headers = [
        ("content-type", "application/json"),
        (REASON_HEADER, reason.code()),
    ];
    host::send_response(
        envoy,
        500,
        &headers,
        body.as_bytes(),
        "consent_gate.INTERNAL_ERROR",
    );
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
    end_of_stream: bool,
) -> u32 {
    request_hook(
        envoy,
        filter,
        abi::HEADERS_STOP_ITERATION,
        false,
        |lc, config, host| match lc.on_request_headers(config, host, end_of_stream) {
            Flow::Continue => abi::HEADERS_CONTINUE,
            Flow::Hold | Flow::Stop => abi::HEADERS_STOP_ITERATION,
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
    end_of_stream: bool,
) -> u32 {
    request_hook(
        envoy,
        filter,
        abi::BODY_STOP_NO_BUFFER,
        true,
        |lc, config, host| {
            let buffered = host.buffered_size();
            match lc.on_request_body(config, host, buffered, end_of_stream) {
                Flow::Continue => abi::BODY_CONTINUE,
                Flow::Hold => abi::BODY_STOP_AND_BUFFER,
                Flow::Stop => abi::BODY_STOP_NO_BUFFER,
            }
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
) -> u32 {
    request_hook(
        envoy,
        filter,
        abi::TRAILERS_STOP_ITERATION,
        false,
        |lc, config, host| match lc.on_request_trailers(config, host) {
            Flow::Continue => abi::TRAILERS_CONTINUE,
            Flow::Hold | Flow::Stop => abi::TRAILERS_STOP_ITERATION,
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // Responses are never held: a panic here only loses the dropped-items header.
    request_hook(
        envoy,
        filter,
        abi::HEADERS_CONTINUE,
        false,
        |lc, _, host| {
            lc.on_response_headers(host);
            abi::HEADERS_CONTINUE
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::BODY_CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
) -> u32 {
    request_hook(
        envoy,
        filter,
        abi::TRAILERS_CONTINUE,
        false,
        |lc, _, host| {
            lc.on_response_trailers(host);
            abi::TRAILERS_CONTINUE
        },
    )
}

/// Before the access log is written: a request still held was abandoned.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
) {
    if filter.is_null() {
        return;
    }
    // SAFETY: as in `request_hook`; the stream is over, so a panic here has nothing to answer.
    let filter = unsafe { &mut *filter.cast::<Filter>().cast_mut() };
    let shared = unsafe { &*filter.config };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        with_lifecycle(envoy, filter, shared, false, |lc, config, host| {
            lc.on_stream_end(config, host)
        })
    }));
}

// Hooks Envoy 1.40 requires every module to export; the filter has no use for them.

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
