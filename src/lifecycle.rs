//! One request, from its headers to its answer, written once for both hosts: find the route's
//! policy, hold the request (headers included) until the whole body is in, judge it, then
//! forward it, forward a rewritten batch, or answer locally; count, record and log what happened.

use std::sync::Arc;

use crate::config::{Config, RequestTarget, RuleMatch, UnconfiguredRoute};
use crate::decision::{judge, Action, Judgement, Reason, Request};
use crate::encoding::Encoding;
use crate::host::{Host, Level, Metric, Record, RequestHeaders};
use crate::metrics::Counter;
use crate::policy::{RoutePolicy, RouteSetting};
use crate::reply;
use crate::target::{
    escapes_a_separator, folds_onto_ascii, has_a_wide_escape, hides_a_query,
    is_canonical_authority, moves_when_decoded, normalises_into_syntax,
};

/// The response header that tells the client how many batch items were dropped.
pub const DROPPED_HEADER: &str = "x-consent-gate-dropped";
/// The response header of a local reply that names its reason.
pub const REASON_HEADER: &str = "x-consent-gate-reason";

/// What the host should do with the request after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let it go on (everything held so far goes upstream).
    Continue,
    /// Keep holding it (headers and body) until the body is complete.
    Hold,
    /// It was answered locally: nothing more goes upstream.
    Stop,
}

enum State {
    /// The request headers have not reached the filter.
    Fresh,
    /// Judged and let through, or not gated.
    Open,
    /// Holding the request until its body is complete.
    Buffering(Pending),
    /// A local reply was sent.
    Answered,
}

struct Pending {
    policy: Arc<RoutePolicy>,
    content_encoding: Option<String>,
    path: String,
    /// The request carries `Sec-GPC: 1`.
    gpc: bool,
    /// The body is declared a form.
    form: bool,
    /// A CORS preflight (see [`RequestHeaders::is_cors_preflight`]).
    preflight: bool,
    /// Bytes buffered so far.
    body_size: usize,
    /// Whether any body callback came (none comes if the wasm filter was configured without
    /// `allow_on_headers_stop_iteration`).
    body_seen: bool,
}

/// The state of one request.
pub struct Lifecycle {
    state: State,
    /// Batch items dropped from a forwarded batch, for the response header.
    dropped: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            state: State::Fresh,
            dropped: 0,
        }
    }
}

/// Where a request's policy comes from, once the route and the rules were consulted.
enum Route {
    Gated(Arc<RoutePolicy>),
    Ungated(&'static str, Counter),
    Refused(Reason),
}

impl Lifecycle {
    pub fn on_request_headers(
        &mut self,
        config: &Config,
        host: &mut impl Host,
        end_of_stream: bool,
    ) -> Flow {
        self.state = State::Open;
        let mut headers = None;
        let policy = match route(config, host, &mut headers) {
            Route::Gated(policy) => policy,
            Route::Ungated(decision, counter) => {
                host.add(Metric::Counter(counter), 1);
                record_only(config, host, decision, None);
                return Flow::Continue;
            }
            Route::Refused(reason) => {
                return self.carry_out(config, host, Judgement::refused(reason), None)
            }
        };
        let read = match headers.take() {
            Some(h) => Ok(h),
            None => host.request_headers(),
        };
        let Ok(headers) = read else {
            host.log(Level::Error, "cannot read the request headers");
            let j = Judgement::refused(Reason::InternalError);
            return self.carry_out(config, host, j, Some(&policy));
        };
        // A request that asks to become another protocol's stream (websocket, HTTP/2's
        // extended CONNECT) carries no event to judge: after an upgrade Envoy never ends the
        // stream (held for good), or hands the judged body on unframed, bytes a destination
        // may read as a request of their own. Refused, never held.
        if headers.upgrade {
            let j = Judgement::refused(Reason::InvalidEvent);
            return self.carry_out(config, host, j, Some(&policy));
        }
        let preflight = headers.is_cors_preflight();
        let RequestHeaders {
            content_encoding,
            content_type,
            content_length,
            path,
            gpc,
            ..
        } = headers;
        // Refuse early what the body cannot change: nothing is buffered for it.
        if Encoding::from_header(content_encoding.as_deref()).is_none()
            || !Encoding::charset_is_utf8(content_type.as_deref())
        {
            let j = Judgement::refused(Reason::UnsupportedContentEncoding);
            return self.carry_out(config, host, j, Some(&policy));
        }
        // Clients send events as JSON (or, RudderStack's Node client, declared a form, which
        // row 5 reads); a body declared multipart is fields to some reader, whatever it holds.
        if Encoding::is_multipart(content_type.as_deref()) {
            let j = Judgement::refused(Reason::InvalidEvent);
            return self.carry_out(config, host, j, Some(&policy));
        }
        let declared = content_length.and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
            let j = Judgement::refused(Reason::BodyTooLarge);
            return self.carry_out(config, host, j, Some(&policy));
        }
        self.state = State::Buffering(Pending {
            policy,
            form: Encoding::is_form(content_type.as_deref()),
            preflight,
            content_encoding,
            path,
            gpc,
            body_size: 0,
            body_seen: false,
        });
        if end_of_stream {
            // No body at all (GET, empty POST).
            return self.finish(config, host, true);
        }
        Flow::Hold
    }

