//! What the fuzz targets share: the request they judge, and the checks that every forwarded
//! body must pass (it reads alike to every reference reader, and only as allowed items).

#[path = "../../tests/support/readers.rs"]
pub mod readers;

use consent_gate::config::Config;
use consent_gate::decision::{judge, Action, Judgement, Reason, Request};
use consent_gate::encoding::Encoding;
use consent_gate::policy::{Match, RoutePolicy};

/// The endpoints a fuzz input can be sent to (chosen by its first byte).
pub const PATHS: [&str; 8] = [
    "/v1/track",
    "/v1/t",
    "/v1/identify",
    "/v1/batch",
    "/v1/b",
    "/collect",
    "/v1/pixel/track?data=e30",
    "/v1/x/../track",
];

/// A plugin configuration and a route, chosen by the bits of one fuzz input byte: missing
/// consent allowed (bit 0), match any (bit 1), the consent format (bits 2-3: Segment,
/// RudderStack, auto), a destination (bit 4), and a `Sec-GPC: 1` request (bit 5). The route
/// requires Advertising and Analytics; GPC withdraws Advertising.
pub struct Setup {
    pub config: Config,
    pub policy: RoutePolicy,
    pub gpc: bool,
    format: &'static str,
    missing_allowed: bool,
    match_any: bool,
}

impl Setup {
    pub fn from_bits(bits: u8) -> Setup {
        let missing_allowed = bits & 1 != 0;
        let match_any = bits & 2 != 0;
        let format = ["segment", "rudderstack", "auto", "auto"][usize::from(bits >> 2 & 3)];
        let config = Config::parse(&format!(
            r#"{{"consent_format":"{format}","on_missing_consent":"{}"}}"#,
            if missing_allowed { "allow" } else { "deny" }
        ))
        .expect("a valid configuration");
        let policy = RoutePolicy::new(
            vec!["Advertising".into(), "Analytics".into()],
            if match_any { Match::Any } else { Match::All },
        )
        .with_extras(
            "",
            (bits & 16 != 0).then(|| "Mixpanel".to_string()),
            Some(vec!["Advertising".into()]),
        )
        .expect("a valid policy");
        Setup {
            config,
            policy,
            gpc: bits & 32 != 0,
            format,
            missing_allowed,
            match_any,
        }
    }
}

/// Judges `body` at `path` and checks what a judgement must always be.
pub fn judge_and_check(setup: &Setup, path: &str, encoding: Option<&str>, body: &[u8]) -> Judgement {
    let req = Request {
        config: &setup.config,
        policy: &setup.policy,
        content_encoding: encoding,
        path,
        gpc: setup.gpc,
        form: false,
        preflight: false,
    };
    let j = judge(&req, body);
    let by_reason: u32 = j.dropped_by_reason.iter().sum();
    assert_eq!(by_reason, j.dropped, "{j:?}");
    assert!(j.dropped <= j.events.max(1), "{j:?}");
    if let Action::Reply(reason) = j.action {
        assert!(j.dropped > 0 || reason == Reason::FilteredByEndUserConsent, "{j:?}");
    }
    let forwarded = match &j.action {
        Action::Forward => Some(body.to_vec()),
        Action::Rewrite(b) => Some(b.clone()),
        Action::Reply(_) => None,
    };
    if let Some(out) = forwarded {
        let plain = match Encoding::from_header(encoding) {
            Some(Encoding::Identity) | None => out,
            Some(enc) => enc.decode(&out, usize::MAX).expect("a forwarded body decodes"),
        };
        check_forwarded(setup, path, &plain);
    }
    j
}

/// Every reference reader reads the forwarded body alike, and every item it reads is allowed (as
/// is every batch item read with the batch's context merged in deeply).
pub fn check_forwarded(setup: &Setup, path: &str, plain: &[u8]) {
    if plain.is_empty() {
        return;
    }
    let route = readers::Route {
        categories: &setup.policy.categories,
        segment: setup.format != "rudderstack",
        rudder: setup.format != "segment",
        destination: setup.policy.destination.as_deref(),
    };
    use consent_gate::event::Call;
    use consent_gate::target::Endpoint;
    let judge = readers::Judge {
        format: setup.format,
        missing_allowed: setup.missing_allowed,
        match_any: setup.match_any,
        withdrawn: vec![setup.gpc, false],
        allow_listed: &setup.config.always_allow_events,
        track_endpoint: matches!(
            Endpoint::of_path(path),
            Endpoint::Unnamed | Endpoint::Batch | Endpoint::Single(Call::Track)
        ),
    };
    for item in readers::read_merged_deeply(plain, &route).unwrap_or_default() {
        assert!(judge.allows(&item), "a deep merge reads a refused item {item:?}");
    }
    let mut first: Option<readers::Reading> = None;
    for r in readers::READERS {
        let Some(reading) = readers::read(r, path, plain, &route) else {
            // serde_json refuses what it cannot nest (more than 128 deep): nothing to compare.
            return;
        };
        for item in &reading.items {
            assert!(judge.allows(item), "{r:?} reads a refused item {item:?}");
        }
        let reading = Some(reading);
        match &first {
            None => first = reading,
            Some(_) => assert!(
                readers::reads_alike(r, &reading, &first),
                "{r:?} reads the forwarded body differently: {reading:?}, not {first:?}"
            ),
        }
    }
}
