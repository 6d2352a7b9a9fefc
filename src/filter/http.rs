//! One HTTP request: find the route's policy, hold the request (headers included) until the whole
//! body is in, judge it, then forward, forward a rewritten batch, or answer locally.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action as HostAction;

use super::host::{
    self, BUFFER_HTTP_REQUEST_BODY, MAP_HTTP_REQUEST_HEADERS, MAP_HTTP_RESPONSE_HEADERS,
};
use super::Shared;
use crate::config::RequestTarget;
use crate::decision::{judge, Action, Judgement, Reason, Request};
use crate::encoding::Encoding;
use crate::metrics::Counter;
use crate::policy::{decode_pairs, RouteMetadata, RoutePolicy};
use crate::reply;

/// The filter-state key of the decision record (`%FILTER_STATE(wasm.consent_gate:PLAIN)%`):
/// one key, so one host call per request.
const RECORD_KEY: &str = "consent_gate";
/// The response header that tells the client how many batch items were dropped.
const DROPPED_HEADER: &str = "x-consent-gate-dropped";

enum State {
    /// Not judged yet (headers not seen), or judged: let everything through from now on.
    Open,
    /// Holding the request until its body is complete.
    Buffering(Pending),
    /// A local reply was sent: nothing more goes anywhere.
    Answered,
}

struct Pending {
    policy: RoutePolicy,
    content_encoding: Option<String>,
    path: String,
    body_size: usize,
}

pub struct Http {
    shared: Rc<Shared>,
    state: State,
    /// Batch items dropped, for the response header.
    dropped: u32,
}

impl Http {
    pub fn new(shared: Rc<Shared>) -> Http {
        Http {
            shared,
            state: State::Open,
            dropped: 0,
        }
    }

    /// The route's policy: its metadata first, then the first matching `routes` rule (which
    /// needs the request headers: they are read into `headers` then, to be read only once).
    fn route_policy(
        &self,
        headers: &mut Option<RequestHeaders>,
    ) -> Result<Option<RoutePolicy>, String> {
        let config = &self.shared.config;
        if let Some(policy) = self.metadata_policy()? {
            return Ok(Some(policy));
        }
        if config.routes.is_empty() {
            return Ok(None);
        }
        // The route name is a host property (expensive): read only when a rule asks for it.
        let route_name = if config.routes.iter().any(|r| r.route_name.is_some()) {
            property_text(&["xds", "route_name"])
        } else {
            String::new()
        };
        let read = RequestHeaders::read()
            .map_err(|e| format!("cannot read the request headers (host status {})", e.0))?;
        let h = headers.insert(read);
        let target = RequestTarget {
            route_name: &route_name,
            authority: &h.authority,
            path: &h.path,
        };
        Ok(config.rule_for(&target).cloned())
    }

    /// The policy in the route's metadata (one host property read: the most expensive call the
    /// filter makes, which `route_metadata: false` avoids).
    fn metadata_policy(&self) -> Result<Option<RoutePolicy>, String> {
        let config = &self.shared.config;
        if !config.route_metadata {
            return Ok(None);
        }
        let path = [
            "xds",
            "route_metadata",
            "filter_metadata",
            config.metadata_namespace.as_str(),
        ];
        let raw = host::get_property(&path)
            .map_err(|e| format!("cannot read route metadata (host status {})", e.0))?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let metadata = RouteMetadata::from_struct(&raw).ok_or_else(|| {
            format!(
                "route metadata \"{}\" is not a struct",
                config.metadata_namespace
            )
        })?;
        metadata.policy(config.match_mode)
    }

    /// Judges the complete body and carries the judgement out.
    fn finish(&mut self, body: &[u8]) -> HostAction {
        let State::Buffering(pending) = std::mem::replace(&mut self.state, State::Open) else {
            return HostAction::Continue;
        };
        let request = Request {
            config: &self.shared.config,
            policy: &pending.policy,
            content_encoding: pending.content_encoding.as_deref(),
            path: &pending.path,
        };
        let judgement = judge(&request, body);
        self.carry_out(judgement, Some(&pending.policy), body.len())
    }

    fn read_body(&self, size: usize) -> Result<Vec<u8>, host::HostError> {
        Ok(host::get_buffer(BUFFER_HTTP_REQUEST_BODY, 0, size)?.unwrap_or_default())
    }