    /// `buffered`: the size of the whole body received so far.
    pub fn on_request_body(
        &mut self,
        config: &Config,
        host: &mut impl Host,
        buffered: usize,
        end_of_stream: bool,
    ) -> Flow {
        let pending = match &mut self.state {
            State::Buffering(pending) => pending,
            State::Answered => return Flow::Stop,
            State::Open => return Flow::Continue,
            State::Fresh => return self.unjudged(config, host),
        };
        pending.body_size = buffered;
        pending.body_seen = true;
        if buffered > config.max_body_bytes {
            let policy = pending.policy.clone();
            self.state = State::Open;
            let j = Judgement::refused(Reason::BodyTooLarge);
            return self.carry_out(config, host, j, Some(&policy));
        }
        if !end_of_stream {
            return Flow::Hold;
        }
        self.finish(config, host, buffered == 0)
    }

    /// With trailers the body never reports its end: it is complete now.
    pub fn on_request_trailers(&mut self, config: &Config, host: &mut impl Host) -> Flow {
        let empty = match &self.state {
            State::Buffering(pending) => pending.body_size == 0,
            State::Answered => return Flow::Stop,
            State::Open => return Flow::Continue,
            State::Fresh => return self.unjudged(config, host),
        };
        self.finish(config, host, empty)
    }

    /// A body or trailers before any headers: the host never ran the filter's header callback
    /// (a wasm `capability_restriction_config` that leaves it out), so the request was never
    /// judged. Refused, never forwarded.
    fn unjudged(&mut self, config: &Config, host: &mut impl Host) -> Flow {
        host.log(
            Level::Error,
            "a request body reached the filter before its headers: the host skipped the header callback (does a capability_restriction_config leave out proxy_on_request_headers?); refusing it",
        );
        self.carry_out(
            config,
            host,
            Judgement::refused(Reason::InternalError),
            None,
        )
    }

    /// The host caught a failure inside the filter (the dynamic module catches panics) and
    /// refuses the request itself, whatever the mode: counted and recorded as a refusal
    /// (`INTERNAL_ERROR`) like any other, under the route's policy when it is still known.
    pub fn record_failure(&mut self, config: &Config, host: &mut impl Host) {
        let state = std::mem::replace(&mut self.state, State::Answered);
        let policy = match &state {
            State::Buffering(pending) => Some(&*pending.policy),
            _ => None,
        };
        let j = Judgement::refused(Reason::InternalError);
        record(config, host, &j, policy, false);
    }

