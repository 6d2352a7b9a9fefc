//! The request lifecycle against a fake host: what reaches the upstream, what is answered, what
//! is counted, recorded and logged, for every way a request can go. The same lifecycle runs in
//! both real hosts (proxy-wasm and the dynamic module).

use std::borrow::Cow;
use std::collections::BTreeMap;

use consent_gate::config::Config;
use consent_gate::decision::Reason;
use consent_gate::encoding::Encoding;
use consent_gate::host::{Host, HostError, Level, Metric, Record, RequestHeaders};
use consent_gate::lifecycle::{Flow, Lifecycle};
use consent_gate::policy::{Match, RouteSetting};

/// A local reply: status, details, headers, body.
type Reply = (u16, String, Vec<(String, String)>, String);

/// A host that plays one request and remembers everything the lifecycle did to it.
#[derive(Default)]
struct Fake {
    headers: Vec<(String, String)>,
    route_name: String,
    /// The route's metadata namespace as JSON (None: the route has none).
    metadata: Option<String>,
    body: Vec<u8>,
    fail_body_read: bool,
    /// The host hands over only this many bytes of the body.
    short_body_read: Option<usize>,
    fail_body_write: bool,
    /// Removing this response header or trailer fails (the host says so).
    fail_removal_of: Option<&'static str>,
    // What happened.
    replaced: Option<Vec<u8>>,
    reply: Option<Reply>,
    response_headers: Vec<(String, String)>,
    response_trailers: Vec<(String, String)>,
    counters: BTreeMap<String, u64>,
    records: Vec<String>,
    logs: Vec<(Level, String)>,
}

impl Fake {
    fn post(path: &str, body: &str) -> Fake {
        Fake {
            headers: vec![
                (":path".into(), path.into()),
                (":authority".into(), "api.example.com".into()),
                ("content-length".into(), body.len().to_string()),
            ],
            route_name: "ads".into(),
            metadata: Some(r#"{"category":"Ads"}"#.into()),
            body: body.as_bytes().to_vec(),
            ..Fake::default()
        }
    }

    fn header(mut self, name: &str, value: &str) -> Fake {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn metadata(mut self, json: Option<&str>) -> Fake {
        self.metadata = json.map(str::to_string);
        self
    }

    fn count(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

impl Host for Fake {
    /// The host's own advice, appended to the warning for a body that never arrived.
    const BODY_NEVER_ARRIVES_HINT: &'static str = "; the fake host's hint";

    fn request_headers(&mut self) -> Result<RequestHeaders, HostError> {
        Ok(RequestHeaders::from_pairs(
            self.headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        ))
    }

    fn route_name(&mut self) -> String {
        self.route_name.clone()
    }

    fn route_setting(&mut self, config: &Config) -> Result<RouteSetting, String> {
        if !config.route_metadata {
            return Ok(RouteSetting::Unconfigured);
        }
        match &self.metadata {
            None => Ok(RouteSetting::Unconfigured),
            Some(json) => RouteSetting::from_json(json, config.match_mode),
        }
    }

    fn request_body(&mut self, size: usize) -> Result<Cow<'_, [u8]>, HostError> {
        assert_eq!(
            size,
            self.body.len(),
            "the lifecycle asks for what was buffered"
        );
        if self.fail_body_read {
            return Err(HostError(2));
        }
        let n = self.short_body_read.unwrap_or(self.body.len());
        Ok(Cow::Borrowed(self.body.get(..n).unwrap_or_default()))
    }

    fn replace_request_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        if self.fail_body_write {
            return Err(HostError(2));
        }
        self.replaced = Some(body.to_vec());
        Ok(())
    }

    fn send_reply(
        &mut self,
        status: u16,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        assert!(self.reply.is_none(), "one reply per request");
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body = String::from_utf8(body.to_vec()).unwrap();
        self.reply = Some((status, details.into(), headers, body));
        Ok(())
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.response_headers.retain(|(n, _)| n != name);
        self.response_headers.push((name.into(), value.into()));
        Ok(())
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        if self.fail_removal_of == Some(name) {
            return Err(HostError(2));
        }
        self.response_headers.retain(|(n, _)| n != name);
        Ok(())
    }

    fn remove_response_trailer(&mut self, name: &str) -> Result<(), HostError> {
        if self.fail_removal_of == Some(name) {
            return Err(HostError(2));
        }
        self.response_trailers.retain(|(n, _)| n != name);
        Ok(())
    }

    fn add(&mut self, metric: Metric<'_>, n: u64) {
        let name = match metric {
            Metric::Counter(c) => c.name(),
            Metric::Dropped(r) => consent_gate::metrics::dropped_by_reason(r),
            Metric::DeniedCategory(c) => consent_gate::metrics::denied_category(c),
        };
        *self.counters.entry(name).or_default() += n;
    }

    fn record(&mut self, record: &Record) -> Result<(), HostError> {
        self.records.push(record.text());
        Ok(())
    }

    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.into()));
    }

    fn log_enabled(&mut self, _level: Level) -> bool {
        true
    }
}

/// What became of the request.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Forwarded: the body the upstream gets (None: the client's, untouched).
    Forwarded(Option<Vec<u8>>),
    Replied(u16, String),
}

