//! [`NativeHost`]: what the lifecycle asks of its host, done with Envoy's dynamic-module
//! callbacks. Buffers Envoy returns are read in place and copied only where they must outlive
//! the hook.

use std::borrow::Cow;

use super::abi::{self, EnvoyBuffer, FilterEnvoyPtr, ModuleBuffer, ModuleHttpHeader};
use super::PerRoute;
use crate::config::Config;
use crate::decision::Reason;
use crate::host::{Host, HostError, Level, Metric, Record, RequestHeaders};
use crate::metrics::{denied_category_family, dropped_by_reason, Counter};
use crate::policy::RouteSetting;
use crate::settings::Value;

/// The filter-state key of the decision record: the proxy-wasm module's, so that access-log
/// formats carry over (`%FILTER_STATE(wasm.consent_gate:PLAIN)%`).
const RECORD_KEY: &[u8] = b"wasm.consent_gate";
/// The dynamic-metadata namespace of the decision record's fields
/// (`%DYNAMIC_METADATA(consent_gate:decision)%`, ...).
const METADATA_NAMESPACE: &[u8] = b"consent_gate";

pub fn log(level: Level, message: &str) {
    let line = format!("consent_gate: {message}");
    // SAFETY: the buffer describes `line`, alive for the call.
    unsafe {
        abi::envoy_dynamic_module_callback_log(level as u32, ModuleBuffer::of(line.as_bytes()))
    }
}

pub fn send_response(
    envoy: FilterEnvoyPtr,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    details: &str,
) {
    let mut pairs: Vec<ModuleHttpHeader> = headers
        .iter()
        .map(|(k, v)| ModuleHttpHeader {
            key_ptr: k.as_ptr().cast(),
            key_length: k.len(),
            value_ptr: v.as_ptr().cast(),
            value_length: v.len(),
        })
        .collect();
    // SAFETY: every pointer describes memory alive for the call.
    unsafe {
        abi::envoy_dynamic_module_callback_http_send_response(
            envoy,
            status.into(),
            pairs.as_mut_ptr(),
            pairs.len(),
            ModuleBuffer::of(body),
            ModuleBuffer::of(details.as_bytes()),
        );
    }
}

/// Counter ids, defined when the configuration is made (the only time Envoy allows it). Denied
/// categories are one counter with a `category` label: routes name their categories at any time.
pub struct Counters {
    counters: [Option<usize>; Counter::ALL.len()],
    reasons: [Option<usize>; Reason::ALL.len()],
    categories: Option<usize>,
}

fn define(config: abi::ConfigEnvoyPtr, name: &str, labels: &[&str]) -> Option<usize> {
    let mut labels: Vec<ModuleBuffer> = labels
        .iter()
        .map(|l| ModuleBuffer::of(l.as_bytes()))
        .collect();
    let mut id = 0usize;
    // SAFETY: every pointer describes memory alive for the call; `id` is a valid local.
    let status = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
            config,
            ModuleBuffer::of(name.as_bytes()),
            labels.as_mut_ptr(),
            labels.len(),
            &mut id,
        )
    };
    if status == abi::METRICS_SUCCESS {
        Some(id)
    } else {
        log(
            Level::Warn,
            &format!("cannot define metric {name} (status {status})"),
        );
        None
    }
}

impl Counters {
    pub fn define(config: abi::ConfigEnvoyPtr) -> Counters {
        Counters {
            counters: Counter::ALL.map(|c| define(config, &c.name(), &[])),
            reasons: Reason::ALL.map(|r| define(config, &dropped_by_reason(r), &[])),
            categories: define(config, &denied_category_family(), &["category"]),
        }
    }

    fn increment(envoy: FilterEnvoyPtr, id: Option<usize>, labels: &[&str], n: u64) {
        let Some(id) = id else { return };
        if n == 0 {
            return;
        }
        let mut values: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        // SAFETY: every pointer describes memory alive for the call. A counter that cannot be
        // bumped must not fail the request: the status is dropped.
        let _ = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                envoy,
                id,
                values.as_mut_ptr(),
                values.len(),
                n,
            )
        };
    }

    pub fn add_reason(&self, envoy: FilterEnvoyPtr, reason: Reason, n: u64) {
        Self::increment(
            envoy,
            self.reasons.get(reason.index()).copied().flatten(),
            &[],
            n,
        );
    }
}

/// The dynamic-module host, for one hook of one request.
pub struct NativeHost<'a> {
    envoy: FilterEnvoyPtr,
    counters: &'a Counters,
    route_name: &'a mut Option<String>,
    /// In the request body hook, the chunk just received is not yet part of the buffered body.
    in_body_hook: bool,
}