    /// The stream is over (answered, forwarded, or abandoned). A request still held was never
    /// judged and never forwarded: the client went away or timed out first. If no body ever
    /// reached the filter, the likely cause is a configuration mistake that makes every request
    /// with a body hang, and the log says which.
    pub fn on_stream_end<H: Host>(&mut self, config: &Config, host: &mut H) {
        let State::Buffering(pending) = std::mem::replace(&mut self.state, State::Open) else {
            return;
        };
        host.add(Metric::Counter(Counter::RequestsIncomplete), 1);
        record_only(config, host, "incomplete", Some(&pending.policy));
        if pending.body_seen {
            host.log(
                Level::Debug,
                "a request ended before its body was complete; nothing was forwarded",
            );
        } else {
            host.log(
                Level::Warn,
                &format!(
                    "a request ended before any of its body reached the filter; nothing was forwarded{}",
                    H::BODY_NEVER_ARRIVES_HINT
                ),
            );
        }
    }

    pub fn on_response_headers(&mut self, host: &mut impl Host) -> Flow {
        if matches!(self.state, State::Answered) {
            return Flow::Continue; // the filter's own reply: its headers are the filter's
        }
        // A response from upstream: headers under the filter's names would speak for the filter
        // (a destination's `x-consent-gate-reason: FILTERED_BY_END_USER_CONSENT` on an event it
        // received), so only the filter's own values leave.
        // Both tried, whatever the first does (`|`, not `||`).
        if host.remove_response_header(REASON_HEADER).is_err()
            | (self.dropped == 0 && host.remove_response_header(DROPPED_HEADER).is_err())
        {
            host.log(
                Level::Warn,
                "cannot remove the upstream's x-consent-gate-* headers",
            );
        }
        if self.dropped > 0 {
            let n = self.dropped.to_string();
            if host.set_response_header(DROPPED_HEADER, &n).is_err() {
                host.log(Level::Warn, &format!("cannot set {DROPPED_HEADER}"));
            }
        }
        Flow::Continue
    }

    /// Response trailers from upstream: the filter's names are the filter's there too.
    pub fn on_response_trailers(&mut self, host: &mut impl Host) -> Flow {
        if host.remove_response_trailer(REASON_HEADER).is_err()
            | host.remove_response_trailer(DROPPED_HEADER).is_err()
        {
            host.log(
                Level::Warn,
                "cannot remove the upstream's x-consent-gate-* trailers",
            );
        }
        Flow::Continue
    }

    /// Judges the complete body and carries the judgement out.
    fn finish(&mut self, config: &Config, host: &mut impl Host, empty: bool) -> Flow {
        let State::Buffering(pending) = std::mem::replace(&mut self.state, State::Open) else {
            return Flow::Continue;
        };
        let request = Request {
            config,
            policy: &pending.policy,
            content_encoding: pending.content_encoding.as_deref(),
            path: &pending.path,
            gpc: pending.gpc,
            form: pending.form,
            preflight: pending.preflight,
        };
        let judgement = if empty {
            judge(&request, &[])
        } else {
            match host.request_body(pending.body_size) {
                // What the host handed over must be all it buffered: judging less would let
                // the rest go upstream unjudged.
                Ok(body) if body.len() != pending.body_size => {
                    let read = body.len();
                    host.log(
                        Level::Error,
                        &format!(
                            "read {read} bytes of a {}-byte request body; refusing it",
                            pending.body_size
                        ),
                    );
                    Judgement::refused(Reason::InternalError)
                }
                Ok(body) => judge(&request, &body),
                Err(e) => {
                    host.log(
                        Level::Error,
                        &format!("cannot read the request body (host status {})", e.0),
                    );
                    Judgement::refused(Reason::InternalError)
                }
            }
        };
        self.carry_out(config, host, judgement, Some(&pending.policy))
    }

