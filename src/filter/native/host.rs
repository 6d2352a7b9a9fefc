//! [`NativeHost`]: what the lifecycle asks of its host, done with Envoy's dynamic-module
//! callbacks. Buffers Envoy returns are read in place and copied only where they must outlive
//! the hook.

use std::borrow::Cow;
use std::cell::RefCell;

use super::abi::{self, EnvoyBuffer, FilterEnvoyPtr, ModuleBuffer, ModuleHttpHeader};
use super::PerRoute;
use crate::config::Config;
use crate::decision::Reason;
use crate::host::{lossy, Host, HostError, Level, Metric, Record, RequestHeaders};
use crate::metrics::{denied_category_family, dropped_by_reason, Counter};
use crate::policy::RouteSetting;
use crate::route_memo::{FlatMetadata, RouteMemo};

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

thread_local! {
    /// Per worker: the route metadata just read (a buffer kept from one request to the next),
    /// and the settings parsed from the metadata read before.
    static ROUTE_MEMO: RefCell<(FlatMetadata, RouteMemo)> =
        const { RefCell::new((FlatMetadata::new(), RouteMemo::new())) };
}

/// The dynamic-module host, for one hook of one request.
pub struct NativeHost<'a> {
    envoy: FilterEnvoyPtr,
    counters: &'a Counters,
    namespace_misspellings: &'a [String],
    route_name: &'a mut Option<String>,
    /// In the request body hook, the chunk just received is not yet part of the buffered body.
    in_body_hook: bool,
    /// The decision record's fields also go to dynamic metadata (`decision_metadata`).
    record_metadata: bool,
}

impl<'a> NativeHost<'a> {
    pub fn new(
        envoy: FilterEnvoyPtr,
        counters: &'a Counters,
        namespace_misspellings: &'a [String],
        route_name: &'a mut Option<String>,
        in_body_hook: bool,
        record_metadata: bool,
    ) -> NativeHost<'a> {
        NativeHost {
            envoy,
            counters,
            namespace_misspellings,
            route_name,
            in_body_hook,
            record_metadata,
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

    /// Envoy fills `slots` with the chunks of one body buffer (exactly as many as
    /// `get_body_chunks_size` said); false if it could not.
    fn fill_chunks(&self, body_type: u32, slots: &mut [EnvoyBuffer]) -> bool {
        // SAFETY: `slots` has room for the `get_body_chunks_size` buffers Envoy writes.
        unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_chunks(
                self.envoy,
                body_type,
                slots.as_mut_ptr(),
            )
        }
    }