    /// Records the judgement (metrics, filter state, log), then acts on it. In dry-run mode the
    /// record says what would have happened and the request goes on untouched.
    fn carry_out(
        &mut self,
        mut j: Judgement,
        policy: Option<&RoutePolicy>,
        body_size: usize,
    ) -> HostAction {
        let dry_run = self.shared.config.dry_run;
        if !dry_run {
            if let Action::Rewrite(body) = &j.action {
                if let Err(e) = replace_body(body_size, body) {
                    log::error!(
                        "consent_gate: cannot replace the request body (host status {})",
                        e.0
                    );
                    j.action = Action::Reply(Reason::InternalError);
                }
            }
        }
        self.record(&j, policy);
        if dry_run {
            return HostAction::Continue;
        }
        self.dropped = if j.is_batch { j.dropped } else { 0 };
        match j.action {
            Action::Forward | Action::Rewrite(_) => HostAction::Continue,
            Action::Reply(reason) => {
                self.state = State::Answered;
                let config = &self.shared.config;
                let body = reply::body(reason, &j, policy);
                let details = format!("consent_gate.{}", reason.code());
                let headers = [
                    ("content-type", "application/json"),
                    ("x-consent-gate-reason", reason.code()),
                ];
                if let Err(e) = host::send_local_response(
                    reason.status(config).into(),
                    &details,
                    &headers,
                    body.as_bytes(),
                ) {
                    // The request stays held: never forwarded, it ends at the stream timeout.
                    log::error!(
                        "consent_gate: cannot send the local reply (host status {})",
                        e.0
                    );
                }
                HostAction::Pause
            }
        }
    }

    /// Metrics, the filter-state decision record, and one log line per denial. Never any event
    /// content: only the route's categories, reason codes and counts.
    fn record(&self, j: &Judgement, policy: Option<&RoutePolicy>) {
        let m = &self.shared.metrics;
        let dry_run = self.shared.config.dry_run;
        m.add(Counter::RequestsJudged, 1);
        let decision = match j.action {
            Action::Forward => {
                m.add(Counter::RequestsAllowed, 1);
                "allow"
            }
            Action::Rewrite(_) => {
                m.add(Counter::RequestsFiltered, 1);
                if dry_run {
                    "would_filter"
                } else {
                    "filter"
                }
            }
            Action::Reply(_) => {
                m.add(Counter::RequestsDenied, 1);
                if dry_run {
                    "would_deny"
                } else {
                    "deny"
                }
            }
        };
        if j.is_batch {
            m.add(Counter::BatchItemsSeen, j.events.into());
            m.add(Counter::BatchItemsDropped, j.dropped.into());
        }
        for (reason, n) in Reason::ALL.iter().zip(j.dropped_by_reason) {
            m.add_reason(*reason, n.into());
        }
        let required: Vec<&str> = policy
            .map(|p| p.categories.iter().map(String::as_str).collect())
            .unwrap_or_default();
        for (category, n) in required.iter().zip(j.category_denials) {
            if n > 0 {
                m.add_category(category, n.into());
            }
        }
        let denied: Vec<&str> = policy
            .map(|p| reply::category_names(p, j.denied_categories).collect())
            .unwrap_or_default();
        let reason = j.reason().map_or("-", Reason::code);
        let record = format!(
            "decision={decision} reason={reason} required={} denied={} events={} dropped={}",
            or_dash(&required.join(",")),
            or_dash(&denied.join(",")),
            j.events,
            j.dropped
        );
        if let Err(e) = host::set_property(&[RECORD_KEY], record.as_bytes()) {
            log::warn!(
                "consent_gate: cannot record the decision (host status {})",
                e.0
            );
        }
        // The route name is an expensive host property: fetched only for a line Envoy will print.
        if !matches!(j.action, Action::Forward) && host::log_enabled(host::LOG_INFO) {
            let route = property_text(&["xds", "route_name"]);
            log::info!("route={} {record}", or_dash(&route));
        }
    }
}