    /// Records the judgement (metrics, decision record, log), then acts on it. In dry-run mode
    /// the record says what would have happened and the request goes on untouched.
    fn carry_out(
        &mut self,
        config: &Config,
        host: &mut impl Host,
        mut j: Judgement,
        policy: Option<&RoutePolicy>,
    ) -> Flow {
        if !config.dry_run {
            if let Action::Rewrite(body) = &j.action {
                if let Err(e) = host.replace_request_body(body) {
                    host.log(
                        Level::Error,
                        &format!("cannot replace the request body (host status {})", e.0),
                    );
                    j.action = Action::Reply(Reason::InternalError);
                }
            }
        }
        record(config, host, &j, policy, config.dry_run);
        if config.dry_run {
            return Flow::Continue;
        }
        let dropped = if j.is_batch { j.dropped } else { 0 };
        let Action::Reply(reason) = j.action else {
            self.dropped = dropped;
            return Flow::Continue;
        };
        self.state = State::Answered;
        let body = reply::body(reason, &j, policy);
        let details = format!("consent_gate.{}", reason.code());
        let dropped_text = dropped.to_string();
        let mut headers = vec![
            ("content-type", "application/json"),
            (REASON_HEADER, reason.code()),
        ];
        if dropped > 0 {
            headers.push((DROPPED_HEADER, &dropped_text));
        }
        if let Err(e) = host.send_reply(reason.status(config), &details, &headers, body.as_bytes())
        {
            // The request stays held: never forwarded, it ends at the stream timeout.
            host.log(
                Level::Error,
                &format!("cannot send the local reply (host status {})", e.0),
            );
        }
        Flow::Stop
    }
}

/// The route's policy (see [`gate`]), unless the path is one that a decoding server reads as
/// another route's: then the request is refused, on every route. The request headers are read
/// into `headers` for it, to be read only once.
fn route(config: &Config, host: &mut impl Host, headers: &mut Option<RequestHeaders>) -> Route {
    let route = gate(config, host, headers);
    if let Route::Refused(_) = route {
        return route;
    }
    // Envoy chose this route on the path as sent; a destination that decodes `%2F` may serve
    // another route's handler (`/ads%2fv1/track`, `/open/..%2fads/v1/track`), one that matches
    // with Python's `$` another call's (`/v1/identify%0a`), and one behind a decoding proxy may
    // find a query in `%3F` (`/v1/track%3Fdata=…`). Likewise the host: Envoy chose the virtual
    // host by the authority as sent (`api.example.com:080` is not `api.example.com` to it, but
    // is to a receiver), and a receiver behind a proxy may route by a host or path that a
    // header names (`x-forwarded-host`, `x-original-url`).
    let misread = |h: &RequestHeaders| {
        moves_when_decoded(&h.path)
            || hides_a_query(&h.path)
            || escapes_a_separator(&h.path)
            || has_a_wide_escape(&h.path)
            || folds_onto_ascii(&h.path)
            || normalises_into_syntax(&h.path)
            || !is_canonical_authority(&h.authority)
            || h.names_another_target()
    };
    let path_moves = match headers {
        Some(h) => misread(h),
        None => match host.request_headers() {
            Ok(h) => misread(headers.insert(h)),
            Err(_) => {
                host.log(Level::Error, "cannot read the request headers");
                return Route::Refused(Reason::InternalError);
            }
        },
    };
    match path_moves {
        true => Route::Refused(Reason::InvalidEvent),
        false => route,
    }
}

/// The route's policy: its own setting first (metadata or per-route configuration), then the
/// first matching `routes` rule (which needs the request headers: they are read into `headers`
/// then, to be read only once), then `on_unconfigured_route`.
fn gate(config: &Config, host: &mut impl Host, headers: &mut Option<RequestHeaders>) -> Route {
    match host.route_setting(config) {
        Ok(RouteSetting::Gated(policy)) => return Route::Gated(policy),
        Ok(RouteSetting::Exempt) => return Route::Ungated("exempt", Counter::RequestsExempt),
        Ok(RouteSetting::Unconfigured) => {}
        Err(message) => {
            let route = host.route_name();
            host.log(
                Level::Error,
                &format!(
                    "route \"{route}\": consent metadata \"{}\" {message}; refusing its requests (ROUTE_CONFIG_ERROR)",
                    config.metadata_namespace
                ),
            );
            return Route::Refused(Reason::RouteConfigError);
        }
    }
    if !config.routes.is_empty() {
        // The route name costs a host call: read only when a rule asks for it.
        let route_name = if config.routes.iter().any(|r| r.route_name.is_some()) {
            host.route_name()
        } else {
            String::new()
        };
        let Ok(read) = host.request_headers() else {
            host.log(Level::Error, "cannot read the request headers");
            return Route::Refused(Reason::InternalError);
        };
        let h = headers.insert(read);
        let target = RequestTarget {
            route_name: &route_name,
            authority: &h.authority,
            path: &h.path,
        };
        match config.rule_for(&target) {
            RuleMatch::Rule(policy) => return Route::Gated(policy.clone()),
            RuleMatch::Conflicting => return Route::Refused(Reason::InvalidEvent),
            RuleMatch::None => {}
        }
    }
    match config.on_unconfigured_route {
        UnconfiguredRoute::Allow => Route::Ungated("ungated", Counter::RequestsUngated),
        UnconfiguredRoute::Deny => {
            let route = host.route_name();
            host.log(
                Level::Error,
                &format!(
                    "route \"{route}\" has no consent policy (no metadata \"{}\", no matching rule) and on_unconfigured_route is deny; refusing its requests (ROUTE_CONFIG_ERROR)",
                    config.metadata_namespace
                ),
            );
            Route::Refused(Reason::RouteConfigError)
        }
    }
}