impl<'a> NativeHost<'a> {
    pub fn new(
        envoy: FilterEnvoyPtr,
        counters: &'a Counters,
        route_name: &'a mut Option<String>,
        in_body_hook: bool,
    ) -> NativeHost<'a> {
        NativeHost {
            envoy,
            counters,
            route_name,
            in_body_hook,
        }
    }

    /// The body types that make up the whole request body now: what earlier hooks buffered, and
    /// in the body hook the chunk just received (unless it is that buffer itself).
    fn body_types(&self) -> &'static [u32] {
        // SAFETY: a plain query on the current stream.
        let received_is_buffer = unsafe {
            abi::envoy_dynamic_module_callback_http_received_buffered_request_body(self.envoy)
        };
        match (self.in_body_hook, received_is_buffer) {
            (true, false) => &[abi::BUFFERED_REQUEST_BODY, abi::RECEIVED_REQUEST_BODY],
            (true, true) => &[abi::RECEIVED_REQUEST_BODY],
            (false, _) => &[abi::BUFFERED_REQUEST_BODY],
        }
    }

    /// The size of the whole request body received so far.
    pub fn buffered_size(&self) -> usize {
        self.body_types()
            .iter()
            // SAFETY: a plain query on the current stream.
            .map(|t| unsafe {
                abi::envoy_dynamic_module_callback_http_get_body_size(self.envoy, *t)
            })
            .sum()
    }

    fn chunks(&self, body_type: u32) -> Vec<EnvoyBuffer> {
        // SAFETY: Envoy fills exactly `n` buffers into a vector of `n`.
        unsafe {
            let n =
                abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.envoy, body_type);
            let mut out = vec![EnvoyBuffer::EMPTY; n];
            if n > 0
                && !abi::envoy_dynamic_module_callback_http_get_body_chunks(
                    self.envoy,
                    body_type,
                    out.as_mut_ptr(),
                )
            {
                out.clear();
            }
            out
        }
    }

    fn header(&self, name: &str, index: usize) -> (Option<String>, usize) {
        let mut value = EnvoyBuffer::EMPTY;
        let mut count = 0usize;
        // SAFETY: the out-pointers are valid locals; the value is copied before the hook ends.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_get_header(
                self.envoy,
                abi::REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                &mut value,
                index,
                &mut count,
            )
        };
        // SAFETY: valid until the hook returns; copied here.
        let text = found.then(|| String::from_utf8_lossy(unsafe { value.bytes() }).into_owned());
        (text, count)
    }

    fn set_header(&self, header_type: u32, name: &str, value: &str) -> Result<(), HostError> {
        // SAFETY: the buffers describe `name` and `value`, alive for the call.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.envoy,
                header_type,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
        if ok {
            Ok(())
        } else {
            Err(HostError(1))
        }
    }

    /// The route's metadata namespace as a typed JSON object (`None` when it has none). There
    /// is no type query in the ABI: each value is tried as a string, a number, a bool, a list.
    fn route_metadata(&self, namespace: &str) -> Result<Option<Value>, String> {
        let ns = ModuleBuffer::of(namespace.as_bytes());
        let source = abi::METADATA_ROUTE;
        // SAFETY: Envoy fills exactly `n` buffers into a vector of `n`; they are copied below.
        let keys: Vec<String> = unsafe {
            let n = abi::envoy_dynamic_module_callback_http_get_metadata_keys_count(
                self.envoy, source, ns,
            );
            if n == 0 {
                return Ok(None);
            }
            let mut out = vec![EnvoyBuffer::EMPTY; n];
            if !abi::envoy_dynamic_module_callback_http_get_metadata_keys(
                self.envoy,
                source,
                ns,
                out.as_mut_ptr(),
            ) {
                return Err("cannot be read".into());
            }
            out.iter()
                .map(|k| String::from_utf8_lossy(k.bytes()).into_owned())
                .collect()
        };
        let mut members = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.metadata_value(ns, &key);
            members.push((key, value));
        }
        Ok(Some(Value::Object(members)))
    }

    /// One metadata value. Envoy logs a getter used on a value of another type, so the type the
    /// key should have is tried first: a mistake costs a log line, a correct route none.
    fn metadata_value(&self, ns: ModuleBuffer, key: &str) -> Value {
        #[derive(Clone, Copy)]
        enum Kind {
            String,
            Number,
            Bool,
            List,
        }
        let order = match key {
            "categories" => [Kind::List, Kind::String, Kind::Number, Kind::Bool],
            "exempt" => [Kind::Bool, Kind::String, Kind::Number, Kind::List],
            _ => [Kind::String, Kind::Number, Kind::Bool, Kind::List],
        };
        let k = ModuleBuffer::of(key.as_bytes());
        let (envoy, source) = (self.envoy, abi::METADATA_ROUTE);
        let mut text = EnvoyBuffer::EMPTY;
        let mut number = 0f64;
        let mut flag = false;
        let mut len = 0usize;
        for kind in order {
            // SAFETY: out-pointers are valid locals; strings are copied before the hook ends.
            unsafe {
                match kind {
                    Kind::String => {
                        if abi::envoy_dynamic_module_callback_http_get_metadata_string(
                            envoy, source, ns, k, &mut text,
                        ) {
                            return Value::String(
                                String::from_utf8_lossy(text.bytes()).into_owned(),
                            );
                        }
                    }
                    Kind::Number => {
                        if abi::envoy_dynamic_module_callback_http_get_metadata_number(
                            envoy,
                            source,
                            ns,
                            k,
                            &mut number,
                        ) {
                            return Value::number(number);
                        }
                    }
                    Kind::Bool => {
                        if abi::envoy_dynamic_module_callback_http_get_metadata_bool(
                            envoy, source, ns, k, &mut flag,
                        ) {
                            return Value::Bool(flag);
                        }
                    }
                    Kind::List => {
                        if abi::envoy_dynamic_module_callback_http_get_metadata_list_size(
                            envoy, source, ns, k, &mut len,
                        ) {
                            return Value::Array(
                                (0..len)
                                    .map(|i| self.metadata_list_item(ns, k, i))
                                    .collect(),
                            );
                        }
                    }
                }
            }
        }
        // A nested struct (or a null): none of the getters takes it.
        Value::Object(Vec::new())
    }

    fn metadata_list_item(&self, ns: ModuleBuffer, k: ModuleBuffer, i: usize) -> Value {
        let (envoy, source) = (self.envoy, abi::METADATA_ROUTE);
        let mut text = EnvoyBuffer::EMPTY;
        let mut number = 0f64;
        let mut flag = false;
        // SAFETY: out-pointers are valid locals; strings are copied before the hook ends.
        unsafe {
            if abi::envoy_dynamic_module_callback_http_get_metadata_list_string(
                envoy, source, ns, k, i, &mut text,
            ) {
                Value::String(String::from_utf8_lossy(text.bytes()).into_owned())
            } else if abi::envoy_dynamic_module_callback_http_get_metadata_list_number(
                envoy,
                source,
                ns,
                k,
                i,
                &mut number,
            ) {
                Value::number(number)
            } else if abi::envoy_dynamic_module_callback_http_get_metadata_list_bool(
                envoy, source, ns, k, i, &mut flag,
            ) {
                Value::Bool(flag)
            } else {
                Value::Object(Vec::new())
            }
        }
    }
}