/// Plays headers, then the body in two chunks (or none), as Envoy would.
fn play(config: &Config, host: &mut Fake) -> Outcome {
    play_with(&mut Lifecycle::default(), config, host)
}

/// [`play`] with a lifecycle the caller goes on with.
fn play_with(lc: &mut Lifecycle, config: &Config, host: &mut Fake) -> Outcome {
    let body_len = host.body.len();
    let mut flow = lc.on_request_headers(config, host, body_len == 0);
    if flow == Flow::Hold && body_len > 0 {
        let half = body_len / 2;
        flow = lc.on_request_body(config, host, half, false);
        if flow == Flow::Hold {
            flow = lc.on_request_body(config, host, body_len, true);
        }
    }
    if flow == Flow::Continue {
        lc.on_response_headers(host);
    }
    // The end of every stream: a request that was judged is not incomplete.
    lc.on_stream_end(config, host);
    assert!(!host
        .counters
        .contains_key("consent_gate.requests_incomplete"));
    match (&host.reply, flow) {
        (Some((status, _, headers, _)), Flow::Stop) => {
            let reason = headers
                .iter()
                .find(|(k, _)| k == "x-consent-gate-reason")
                .map(|(_, v)| v.clone())
                .unwrap();
            Outcome::Replied(*status, reason)
        }
        (None, Flow::Continue) => Outcome::Forwarded(host.replaced.clone()),
        other => panic!("inconsistent: {other:?}"),
    }
}

fn replied(status: u16, reason: Reason) -> Outcome {
    Outcome::Replied(status, reason.code().to_string())
}

const CONSENTED: &str =
    r#"{"type":"track","event":"Buy","context":{"consent":{"categoryPreferences":{"Ads":true}}}}"#;
const REFUSED: &str =
    r#"{"type":"track","event":"Buy","context":{"consent":{"categoryPreferences":{"Ads":false}}}}"#;