/// A record without a judgement: an ungated or exempt request, or one abandoned under `policy`
/// (which the record names, for the auditor).
fn record_only(
    config: &Config,
    host: &mut impl Host,
    decision: &'static str,
    policy: Option<&RoutePolicy>,
) {
    if !config.decision_record {
        return;
    }
    let record = record_of(decision, policy);
    if host.record(&record).is_err() {
        host.log(Level::Warn, "cannot record the decision");
    }
}

/// A record that names `policy`'s categories and destination, and nothing judged.
fn record_of(decision: &'static str, policy: Option<&RoutePolicy>) -> Record {
    Record {
        decision,
        reason: None,
        required: policy.map(|p| p.categories.join(",")).unwrap_or_default(),
        denied: String::new(),
        events: 0,
        dropped: 0,
        destination: policy
            .and_then(|p| p.destination.clone())
            .unwrap_or_default(),
    }
}

/// Metrics, the decision record, and one log line per denial. Never any event content: only
/// the route's categories, reason codes and counts.
fn record(
    config: &Config,
    host: &mut impl Host,
    j: &Judgement,
    policy: Option<&RoutePolicy>,
    dry_run: bool,
) {
    host.add(Metric::Counter(Counter::RequestsJudged), 1);
    let (counter, decision) = match j.action {
        Action::Forward => (Counter::RequestsAllowed, "allow"),
        Action::Rewrite(_) if dry_run => (Counter::RequestsFiltered, "would_filter"),
        Action::Rewrite(_) => (Counter::RequestsFiltered, "filter"),
        Action::Reply(_) if dry_run => (Counter::RequestsDenied, "would_deny"),
        Action::Reply(_) => (Counter::RequestsDenied, "deny"),
    };
    host.add(Metric::Counter(counter), 1);
    if j.is_batch {
        host.add(Metric::Counter(Counter::BatchItemsSeen), j.events.into());
        host.add(
            Metric::Counter(Counter::BatchItemsDropped),
            j.dropped.into(),
        );
    }
    for (reason, n) in Reason::ALL.iter().zip(j.dropped_by_reason) {
        if n > 0 {
            host.add(Metric::Dropped(*reason), n.into());
        }
    }
    if let Some(p) = policy {
        for (category, n) in p.categories.iter().zip(j.category_denials) {
            if n > 0 {
                host.add(Metric::DeniedCategory(category), n.into());
            }
        }
    }
    // The record is built only for the host's record or a log line (its strings are joined).
    let logged = !matches!(j.action, Action::Forward) && host.log_enabled(Level::Info);
    if !config.decision_record && !logged {
        return;
    }
    let denied = policy
        .map(|p| {
            reply::category_names(p, j.denied_categories)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let record = Record {
        reason: j.reason(),
        denied,
        events: j.events,
        dropped: j.dropped,
        ..record_of(decision, policy)
    };
    if config.decision_record && host.record(&record).is_err() {
        host.log(Level::Warn, "cannot record the decision");
    }
    // The route name is a host call: fetched only for a line the host will print.
    if logged {
        let route = host.route_name();
        let route = if route.is_empty() { "-" } else { &route };
        host.log(Level::Info, &format!("route={route} {}", record.text()));
    }
}