    /// Calls `f` with each line (name, value) of a header map, in order; false if Envoy has no
    /// such map here (or an empty one).
    fn each_header<'h>(&'h self, header_type: u32, mut f: impl FnMut(&'h [u8], &'h [u8])) -> bool {
        /// Lines read into the stack; a request with more is read into the heap.
        const ON_STACK: usize = 32;
        // SAFETY: a plain query on the current stream.
        let n = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers_size(self.envoy, header_type)
        };
        if n == 0 {
            return false;
        }
        let mut stack = [abi::EnvoyHttpHeader::EMPTY; ON_STACK];
        let mut heap = Vec::new();
        let lines: &mut [abi::EnvoyHttpHeader] = match stack.get_mut(..n) {
            Some(lines) => lines,
            None => {
                heap.resize(n, abi::EnvoyHttpHeader::EMPTY);
                &mut heap
            }
        };
        // SAFETY: Envoy fills exactly `get_headers_size` entries (nothing changes the map in
        // between); the buffers are valid until the hook returns, and this host lives only as
        // long as the hook.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(
                self.envoy,
                header_type,
                lines.as_mut_ptr(),
            )
        };
        if ok {
            for line in lines.iter() {
                // SAFETY: see above.
                let (name, value) = unsafe { line.pair() };
                f(name, value);
            }
        }
        ok
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

    fn remove_header(&self, header_type: u32, name: &str) -> Result<(), HostError> {
        // Envoy's removal costs nearly twice a read of a small map (it makes a lower-case copy
        // of the name, then compares every line): removed only if a line has the name, or if
        // the map cannot be read.
        let mut present = false;
        let read = self.each_header(header_type, |line, _| {
            present |= line.eq_ignore_ascii_case(name.as_bytes());
        });
        if read && !present {
            return Ok(());
        }
        // A null value removes the header (the ABI's `set_header`).
        let none = ModuleBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        // SAFETY: the key describes `name`, alive for the call; the value is null by design.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.envoy,
                header_type,
                ModuleBuffer::of(name.as_bytes()),
                none,
            )
        };
        if ok {
            Ok(())
        } else {
            Err(HostError(1))
        }
    }

    /// Reads the route's metadata namespace into `out`: its keys in order, each with its typed
    /// value. False when the route has none (no namespace, or an empty one). There is no type
    /// query in the ABI: each value is tried as a string, a number, a bool, a list.
    fn route_metadata(
        &self,
        namespace: &str,
        misspellings: &[String],
        out: &mut FlatMetadata,
    ) -> Result<bool, String> {
        /// Keys read into the stack; a namespace with more is read into the heap.
        const ON_STACK: usize = 16;
        out.clear();
        let ns = ModuleBuffer::of(namespace.as_bytes());
        let source = abi::METADATA_ROUTE;
        // SAFETY: a plain query on the current stream.
        let n = unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_keys_count(self.envoy, source, ns)
        };
        if n == 0 {
            // Namespaces can only be looked up by name: the likeliest misspellings are.
            for probe in misspellings {
                let buffer = ModuleBuffer::of(probe.as_bytes());
                // SAFETY: as above.
                let n = unsafe {
                    abi::envoy_dynamic_module_callback_http_get_metadata_keys_count(
                        self.envoy, source, buffer,
                    )
                };
                if n > 0 {
                    return Err(crate::policy::misspelled_namespace(probe.as_bytes()));
                }
            }
            return Ok(false);
        }
        let mut stack = [EnvoyBuffer::EMPTY; ON_STACK];
        let mut heap = Vec::new();
        let keys: &mut [EnvoyBuffer] = match stack.get_mut(..n) {
            Some(keys) => keys,
            None => {
                heap.resize(n, EnvoyBuffer::EMPTY);
                &mut heap
            }
        };
        // SAFETY: Envoy fills exactly `n` buffers into `n` slots; they are read before the hook
        // ends.
        if !unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_keys(
                self.envoy,
                source,
                ns,
                keys.as_mut_ptr(),
            )
        } {
            return Err("cannot be read".into());
        }
        for key in keys.iter() {
            // SAFETY: valid until the hook returns.
            let key = String::from_utf8_lossy(unsafe { key.bytes() });
            out.key(key.as_bytes());
            self.metadata_value(ns, key.as_bytes(), out);
        }
        Ok(true)
    }

    /// One metadata value, into `out`. Envoy logs a getter used on a value of another type, so
    /// the type the key should have is tried first: a mistake costs a log line, a correct route
    /// none.
    fn metadata_value(&self, ns: ModuleBuffer, key: &[u8], out: &mut FlatMetadata) {
        #[derive(Clone, Copy)]
        enum Kind {
            String,
            Number,
            Bool,
            List,
        }
        let order = match key {
            b"categories" | b"gpc_denies" => [Kind::List, Kind::String, Kind::Number, Kind::Bool],
            b"exempt" => [Kind::Bool, Kind::String, Kind::Number, Kind::List],
            _ => [Kind::String, Kind::Number, Kind::Bool, Kind::List],
        };
        let k = ModuleBuffer::of(key);
        let (envoy, source) = (self.envoy, abi::METADATA_ROUTE);
        let mut text = EnvoyBuffer::EMPTY;
        let mut number = 0f64;
        let mut flag = false;
        let mut len = 0usize;
        for kind in order {
            // SAFETY: out-pointers are valid locals; strings are read before the hook ends.
            unsafe {
                match kind {
                    Kind::String => {
                        if abi::envoy_dynamic_module_callback_http_get_metadata_string(
                            envoy, source, ns, k, &mut text,
                        ) {
                            return out.string(text.bytes());
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
                            return out.number(number);
                        }
                    }
                    Kind::Bool => {
                        if abi::envoy_dynamic_module_callback_http_get_metadata_bool(
                            envoy, source, ns, k, &mut flag,
                        ) {
                            return out.bool(flag);
                        }
                    }
                    Kind::List => {
                        if abi::envoy_dynamic_module_callback_http_get_metadata_list_size(
                            envoy, source, ns, k, &mut len,
                        ) {
                            out.list(len);
                            for i in 0..len {
                                self.metadata_list_item(ns, k, i, out);
                            }
                            return;
                        }
                    }
                }
            }
        }
        // A nested struct (or a null): none of the getters takes it.
        out.other();
    }

    fn metadata_list_item(
        &self,
        ns: ModuleBuffer,
        k: ModuleBuffer,
        i: usize,
        out: &mut FlatMetadata,
    ) {
        let (envoy, source) = (self.envoy, abi::METADATA_ROUTE);
        let mut text = EnvoyBuffer::EMPTY;
        let mut number = 0f64;
        let mut flag = false;
        // SAFETY: out-pointers are valid locals; strings are read before the hook ends.
        unsafe {
            if abi::envoy_dynamic_module_callback_http_get_metadata_list_string(
                envoy, source, ns, k, i, &mut text,
            ) {
                out.string(text.bytes());
            } else if abi::envoy_dynamic_module_callback_http_get_metadata_list_number(
                envoy,
                source,
                ns,
                k,
                i,
                &mut number,
            ) {
                out.number(number);
            } else if abi::envoy_dynamic_module_callback_http_get_metadata_list_bool(
                envoy, source, ns, k, i, &mut flag,
            ) {
                out.bool(flag);
            } else {
                out.other();
            }
        }
    }
}