#[test]
fn the_decision_table_through_the_lifecycle() {
    let config = Config::default();
    let rows: Vec<(&str, Fake, Outcome)> = vec![
        (
            "consented",
            Fake::post("/v1/track", CONSENTED),
            Outcome::Forwarded(None),
        ),
        (
            "refused",
            Fake::post("/v1/track", REFUSED),
            replied(403, Reason::FilteredByEndUserConsent),
        ),
        (
            "no consent",
            Fake::post("/v1/track", r#"{"type":"track"}"#),
            replied(403, Reason::MissingConsent),
        ),
        (
            "not JSON",
            Fake::post("/v1/track", "nope"),
            replied(400, Reason::InvalidEvent),
        ),
        (
            "Context",
            Fake::post("/v1/track", &CONSENTED.replace("context", "Context")),
            replied(400, Reason::InvalidEvent),
        ),
        (
            "path names another call",
            Fake::post("/v1/identify", CONSENTED),
            replied(400, Reason::InvalidEvent),
        ),
        (
            "empty body",
            Fake::post("/v1/track", ""),
            replied(403, Reason::MissingConsent),
        ),
        (
            "event in the query",
            Fake::post("/v1/pixel/track?data=e30", ""),
            replied(400, Reason::InvalidEvent),
        ),
        (
            "brotli",
            Fake::post("/v1/track", CONSENTED).header("content-encoding", "br"),
            replied(415, Reason::UnsupportedContentEncoding),
        ),
        (
            "stacked encodings",
            Fake::post("/v1/track", CONSENTED)
                .header("content-encoding", "gzip")
                .header("content-encoding", "gzip"),
            replied(415, Reason::UnsupportedContentEncoding),
        ),
        (
            "charset other than utf-8",
            Fake::post("/v1/track", CONSENTED)
                .header("content-type", "application/json; charset=utf-7"),
            replied(415, Reason::UnsupportedContentEncoding),
        ),
        (
            "two content-type lines",
            Fake::post("/v1/track", CONSENTED)
                .header("content-type", "application/json")
                .header("content-type", "text/plain; charset=utf-16"),
            replied(415, Reason::UnsupportedContentEncoding),
        ),
        (
            "too large by content-length",
            Fake::post("/v1/track", CONSENTED).header("content-length", "99999999"),
            replied(413, Reason::BodyTooLarge),
        ),
        // Django's multipart parser finds its boundary anywhere, inside a JSON string too.
        (
            "declared multipart",
            Fake::post("/v1/track", CONSENTED)
                .header("content-type", "multipart/form-data; boundary=zz"),
            replied(400, Reason::InvalidEvent),
        ),
        (
            "multipart in capitals",
            Fake::post("/v1/track", CONSENTED)
                .header("content-type", "Multipart/Mixed; boundary=zz"),
            replied(400, Reason::InvalidEvent),
        ),
    ];
    for (name, mut host, want) in rows {
        assert_eq!(play(&config, &mut host), want, "{name}");
        assert_eq!(host.records.len(), 1, "{name}: one record per request");
        assert_eq!(host.count("consent_gate.requests_judged"), 1, "{name}");
    }
}

#[test]
fn a_gzip_batch_is_rewritten_and_recompressed() {
    let config = Config::default();
    let plain = format!(r#"{{"batch":[{CONSENTED},{REFUSED}],"sentAt":"x"}}"#);
    let body = Encoding::Gzip.encode(plain.into_bytes());
    let mut host = Fake::post("/v1/batch", "").header("content-encoding", "gzip");
    host.body = body;
    let Outcome::Forwarded(Some(out)) = play(&config, &mut host) else {
        panic!("{:?}", host.reply)
    };
    let kept = Encoding::Gzip.decode(&out, 1 << 20).unwrap();
    assert_eq!(
        String::from_utf8(kept).unwrap(),
        format!(r#"{{"batch":[{CONSENTED}],"sentAt":"x"}}"#)
    );
    assert_eq!(
        host.response_headers,
        vec![("x-consent-gate-dropped".into(), "1".into())]
    );
    assert_eq!(host.count("consent_gate.requests_filtered"), 1);
    assert_eq!(host.count("consent_gate.batch_items_dropped"), 1);
    assert_eq!(host.count("consent_gate.events_denied_category.Ads"), 1);
    assert_eq!(
        host.records,
        ["decision=filter reason=FILTERED_BY_END_USER_CONSENT required=Ads denied=Ads events=2 dropped=1"]
    );
}

#[test]
fn the_upstreams_own_consent_gate_headers_never_reach_the_client() {
    // A destination (or anything behind the filter) answering with the filter's header names
    // would tell the client, and an auditor reading responses, what the filter did not say.
    let spoofed = || -> Vec<(String, String)> {
        vec![
            (
                "x-consent-gate-reason".into(),
                "FILTERED_BY_END_USER_CONSENT".into(),
            ),
            ("x-consent-gate-dropped".into(), "7".into()),
            ("x-upstream".into(), "kept".into()),
        ]
    };
    let config = Config::default();
    let batch = format!(r#"{{"batch":[{CONSENTED},{REFUSED}]}}"#);
    let dry_run = Config::parse(r#"{"dry_run":true}"#).unwrap();
    type Headers = Vec<(String, String)>;
    let cases: [(&Config, Fake, Headers); 4] = [
        (
            &config,
            Fake::post("/v1/track", CONSENTED),
            vec![("x-upstream".into(), "kept".into())],
        ),
        (
            &config,
            Fake::post("/v1/batch", &batch),
            vec![
                ("x-upstream".into(), "kept".into()),
                ("x-consent-gate-dropped".into(), "1".into()),
            ],
        ),
        (
            &dry_run,
            Fake::post("/v1/track", REFUSED),
            vec![("x-upstream".into(), "kept".into())],
        ),
        (
            &config,
            Fake::post("/v1/track", CONSENTED).metadata(None),
            vec![("x-upstream".into(), "kept".into())],
        ),
    ];
    for (config, mut host, expected) in cases {
        host.response_headers = spoofed();
        host.response_trailers = spoofed();
        let mut lc = Lifecycle::default();
        let outcome = play_with(&mut lc, config, &mut host);
        assert!(matches!(outcome, Outcome::Forwarded(_)));
        assert_eq!(host.response_headers, expected);
        // Trailers after the body, as HTTP/2 and chunked HTTP/1.1 carry them.
        lc.on_response_trailers(&mut host);
        assert_eq!(
            host.response_trailers,
            [("x-upstream".into(), "kept".into())]
        );
    }
    // The filter's own reply passes its response hook too (Envoy runs encoders on local
    // replies): its headers stay.
    let mut host = Fake::post("/v1/track", REFUSED);
    let mut lc = Lifecycle::default();
    assert_eq!(lc.on_request_headers(&config, &mut host, false), Flow::Hold);
    let end = lc.on_request_body(&config, &mut host, REFUSED.len(), true);
    assert_eq!(end, Flow::Stop);
    host.response_headers = host.reply.clone().unwrap().2;
    lc.on_response_headers(&mut host);
    assert_eq!(host.response_headers, host.reply.clone().unwrap().2);
    // A removal the host fails is logged, and the other name is still removed.
    let mut host = Fake::post("/v1/track", CONSENTED);
    host.fail_removal_of = Some("x-consent-gate-reason");
    host.response_headers = spoofed();
    host.response_trailers = spoofed();
    let mut lc = Lifecycle::default();
    assert!(matches!(
        play_with(&mut lc, &config, &mut host),
        Outcome::Forwarded(_)
    ));
    lc.on_response_trailers(&mut host);
    for kept in [&host.response_headers, &host.response_trailers] {
        assert!(
            !kept.iter().any(|(n, _)| n == "x-consent-gate-dropped"),
            "{kept:?}"
        );
    }
    assert!(host.logs.iter().any(|(_, m)| m.contains("cannot remove")));
}

#[test]
fn a_failure_the_host_caught_is_counted_and_recorded_as_a_refusal() {
    // The dynamic module catches a panic and refuses the request itself: the lifecycle counts
    // and records it like any refusal, in dry run too, and never as abandoned.
    for config in [
        Config::default(),
        Config::parse(r#"{"dry_run":true}"#).unwrap(),
    ] {
        let mut host = Fake::post("/v1/track", CONSENTED);
        let mut lc = Lifecycle::default();
        assert_eq!(lc.on_request_headers(&config, &mut host, false), Flow::Hold);
        lc.record_failure(&config, &mut host);
        lc.on_stream_end(&config, &mut host);
        assert_eq!(host.count("consent_gate.requests_judged"), 1);
        assert_eq!(host.count("consent_gate.requests_denied"), 1);
        assert_eq!(host.count("consent_gate.events_dropped.INTERNAL_ERROR"), 1);
        assert_eq!(host.count("consent_gate.requests_incomplete"), 0);
        assert_eq!(
            host.records,
            ["decision=deny reason=INTERNAL_ERROR required=Ads denied=- events=1 dropped=1"]
        );
        assert!(host.reply.is_none(), "the host sends the reply");
    }
}

#[test]
fn a_refused_batch_says_how_many_items_were_dropped() {
    let config = Config::default();
    let mut host = Fake::post(
        "/v1/batch",
        &format!(r#"{{"batch":[{REFUSED},{REFUSED}]}}"#),
    );
    assert_eq!(
        play(&config, &mut host),
        replied(403, Reason::FilteredByEndUserConsent)
    );
    let (_, details, headers, body) = host.reply.clone().unwrap();
    assert_eq!(details, "consent_gate.FILTERED_BY_END_USER_CONSENT");
    assert!(
        headers.contains(&("x-consent-gate-dropped".into(), "2".into())),
        "{headers:?}"
    );
    assert!(body.contains(r#""dropped":2"#), "{body}");
}

#[test]
fn route_metadata_mistakes_refuse_with_a_log_line_naming_route_key_and_type() {
    let config = Config::default();
    for (metadata, names) in [
        (
            r#"{"categroy":"Ads"}"#,
            ["\"categroy\"", "the string \"Ads\""],
        ),
        (r#"{"Category":"Ads"}"#, ["\"Category\"", "unknown key"]),
        (
            r#"{"category":"Ads","mtach":"any"}"#,
            ["\"mtach\"", "unknown key"],
        ),
        (r#"{"category":["Ads"]}"#, ["\"category\"", "a list"]),
        (r#"{"category":5}"#, ["\"category\"", "the number 5"]),
        (r#"{"category":true}"#, ["\"category\"", "true"]),
        (
            r#"{"categories":["Ads",5]}"#,
            ["\"categories[1]\"", "the number 5"],
        ),
    ] {
        let mut host = Fake::post("/v1/track", CONSENTED).metadata(Some(metadata));
        assert_eq!(
            play(&config, &mut host),
            replied(500, Reason::RouteConfigError),
            "{metadata}"
        );
        let errors: Vec<&String> = host
            .logs
            .iter()
            .filter(|(l, _)| *l == Level::Error)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(errors.len(), 1, "{metadata}: {:?}", host.logs);
        for want in names.iter().chain(&["route \"ads\"", "\"consent_gate\""]) {
            assert!(
                errors[0].contains(want),
                "{metadata}: {} lacks {want}",
                errors[0]
            );
        }
        assert_eq!(
            host.count("consent_gate.events_dropped.ROUTE_CONFIG_ERROR"),
            1
        );
        assert!(host.replaced.is_none());
    }
}

#[test]
fn ungated_and_exempt_requests_are_counted_and_recorded() {
    let config = Config::default();
    let mut host = Fake::post("/v1/track", REFUSED).metadata(None);
    assert_eq!(play(&config, &mut host), Outcome::Forwarded(None));
    assert_eq!(host.count("consent_gate.requests_ungated"), 1);
    assert_eq!(host.count("consent_gate.requests_judged"), 0);
    assert_eq!(
        host.records,
        ["decision=ungated reason=- required=- denied=- events=0 dropped=0"]
    );

    let mut host = Fake::post("/v1/track", REFUSED).metadata(Some(r#"{"exempt":true}"#));
    assert_eq!(play(&config, &mut host), Outcome::Forwarded(None));
    assert_eq!(host.count("consent_gate.requests_exempt"), 1);
    assert_eq!(host.count("consent_gate.requests_ungated"), 0);
    assert!(host.records[0].starts_with("decision=exempt "));
}

#[test]
fn a_path_that_a_decoding_server_reads_as_another_path_is_refused() {
    // Envoy routes `/open/..%2fads/v1/track` on `/open` (ungated); nginx decodes `%2F` before
    // it resolves the dot segment, and serves `/ads/v1/track`.
    let config = Config::default();
    for path in [
        "/open/..%2fads/v1/track",
        "/open/..%5Cads/v1/track",
        "/open/..;/ads",
    ] {
        for metadata in [None, Some(r#"{"exempt":true}"#)] {
            let mut host = Fake::post(path, REFUSED).metadata(metadata);
            assert_eq!(
                play(&config, &mut host),
                replied(400, Reason::InvalidEvent),
                "{path} {metadata:?}"
            );
            assert!(host.replaced.is_none());
        }
    }
    // So is an escaped slash with no dot segment, or an escaped control character: Go's
    // router, Flask, Django and Sinatra decode `/ads%2fv1/track` and run the `/ads/v1/track`
    // handler, Starlette matches `/v1/identify%0a` as `/v1/identify` (Python's `$`).
    for path in [
        "/open/group%2Fname/v1/track",
        "/ads%2fv1/track",
        "/v1/identify%0a",
    ] {
        let mut host = Fake::post(path, REFUSED).metadata(None);
        assert_eq!(
            play(&config, &mut host),
            replied(400, Reason::InvalidEvent),
            "{path}"
        );
    }
    // Escapes of other characters than unreserved ones (which Envoy's `normalize_path`
    // decodes, so a path holding them is not in normal form) pass as before.
    let mut host = Fake::post("/open/group%3Aname/v1/track%20x", REFUSED).metadata(None);
    assert_eq!(play(&config, &mut host), Outcome::Forwarded(None));
    // A path not in normal form is refused too: Envoy without `normalize_path` routed it as
    // sent, the destination serves its normal form.
    for path in [
        "/open/group%41name/v1/tr%61ck",
        "/open/../ads/v1/track",
        "//ads/v1/track",
        "/open/%u002e%u002e/ads/v1/track",
    ] {
        let mut host = Fake::post(path, REFUSED).metadata(None);
        assert_eq!(
            play(&config, &mut host),
            replied(400, Reason::InvalidEvent),
            "{path}"
        );
    }
    // On a gated route too: the route it was judged under is not the handler that serves it.
    let mut host = Fake::post("/zzz/..%2fads/v1/track", CONSENTED);
    assert_eq!(play(&config, &mut host), replied(400, Reason::InvalidEvent));
    assert!(host.replaced.is_none());
    // A letter that case-insensitive routers fold onto an ASCII one (Envoy's
    // `case_sensitive: false` folds ASCII alone), raw or escaped once or more, on any route:
    // `/faceboo\u{212A}/v1/track` falls to another route, and Fastify runs the `/facebook`
    // handler.
    for metadata in [None, Some(r#"{"category":"Ads"}"#)] {
        for path in [
            "/faceboo\u{212A}/v1/track",
            "/faceboo%E2%84%AA/v1/track",
            "/faceboo%25E2%2584%25AA/v1/track",
            // Half of it escaped again: decoded byte by byte, the next hop completes it.
            "/faceboo%E2%84%25AA/v1/track",
            "/faceboo%E2%2584%25AA/v1/track",
            "/ad%C5%BF/v1/track",
            "/v1/%C4%B1dentify",
            "/v1/%C4%B0dentify",
        ] {
            let mut host = Fake::post(path, CONSENTED).metadata(metadata);
            assert_eq!(
                play(&config, &mut host),
                replied(400, Reason::InvalidEvent),
                "{path} {metadata:?}"
            );
        }
    }
    // A character that Unicode normalisation or Windows' best-fit conversion makes path syntax
    // (`．`, `／`, `∕`, `？`), or an overlong UTF-8 form of one, on any route: a reader that
    // normalises before resolving the path serves `/ads/v1/track`.
    for metadata in [None, Some(r#"{"category":"Ads"}"#)] {
        for path in [
            "/open/%EF%BC%8E%EF%BC%8E/ads/v1/track",
            "/open/\u{FF0E}\u{FF0E}\u{FF0F}ads/v1/track",
            "/open/..%E2%88%95ads/v1/track",
            "/v1/track%EF%BC%9Fdata=e30",
            "/open/%C0%AE%C0%AE/ads/v1/track",
            "/open/..%25C0%25AFads/v1/track",
        ] {
            let mut host = Fake::post(path, CONSENTED).metadata(metadata);
            assert_eq!(
                play(&config, &mut host),
                replied(400, Reason::InvalidEvent),
                "{path} {metadata:?}"
            );
        }
    }
    // Other letters beyond ASCII, escaped or not, pass as before.
    for path in ["/open/caf%C3%A9/v1/track", "/open/\u{e9}t\u{e9}/v1/track"] {
        let mut host = Fake::post(path, REFUSED).metadata(None);
        assert_eq!(play(&config, &mut host), Outcome::Forwarded(None), "{path}");
    }
    // A query in `%3F`, which a decoding proxy hands on as one, on any route.
    for metadata in [None, Some(r#"{"category":"Ads"}"#)] {
        let mut host = Fake::post("/v1/track%3Fdata=e30", CONSENTED).metadata(metadata);
        assert_eq!(play(&config, &mut host), replied(400, Reason::InvalidEvent));
    }
}

#[test]
fn unconfigured_routes_can_be_refused() {
    let config = Config::parse(r#"{"on_unconfigured_route":"deny"}"#).unwrap();
    let mut host = Fake::post("/v1/track", CONSENTED).metadata(None);
    assert_eq!(
        play(&config, &mut host),
        replied(500, Reason::RouteConfigError)
    );
    assert!(host
        .logs
        .iter()
        .any(|(l, m)| *l == Level::Error && m.contains("route \"ads\" has no consent policy")));
    // An explicit opt-out still passes.
    let mut host = Fake::post("/v1/track", CONSENTED).metadata(Some(r#"{"exempt":true}"#));
    assert_eq!(play(&config, &mut host), Outcome::Forwarded(None));
    // A rule is a policy too.
    let config = Config::parse(
        r#"{"on_unconfigured_route":"deny","routes":[{"path_prefix":"/v1/","categories":["Ads"]}]}"#,
    )
    .unwrap();
    let mut host = Fake::post("/V1/track", REFUSED).metadata(None);
    assert_eq!(
        play(&config, &mut host),
        replied(403, Reason::FilteredByEndUserConsent)
    );
}

#[test]
fn rules_see_every_spelling_of_the_target() {
    let config = Config::parse(
        r#"{"routes":[{"host":"api.example.com","path_prefix":"/v1/track","categories":["Ads"],"match":"any"}]}"#,
    )
    .unwrap();
    for (authority, path, status, reason) in [
        (
            "api.example.com",
            "/v1/track",
            403,
            Reason::FilteredByEndUserConsent,
        ),
        (
            "API.EXAMPLE.COM:8080",
            "/v1/track",
            403,
            Reason::FilteredByEndUserConsent,
        ),
        // A trailing dot (Envoy's `strip_trailing_host_dot` off): refused on every route.
        ("api.example.com.", "/v1/track", 400, Reason::InvalidEvent),
        (
            "api.example.com",
            "/V1/TRACK",
            403,
            Reason::FilteredByEndUserConsent,
        ),
        // Not in normal form: refused on every route, before any rule.
        ("api.example.com", "//v1/track", 400, Reason::InvalidEvent),
        (
            "api.example.com",
            "/x/../v1/track",
            400,
            Reason::InvalidEvent,
        ),
        ("api.example.com", "/v1/%74rack", 400, Reason::InvalidEvent),
    ] {
        let mut host = Fake::post(path, REFUSED).metadata(None);
        host.headers[1].1 = authority.into();
        let got = play(&config, &mut host);
        assert_eq!(got, replied(status, reason), "{authority} {path}");
    }
    // An escaped slash is refused before any rule is tried: a decoding server may route it to
    // another handler than Envoy's route.
    let mut host = Fake::post("/v1%2Ftrack", REFUSED).metadata(None);
    assert_eq!(play(&config, &mut host), replied(400, Reason::InvalidEvent));
}

#[test]
fn a_target_a_receiver_reads_otherwise_is_refused_on_every_route() {
    // Envoy chose the route by the authority as sent and by `:path`; these name another host or
    // path to receivers (a catch-all route may be ungated, or gated for other categories).
    let odd: &[(&str, &str)] = &[
        (":authority", "api.example.com:080"),
        (":authority", "api.example.com:"),
        (":authority", "api.example.com:0"),
        (":authority", "api.example.com:80:80"),
        (":authority", "api.example.com:x"),
        ("x-forwarded-host", "ads.example.com"),
        ("x-forwarded-host", "api.example.com, ads.example.com"),
        ("x-original-host", "ads.example.com"),
        (
            "forwarded",
            "for=192.0.2.1;host=ads.example.com;proto=https",
        ),
        ("forwarded", "for=192.0.2.1, host=\"ads.example.com:443\""),
        ("x-original-url", "/ads/v1/track"),
        ("x-rewrite-url", "/ads/v1/track"),
        ("x_forwarded_host", "ads.example.com"),
        // Express cuts a named host at the first `:`: `ads.example.com`.
        ("x-forwarded-host", "ads.example.com:1@api.example.com"),
        (
            "forwarded",
            "for=192.0.2.1;host=ads.example.com:1@api.example.com",
        ),
        // A virtual host for 127.0.0.1 does not match these; a forward proxy connects there.
        (":authority", "127.1"),
        (":authority", "0x7f.0.0.1:8080"),
        (":authority", "[0:0:0:0:0:0:0:1]"),
        (":authority", "[::ffff:127.0.0.1]"),
        (":authority", "api.example.com."),
        // Spring, Reactor Netty and Vert.x find `host=` anywhere in `Forwarded`.
        ("forwarded", "for=192.0.2.1;xhost=ads.example.com"),
        ("forwarded", "for=\"host=ads.example.com\""),
        ("forwarded", "HOST=ads.example.com"),
        ("x-forwarded-server", "ads.example.com"),
    ];
    let config = Config::default();
    {
        for (name, value) in odd {
            for metadata in [Some(r#"{"category":"Ads"}"#), None] {
                let mut host = Fake::post("/v1/track", CONSENTED).metadata(metadata);
                match *name {
                    ":authority" => host.headers[1].1 = (*value).into(),
                    name => host = host.header(name, value),
                }
                assert_eq!(
                    play(&config, &mut host),
                    replied(400, Reason::InvalidEvent),
                    "{name}: {value} ({metadata:?})"
                );
            }
        }
    }
    // The same host or path again, as a proxy in front sets them, passes.
    for (name, value) in [
        ("x-forwarded-host", "API.example.com"),
        ("x-forwarded-host", "api.example.com:443, API.example.com"),
        (
            "forwarded",
            "for=192.0.2.1;host=api.example.com;proto=https",
        ),
        ("forwarded", "for=192.0.2.1"),
        ("x-original-url", "/v1/track"),
    ] {
        let mut host = Fake::post("/v1/track", CONSENTED).header(name, value);
        assert_eq!(
            play(&Config::default(), &mut host),
            Outcome::Forwarded(None),
            "{name}: {value}"
        );
    }
}

#[test]
fn a_body_before_any_headers_is_refused() {
    // A wasm `capability_restriction_config` that leaves out `proxy_on_request_headers`: the
    // body (or the trailers) comes to a filter that never judged the request.
    let config = Config::default();
    for trailers in [false, true] {
        let mut host = Fake::post("/v1/track", REFUSED);
        let mut lc = Lifecycle::default();
        let flow = match trailers {
            false => lc.on_request_body(&config, &mut host, REFUSED.len(), true),
            true => lc.on_request_trailers(&config, &mut host),
        };
        assert_eq!(flow, Flow::Stop);
        let (status, ..) = host.reply.clone().unwrap();
        assert_eq!(status, 500);
        assert!(host
            .logs
            .iter()
            .any(|(l, m)| *l == Level::Error && m.contains("before its headers")));
        // Later callbacks keep it refused.
        assert_eq!(
            lc.on_request_body(&config, &mut host, REFUSED.len(), true),
            Flow::Stop
        );
    }
}

#[test]
fn host_failures_are_refusals_never_forwards() {
    let config = Config::default();
    let mut host = Fake::post("/v1/track", CONSENTED);
    host.fail_body_read = true;
    assert_eq!(
        play(&config, &mut host),
        replied(500, Reason::InternalError)
    );
    let mut host = Fake::post(
        "/v1/batch",
        &format!(r#"{{"batch":[{CONSENTED},{REFUSED}]}}"#),
    );
    host.fail_body_write = true;
    assert_eq!(
        play(&config, &mut host),
        replied(500, Reason::InternalError)
    );
    // A host that hands over less than it buffered: what was read may pass (here, nothing at
    // all, which `allow` forwards), but the rest would go upstream unjudged.
    let allow_missing = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    for read in [0, 10] {
        let mut host = Fake::post("/v1/track", REFUSED);
        host.short_body_read = Some(read);
        assert_eq!(
            play(&allow_missing, &mut host),
            replied(500, Reason::InternalError),
            "{read}"
        );
        assert!(host.logs.iter().any(|(_, l)| l.contains("bytes of a")));
    }
}

#[test]
fn too_large_while_streaming() {
    let config = Config::parse(r#"{"max_body_bytes":100}"#).unwrap();
    let mut host = Fake::post("/v1/track", &format!(r#"{{"pad":"{}"}}"#, "x".repeat(300)));
    host.headers.retain(|(k, _)| k != "content-length"); // chunked: no declared length
    assert_eq!(play(&config, &mut host), replied(413, Reason::BodyTooLarge));
}

#[test]
fn a_request_abandoned_before_its_end_is_counted_never_forwarded() {
    let config = Config::default();
    let incomplete = |host: &Fake| {
        host.counters
            .get("consent_gate.requests_incomplete")
            .copied()
    };
    let warnings = |host: &Fake| {
        host.logs
            .iter()
            .filter(|(level, m)| {
                *level == Level::Warn
                    && m.contains("before any of its body reached the filter")
                    && m.ends_with(Fake::BODY_NEVER_ARRIVES_HINT)
            })
            .count()
    };

    // Part of the body came, then the client hung up.
    let mut host = Fake::post("/v1/track", REFUSED);
    let mut lc = Lifecycle::default();
    assert_eq!(lc.on_request_headers(&config, &mut host, false), Flow::Hold);
    assert_eq!(
        lc.on_request_body(&config, &mut host, 10, false),
        Flow::Hold
    );
    lc.on_stream_end(&config, &mut host);
    assert_eq!(incomplete(&host), Some(1));
    // The record names the policy the request was held under.
    assert_eq!(
        host.records,
        ["decision=incomplete reason=- required=Ads denied=- events=0 dropped=0"]
    );
    assert!(host.reply.is_none() && host.replaced.is_none());
    assert_eq!(warnings(&host), 0);
    // Only once: a second end (Envoy calls one hook) changes nothing.
    lc.on_stream_end(&config, &mut host);
    assert_eq!(incomplete(&host), Some(1));

    // No body ever reached the filter: the likely configuration mistake is named.
    let mut host = Fake::post("/v1/track", REFUSED);
    let mut lc = Lifecycle::default();
    assert_eq!(lc.on_request_headers(&config, &mut host, false), Flow::Hold);
    lc.on_stream_end(&config, &mut host);
    assert_eq!(incomplete(&host), Some(1));
    assert_eq!(warnings(&host), 1);
}

#[test]
fn trailers_end_the_body() {
    let config = Config::default();
    let mut host = Fake::post("/v1/track", REFUSED);
    let mut lc = Lifecycle::default();
    assert_eq!(lc.on_request_headers(&config, &mut host, false), Flow::Hold);
    assert_eq!(
        lc.on_request_body(&config, &mut host, REFUSED.len(), false),
        Flow::Hold
    );
    assert_eq!(lc.on_request_trailers(&config, &mut host), Flow::Stop);
    assert!(host.reply.is_some());
}

#[test]
fn dry_run_forwards_untouched_and_records_what_would_happen() {
    let config = Config::parse(r#"{"dry_run":true}"#).unwrap();
    let mut host = Fake::post("/v1/track", REFUSED);
    assert_eq!(play(&config, &mut host), Outcome::Forwarded(None));
    assert!(host.records[0].starts_with("decision=would_deny reason=FILTERED_BY_END_USER_CONSENT"));
    assert_eq!(host.count("consent_gate.requests_denied"), 1);
    assert!(host.response_headers.is_empty());
}

#[test]
fn the_decision_record_can_be_turned_off_and_nothing_else_changes() {
    let on = Config::default();
    let off = Config::parse(r#"{"decision_record":false}"#).unwrap();
    for body in [CONSENTED, REFUSED] {
        let (mut a, mut b) = (Fake::post("/v1/track", body), Fake::post("/v1/track", body));
        assert_eq!(play(&on, &mut a), play(&off, &mut b));
        assert_eq!(a.records.len(), 1);
        assert!(b.records.is_empty(), "{:?}", b.records);
        assert_eq!(a.counters, b.counters);
        assert_eq!(a.logs, b.logs);
    }
    // Ungated requests leave no record either.
    let mut host = Fake::post("/v1/track", REFUSED);
    host.metadata = None;
    assert_eq!(play(&off, &mut host), Outcome::Forwarded(None));
    assert!(host.records.is_empty());
    assert_eq!(host.count("consent_gate.requests_ungated"), 1);
}

#[test]
fn logs_carry_no_event_content() {
    let config = Config::default();
    let secret = "jane.doe@example.org";
    let body = REFUSED.replace("\"Buy\"", &format!("\"{secret}\""));
    let mut host = Fake::post("/v1/track", &body);
    play(&config, &mut host);
    let everything = format!("{:?} {:?} {:?}", host.logs, host.records, host.reply);
    assert!(!everything.contains(secret));
    assert!(host
        .logs
        .iter()
        .any(|(_, m)| m.starts_with("route=ads decision=deny")));
}

#[test]
fn the_route_match_mode_comes_from_the_plugin_unless_the_route_says() {
    let config = Config::parse(r#"{"match":"any"}"#).unwrap();
    let both = r#"{"categories":["Ads","Other"]}"#;
    let mut host = Fake::post("/v1/track", CONSENTED).metadata(Some(both));
    assert_eq!(play(&config, &mut host), Outcome::Forwarded(None));
    let all = r#"{"categories":["Ads","Other"],"match":"all"}"#;
    let mut host = Fake::post("/v1/track", CONSENTED).metadata(Some(all));
    assert_eq!(
        play(&config, &mut host),
        replied(403, Reason::FilteredByEndUserConsent)
    );
    assert!(matches!(
        RouteSetting::from_json(both, Match::Any),
        Ok(RouteSetting::Gated(p)) if p.match_mode == Match::Any
    ));
}

#[test]
fn a_request_that_asks_for_an_upgrade_is_refused_on_a_gated_route() {
    // An upgraded stream never ends (the filter would hold it for good), and HTTP/2's extended
    // CONNECT reaches an HTTP/1.1 destination as a GET with `upgrade` and the body unframed.
    let config = Config::default();
    for (name, value) in [
        ("upgrade", "websocket"),
        ("upgrade", "h2c"),
        (":protocol", "websocket"),
    ] {
        for body in [CONSENTED, ""] {
            let mut host = Fake::post("/v1/track", body)
                .header(name, value)
                .header("connection", "upgrade");
            assert_eq!(
                play(&config, &mut host),
                replied(400, Reason::InvalidEvent),
                "{name}: {value} {body}"
            );
        }
    }
    // Ungated routes carry their upgrades as before.
    let mut host = Fake::post("/v1/track", CONSENTED)
        .metadata(None)
        .header("upgrade", "websocket");
    assert_eq!(play(&config, &mut host), Outcome::Forwarded(None));
}

#[test]
fn a_cors_preflight_without_a_body_is_forwarded() {
    // A browser sends an SDK's events only after its preflight is answered: refused, the page's
    // consented events would never leave either. It carries no event; with a body, or a query
    // that may carry one, it is judged as any request.
    let config = Config::default();
    let preflight = |path: &str, body: &str| {
        Fake::post(path, body)
            .header(":method", "OPTIONS")
            .header("access-control-request-method", "POST")
            .header("origin", "https://shop.example")
    };
    let mut host = preflight("/v1/track", "");
    assert_eq!(play(&config, &mut host), Outcome::Forwarded(None));
    assert_eq!(
        host.records,
        ["decision=allow reason=- required=Ads denied=- events=0 dropped=0"]
    );
    for (mut host, reason) in [
        // Not a preflight: no event, no consent.
        (
            Fake::post("/v1/track", "").header(":method", "OPTIONS"),
            "MISSING_CONSENT",
        ),
        (
            Fake::post("/v1/track", "")
                .header(":method", "GET")
                .header("access-control-request-method", "POST"),
            "MISSING_CONSENT",
        ),
        // A preflight with a body, or with a query that may carry an event.
        (
            preflight("/v1/track", REFUSED),
            "FILTERED_BY_END_USER_CONSENT",
        ),
        (preflight("/v1/pixel/track?data=e30", ""), "INVALID_EVENT"),
    ] {
        match play(&config, &mut host) {
            Outcome::Replied(_, got) => assert_eq!(got, reason),
            other => panic!("{other:?}"),
        }
    }
}
