//! One HTTP request in the proxy-wasm host: the SDK's callbacks drive the [`Lifecycle`], and
//! [`WasmHost`] implements what it asks with proxy-wasm host calls.

use std::borrow::Cow;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::abi::{
    self, BUFFER_HTTP_REQUEST_BODY, MAP_HTTP_REQUEST_HEADERS, MAP_HTTP_RESPONSE_HEADERS,
    MAP_HTTP_RESPONSE_TRAILERS,
};
use super::Shared;
use crate::config::Config;
use crate::host::{Host, HostError, Level, Metric, Record, RequestHeaders};
use crate::lifecycle::{Flow, Lifecycle};
use crate::policy::{self, RouteSetting};
use crate::wire;

/// The filter-state key of the decision record (`%FILTER_STATE(wasm.consent_gate:PLAIN)%`):
/// one key, so one host call per request.
const RECORD_KEY: &str = "consent_gate";

pub struct Http {
    shared: Rc<Shared>,
    lifecycle: Lifecycle,
    /// The route name, once read (a host property read, so at most once).
    route_name: Option<String>,
}

impl Http {
    pub fn new(shared: Rc<Shared>) -> Http {
        Http {
            shared,
            lifecycle: Lifecycle::default(),
            route_name: None,
        }
    }

    /// The lifecycle, its configuration and a host for this callback.
    fn parts(&mut self) -> (&mut Lifecycle, &Config, WasmHost<'_>) {
        let host = WasmHost {
            metrics: &self.shared.metrics,
            route_name: &mut self.route_name,
            body_size: 0,
        };
        (&mut self.lifecycle, &self.shared.config, host)
    }
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Hold | Flow::Stop => Action::Pause,
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let (lifecycle, config, mut host) = self.parts();
        action(lifecycle.on_request_headers(config, &mut host, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // `body_size` is everything buffered so far.
        let (lifecycle, config, mut host) = self.parts();
        action(lifecycle.on_request_body(config, &mut host, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let (lifecycle, config, mut host) = self.parts();
        action(lifecycle.on_request_trailers(config, &mut host))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (lifecycle, _, mut host) = self.parts();
        action(lifecycle.on_response_headers(&mut host))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        let (lifecycle, _, mut host) = self.parts();
        action(lifecycle.on_response_trailers(&mut host))
    }

    fn on_log(&mut self) {
        let (lifecycle, config, mut host) = self.parts();
        lifecycle.on_stream_end(config, &mut host);
    }
}

/// The proxy-wasm host, for one callback of one request.
pub struct WasmHost<'a> {
    metrics: &'a super::metrics::Metrics,
    route_name: &'a mut Option<String>,
    /// The size of the body read in this callback: what a rewrite replaces.
    body_size: usize,
}

impl Host for WasmHost<'_> {
    const BODY_NEVER_ARRIVES_HINT: &'static str =
        ". If every request with a body hangs like this, \
        the wasm filter is configured without `allow_on_headers_stop_iteration: true`";

    fn request_headers(&mut self) -> Result<RequestHeaders, HostError> {
        let raw = abi::get_header_map(MAP_HTTP_REQUEST_HEADERS)?;
        // An undecodable map is a host fault: refuse the request rather than guess.
        let pairs = wire::decode_pairs(&raw).ok_or(HostError(u32::MAX))?;
        Ok(RequestHeaders::from_pairs(pairs))
    }

    fn route_name(&mut self) -> String {
        self.route_name
            .get_or_insert_with(|| {
                abi::get_property(&["xds", "route_name"])
                    .ok()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            })
            .clone()
    }

    /// The route's metadata, read whole as the typed protobuf (one host property read, the most
    /// expensive call the filter makes, which `route_metadata: false` avoids).
    fn route_setting(&mut self, config: &Config) -> Result<RouteSetting, String> {
        if !config.route_metadata {
            return Ok(RouteSetting::Unconfigured);
        }
        let ns = &config.metadata_namespace;
        let ours = |key: &[u8]| key == ns.as_bytes() || policy::misspells_namespace(key, ns);
        let raw = abi::get_property(&["xds", "route_metadata"])
            .map_err(|e| format!("cannot be read (host status {})", e.0))?;
        let setting = match raw.as_deref().map(|raw| (raw, wire::metadata_namespace(raw, ns))) {
            None => Ok(RouteSetting::Unconfigured),
            Some((_, Ok(Some(value)))) => RouteSetting::from_value(&value, config.match_mode),
            // Not read, but not nothing either: the route meant to be gated.
            Some((raw, Ok(None))) if wire::typed_namespace(raw, ns) => Err(
                "is in typed_filter_metadata, which consent-gate does not read: put it in filter_metadata".into(),
            ),
            Some((raw, Ok(None))) => match wire::find_namespace(raw, ours) {
                Some(found) => Err(policy::misspelled_namespace(&found)),
                None => Ok(RouteSetting::Unconfigured),
            },
            Some((_, Err(_))) => {
                Err("cannot be decoded (the host sent a malformed Metadata message)".into())
            }
        };
        if !matches!(setting, Ok(RouteSetting::Unconfigured)) {
            return setting;
        }
        // A policy on the route's virtual host is not read: the routes under it meant to be
        // gated (one host property read, on unconfigured routes only).
        match abi::get_property(&["xds", "virtual_host_metadata"]) {
            Ok(Some(vh)) if wire::find_namespace(&vh, ours).is_some() => Err(
                "is on the route's virtual host, which consent-gate does not read: put it on each route".into(),
            ),
            _ => setting,
        }
    }

    fn request_body(&mut self, size: usize) -> Result<Cow<'_, [u8]>, HostError> {
        let body = abi::get_buffer(BUFFER_HTTP_REQUEST_BODY, 0, size)?.unwrap_or_default();
        self.body_size = body.len();
        #[cfg(feature = "panic-trigger")]
        crate::panic_trigger::check(&body);
        Ok(Cow::Owned(body))
    }

    fn replace_request_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        abi::set_buffer(BUFFER_HTTP_REQUEST_BODY, 0, self.body_size, body)?;
        // A stale content-length would make the upstream wait for bytes that never come.
        abi::set_header(
            MAP_HTTP_REQUEST_HEADERS,
            "content-length",
            &body.len().to_string(),
        )
    }

    fn send_reply(
        &mut self,
        status: u16,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        abi::send_local_response(status.into(), details, headers, body)
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        abi::set_header(MAP_HTTP_RESPONSE_HEADERS, name, value)
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        abi::remove_header(MAP_HTTP_RESPONSE_HEADERS, name)
    }

    fn remove_response_trailer(&mut self, name: &str) -> Result<(), HostError> {
        abi::remove_header(MAP_HTTP_RESPONSE_TRAILERS, name)
    }

    fn add(&mut self, metric: Metric<'_>, n: u64) {
        self.metrics.add(metric, n);
    }

    fn record(&mut self, record: &Record) -> Result<(), HostError> {
        abi::set_property(&[RECORD_KEY], record.text().as_bytes())
    }

    fn log(&mut self, level: Level, message: &str) {
        abi::log(level, message);
    }

    fn log_enabled(&mut self, level: Level) -> bool {
        abi::log_enabled(level)
    }
}