impl Host for NativeHost<'_> {
    /// One host call for all the lines (`get_headers`), not one per name: the values the filter
    /// uses are picked out here, as one `get_header` per name would have found them (the first
    /// `:path`, `:authority` and `content-length`; every `sec-gpc`, `content-encoding` and
    /// `content-type` line, in order, see [`RequestHeaders::add_line`]). Envoy's header names
    /// are lower-case.
    fn request_headers(&mut self) -> Result<RequestHeaders, HostError> {
        let mut h = RequestHeaders::default();
        let (mut path, mut authority) = (None, None);
        self.each_header(abi::REQUEST_HEADER, |name, value| match name {
            b":path" => {
                path.get_or_insert(value);
            }
            b":authority" => {
                authority.get_or_insert(value);
            }
            b"content-length" if h.content_length.is_none() => {
                h.content_length = Some(lossy(value));
            }
            name => h.add_line(name, value),
        });
        h.path = path.map(lossy).unwrap_or_default();
        h.authority = authority.map(lossy).unwrap_or_default();
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
        // SAFETY: a plain query; a non-null result is some module's per-route configuration.
        let per_route = unsafe {
            abi::envoy_dynamic_module_callback_get_most_specific_route_config(self.envoy)
        };
        if !per_route.is_null() {
            return match PerRoute::made_here(per_route) {
                Some(per_route) => Ok(per_route.setting(config.match_mode).clone()),
                None => Err("is a per-route configuration another dynamic module made (its dynamic_module_config must name consent_gate)".to_string()),
            };
        }
        if !config.route_metadata {
            return Ok(RouteSetting::Unconfigured);
        }
        // What was read is compared with what this worker read before: the same metadata
        // is parsed once (see `route_memo`).
        let read = |flat: &mut FlatMetadata, memo: &mut RouteMemo| {
            let misspellings = self.namespace_misspellings;
            if self.route_metadata(&config.metadata_namespace, misspellings, flat)? {
                memo.setting(flat, config.match_mode)
            } else {
                Ok(RouteSetting::Unconfigured)
            }
        };
        ROUTE_MEMO
            .try_with(|cell| {
                cell.try_borrow_mut().ok().map(|mut m| {
                    let (flat, memo) = &mut *m;
                    read(flat, memo)
                })
            })
            .ok()
            .flatten()
            // Never in practice (no hook runs inside another, nor as the thread ends): read
            // without the memo.
            .unwrap_or_else(|| read(&mut FlatMetadata::new(), &mut RouteMemo::new()))
    }

    fn request_body(&mut self, _size: usize) -> Result<Cow<'_, [u8]>, HostError> {
        // The chunks of every body buffer, in order: on the stack for the usual few.
        const ON_STACK: usize = 16;
        let mut stack = [EnvoyBuffer::EMPTY; ON_STACK];
        let mut filled = 0;
        let mut heap: Vec<EnvoyBuffer> = Vec::new();
        for &body_type in self.body_types() {
            // SAFETY: a plain query on the current stream.
            let n = unsafe {
                abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.envoy, body_type)
            };
            if n == 0 {
                continue;
            }
            match stack.get_mut(filled..filled + n) {
                Some(slots) if heap.is_empty() => {
                    if self.fill_chunks(body_type, slots) {
                        filled += n;
                    }
                }
                _ => {
                    if heap.is_empty() {
                        heap.extend_from_slice(stack.get(..filled).unwrap_or_default());
                    }
                    let start = heap.len();
                    heap.resize(start + n, EnvoyBuffer::EMPTY);
                    if !self.fill_chunks(body_type, heap.get_mut(start..).unwrap_or_default()) {
                        heap.truncate(start);
                    }
                }
            }
        }
        let all = if heap.is_empty() {
            stack.get(..filled).unwrap_or_default()
        } else {
            &heap
        };
        let mut chunks = all.iter().filter(|c| c.length > 0);
        // SAFETY: the chunks are valid until the hook returns, and this host lives only as long
        // as the hook.
        let body: Cow<'_, [u8]> = match (chunks.next(), chunks.next()) {
            (None, _) => Cow::Borrowed(&[]),
            (Some(one), None) => Cow::Borrowed(unsafe { one.bytes() }),
            (Some(_), Some(_)) => {
                let many = all.iter().filter(|c| c.length > 0);
                let total = many.clone().map(|c| c.length).sum();
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

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        self.remove_header(abi::RESPONSE_HEADER, name)
    }

    fn remove_response_trailer(&mut self, name: &str) -> Result<(), HostError> {
        self.remove_header(abi::RESPONSE_TRAILER, name)
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

    /// The plain-text record goes to filter state, and its fields, as slices of that same text,
    /// to dynamic metadata (unless `decision_metadata` is false): one buffer for both.
    fn record(&mut self, record: &Record) -> Result<(), HostError> {
        const KEYS: [&str; 7] = [
            "decision",
            "reason",
            "required",
            "denied",
            "events",
            "dropped",
            "destination",
        ];
        let mut text = String::new();
        let at = record.write_text(&mut text);
        let mut entries = [abi::KeyValuePair {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        }; 7];
        let mut n = 0;
        for (key, range) in KEYS.iter().zip(at) {
            // No destination field on a route that names none.
            if *key == "destination" && record.destination.is_empty() {
                continue;
            }
            let value = text.get(range).unwrap_or_default();
            if let Some(slot) = entries.get_mut(n) {
                *slot = abi::KeyValuePair {
                    key_ptr: key.as_ptr().cast(),
                    key_length: key.len(),
                    value_ptr: value.as_ptr().cast(),
                    value_length: value.len(),
                };
                n += 1;
            }
        }
        // SAFETY: every pointer describes memory alive for the calls.
        let stored = unsafe {
            if self.record_metadata {
                abi::envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(
                    self.envoy,
                    ModuleBuffer::of(METADATA_NAMESPACE),
                    entries.as_ptr(),
                    n,
                );
            }
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