impl Host for NativeHost<'_> {
    fn request_headers(&mut self) -> Result<RequestHeaders, HostError> {
        let mut h = RequestHeaders {
            path: self.header(":path", 0).0.unwrap_or_default(),
            authority: self.header(":authority", 0).0.unwrap_or_default(),
            content_length: self.header("content-length", 0).0,
            content_encoding: None,
            gpc: false,
        };
        // Any line saying `1` counts: a reader of either line must not see a preference.
        let (first, count) = self.header("sec-gpc", 0);
        h.gpc = first.as_deref() == Some("1")
            || (1..count).any(|i| self.header("sec-gpc", i).0.as_deref() == Some("1"));
        let (first, count) = self.header("content-encoding", 0);
        if let Some(first) = first {
            let mut all = first;
            for i in 1..count {
                if let (Some(v), _) = self.header("content-encoding", i) {
                    all.push_str(", ");
                    all.push_str(&v);
                }
            }
            h.content_encoding = Some(all);
        }
        Ok(h)
    }

    fn route_name(&mut self) -> String {
        let envoy = self.envoy;
        self.route_name
            .get_or_insert_with(|| {
                let mut name = EnvoyBuffer::EMPTY;
                // SAFETY: the out-pointer is a valid local; the name is copied.
                unsafe {
                    if abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                        envoy,
                        abi::ATTRIBUTE_XDS_ROUTE_NAME,
                        &mut name,
                    ) {
                        String::from_utf8_lossy(name.bytes()).into_owned()
                    } else {
                        String::new()
                    }
                }
            })
            .clone()
    }

    /// The route's per-route configuration (parsed when Envoy loaded the routes: no lookup per
    /// request beyond one call), else its metadata.
    fn route_setting(&mut self, config: &Config) -> Result<RouteSetting, String> {
        // SAFETY: a plain query; a non-null result is a PerRoute made by per_route_config_new,
        // alive while the route is.
        let per_route = unsafe {
            abi::envoy_dynamic_module_callback_get_most_specific_route_config(self.envoy)
        };
        if !per_route.is_null() {
            // SAFETY: see above.
            let per_route = unsafe { &*per_route.cast::<PerRoute>() };
            return Ok(per_route.setting(config.match_mode).clone());
        }
        if !config.route_metadata {
            return Ok(RouteSetting::Unconfigured);
        }
        match self.route_metadata(&config.metadata_namespace)? {
            Some(value) => RouteSetting::from_value(&value, config.match_mode),
            None => Ok(RouteSetting::Unconfigured),
        }
    }

    fn request_body(&mut self, _size: usize) -> Result<Cow<'_, [u8]>, HostError> {
        let mut chunks: Vec<EnvoyBuffer> = Vec::new();
        for t in self.body_types() {
            chunks.extend(self.chunks(*t).into_iter().filter(|c| c.length > 0));
        }
        // SAFETY: the chunks are valid until the hook returns, and this host lives only as long
        // as the hook.
        let body: Cow<'_, [u8]> = match chunks.as_slice() {
            [] => Cow::Borrowed(&[]),
            [one] => Cow::Borrowed(unsafe { one.bytes() }),
            many => {
                let total = many.iter().map(|c| c.length).sum();
                let mut joined = Vec::with_capacity(total);
                for chunk in many {
                    joined.extend_from_slice(unsafe { chunk.bytes() });
                }
                Cow::Owned(joined)
            }
        };
        #[cfg(feature = "panic-trigger")]
        crate::panic_trigger::check(&body);
        Ok(body)
    }

    fn replace_request_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        let types = self.body_types();
        let mut ok = true;
        for t in types {
            // SAFETY: plain calls on the current stream's buffers.
            unsafe {
                let size = abi::envoy_dynamic_module_callback_http_get_body_size(self.envoy, *t);
                ok &= size == 0
                    || abi::envoy_dynamic_module_callback_http_drain_body(self.envoy, *t, size);
            }
        }
        // The new body goes where the last of the old one was: it is forwarded as it.
        let target = types.last().copied().unwrap_or(abi::BUFFERED_REQUEST_BODY);
        // SAFETY: the buffer describes `body`, alive for the call.
        ok &= unsafe {
            abi::envoy_dynamic_module_callback_http_append_body(
                self.envoy,
                target,
                ModuleBuffer::of(body),
            )
        };
        if !ok {
            return Err(HostError(1));
        }
        // A stale content-length would make the upstream wait for bytes that never come.
        self.set_header(
            abi::REQUEST_HEADER,
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
        send_response(self.envoy, status, headers, body, details);
        Ok(())
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.set_header(abi::RESPONSE_HEADER, name, value)
    }

    fn add(&mut self, metric: Metric<'_>, n: u64) {
        let c = self.counters;
        match metric {
            Metric::Counter(counter) => Counters::increment(
                self.envoy,
                c.counters.get(counter as usize).copied().flatten(),
                &[],
                n,
            ),
            Metric::Dropped(reason) => c.add_reason(self.envoy, reason, n),
            // `category` comes from the configuration (per-route config, metadata or a rule).
            Metric::DeniedCategory(category) => {
                Counters::increment(self.envoy, c.categories, &[category], n)
            }
        }
    }

    fn record(&mut self, record: &Record) -> Result<(), HostError> {
        let text = record.text();
        let events = record.events.to_string();
        let dropped = record.dropped.to_string();
        let mut fields: Vec<(&str, &str)> = vec![
            ("decision", record.decision),
            ("reason", record.reason.map_or("-", Reason::code)),
            (
                "required",
                if record.required.is_empty() {
                    "-"
                } else {
                    &record.required
                },
            ),
            (
                "denied",
                if record.denied.is_empty() {
                    "-"
                } else {
                    &record.denied
                },
            ),
            ("events", &events),
            ("dropped", &dropped),
        ];
        if !record.destination.is_empty() {
            fields.push(("destination", &record.destination));
        }
        let entries: Vec<abi::KeyValuePair> = fields
            .iter()
            .map(|(k, v)| abi::KeyValuePair {
                key_ptr: k.as_ptr().cast(),
                key_length: k.len(),
                value_ptr: v.as_ptr().cast(),
                value_length: v.len(),
            })
            .collect();
        // SAFETY: every pointer describes memory alive for the calls.
        let stored = unsafe {
            abi::envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(
                self.envoy,
                ModuleBuffer::of(METADATA_NAMESPACE),
                entries.as_ptr(),
                entries.len(),
            );
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.envoy,
                ModuleBuffer::of(RECORD_KEY),
                ModuleBuffer::of(text.as_bytes()),
            )
        };
        if stored {
            Ok(())
        } else {
            Err(HostError(1))
        }
    }

    fn log(&mut self, level: Level, message: &str) {
        log(level, message);
    }

    fn log_enabled(&mut self, level: Level) -> bool {
        // SAFETY: a plain query.
        unsafe { abi::envoy_dynamic_module_callback_log_enabled(level as u32) }
    }
}