/// A string property, or "" when it is absent or cannot be read.
fn property_text(path: &[&str]) -> String {
    host::get_property(path)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn replace_body(old_size: usize, body: &[u8]) -> Result<(), host::HostError> {
    host::set_buffer(BUFFER_HTTP_REQUEST_BODY, 0, old_size, body)?;
    // A stale content-length would make the upstream wait for bytes that never come.
    host::set_header(
        MAP_HTTP_REQUEST_HEADERS,
        "content-length",
        &body.len().to_string(),
    )
}

/// The request headers the filter uses, read in one host call (header names arrive lower-case).
#[derive(Default)]
struct RequestHeaders {
    /// Several `content-encoding` lines are joined with ", " (and so refused as stacked codings).
    content_encoding: Option<String>,
    content_length: Option<String>,
    path: String,
    authority: String,
}

impl RequestHeaders {
    fn read() -> Result<RequestHeaders, host::HostError> {
        let raw = host::get_header_map(MAP_HTTP_REQUEST_HEADERS)?;
        // An undecodable map is a host fault: refuse the request rather than guess.
        let pairs = decode_pairs(&raw).ok_or(host::HostError(u32::MAX))?;
        let mut h = RequestHeaders::default();
        for (name, value) in pairs {
            let value = String::from_utf8_lossy(value);
            match name {
                b"content-encoding" => match &mut h.content_encoding {
                    Some(v) => {
                        v.push_str(", ");
                        v.push_str(&value);
                    }
                    None => h.content_encoding = Some(value.into_owned()),
                },
                b"content-length" => h.content_length = Some(value.into_owned()),
                b":path" => h.path = value.into_owned(),
                b":authority" => h.authority = value.into_owned(),
                _ => {}
            }
        }
        Ok(h)
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> HostAction {
        let mut headers = None;
        let policy = match self.route_policy(&mut headers) {
            Ok(Some(policy)) => policy,
            Ok(None) => return HostAction::Continue, // not gated: never buffered
            Err(message) => {
                log::error!("consent_gate: {message}");
                return self.carry_out(Judgement::refused(Reason::RouteConfigError), None, 0);
            }
        };
        let read = match headers.take() {
            Some(h) => Ok(h),
            None => RequestHeaders::read(),
        };
        let Ok(RequestHeaders {
            content_encoding,
            content_length,
            path,
            ..
        }) = read
        else {
            return self.carry_out(Judgement::refused(Reason::InternalError), Some(&policy), 0);
        };
        // Refuse early what the body cannot change: nothing is buffered for it.
        if Encoding::from_header(content_encoding.as_deref()).is_none() {
            return self.carry_out(
                Judgement::refused(Reason::UnsupportedContentEncoding),
                Some(&policy),
                0,
            );
        }
        let declared = content_length.and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.shared.config.max_body_bytes as u64) {
            return self.carry_out(Judgement::refused(Reason::BodyTooLarge), Some(&policy), 0);
        }
        self.state = State::Buffering(Pending {
            policy,
            content_encoding,
            path,
            body_size: 0,
        });
        if end_of_stream {
            // No body at all (GET, empty POST).
            return self.finish(&[]);
        }
        HostAction::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> HostAction {
        let max = self.shared.config.max_body_bytes;
        let pending = match &mut self.state {
            State::Buffering(pending) => pending,
            State::Answered => return HostAction::Pause,
            State::Open => return HostAction::Continue,
        };
        // `body_size` is everything buffered so far.
        pending.body_size = body_size;
        if body_size > max {
            let policy = pending.policy.clone();
            self.state = State::Open;
            return self.carry_out(Judgement::refused(Reason::BodyTooLarge), Some(&policy), 0);
        }
        if !end_of_stream {
            return HostAction::Pause;
        }
        self.finish_buffered(body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> HostAction {
        // With trailers the body callback never sees end_of_stream: the body is complete now.
        let size = match &self.state {
            State::Buffering(pending) => pending.body_size,
            State::Answered => return HostAction::Pause,
            State::Open => return HostAction::Continue,
        };
        self.finish_buffered(size)
    }

    fn on_http_response_headers(
        &mut self,
        _num_headers: usize,
        _end_of_stream: bool,
    ) -> HostAction {
        if self.dropped > 0 {
            let n = self.dropped.to_string();
            if let Err(e) = host::set_header(MAP_HTTP_RESPONSE_HEADERS, DROPPED_HEADER, &n) {
                log::warn!(
                    "consent_gate: cannot set {DROPPED_HEADER} (host status {})",
                    e.0
                );
            }
        }
        HostAction::Continue
    }
}

impl Http {
    fn finish_buffered(&mut self, size: usize) -> HostAction {
        match self.read_body(size) {
            Ok(body) => self.finish(&body),
            Err(e) => {
                log::error!(
                    "consent_gate: cannot read the request body (host status {})",
                    e.0
                );
                let policy = match std::mem::replace(&mut self.state, State::Open) {
                    State::Buffering(p) => Some(p.policy),
                    _ => None,
                };
                self.carry_out(
                    Judgement::refused(Reason::InternalError),
                    policy.as_ref(),
                    0,
                )
            }
        }
    }
}
