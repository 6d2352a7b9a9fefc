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

pub fn policy(any: bool) -> RoutePolicy {
    RoutePolicy {
        categories: vec!["Advertising".into(), "Analytics".into()],
        match_mode: if any { Match::Any } else { Match::All },
    }
}

/// Judges `body` at `path` and checks what a judgement must always be.
pub fn judge_and_check(config: &Config, policy: &RoutePolicy, path: &str, encoding: Option<&str>, body: &[u8]) -> Judgement {
    let req = Request { config, policy, content_encoding: encoding, path };
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
        check_forwarded(config, policy, path, &plain);
    }
    j
}

/// Every reference reader reads the forwarded body alike, and every item it reads is allowed.
pub fn check_forwarded(config: &Config, policy: &RoutePolicy, path: &str, plain: &[u8]) {
    if plain.is_empty() {
        return;
    }
    let mut first: Option<readers::Reading> = None;
    for r in readers::READERS {
        let Some(reading) = readers::read(r, path, plain, &policy.categories) else {
            // serde_json refuses what it cannot nest (more than 128 deep): nothing to compare.
            return;
        };
        for item in &reading.items {
            assert!(item_allowed(config, policy, path, item), "{r:?} reads a refused item {item:?}");
        }
        match &first {
            None => first = Some(reading),
            Some(f) => assert_eq!(f, &reading, "{r:?} reads the forwarded body differently"),
        }
    }
}

fn item_allowed(config: &Config, policy: &RoutePolicy, path: &str, item: &readers::ItemReading) -> bool {
    let endpoint = consent_gate::target::Endpoint::of_path(path);
    use consent_gate::event::Call;
    use consent_gate::target::Endpoint;
    let track_endpoint = matches!(endpoint, Endpoint::Unnamed | Endpoint::Batch | Endpoint::Single(Call::Track));
    if item.call.as_deref() == Some("track")
        && track_endpoint
        && item.event.as_ref().is_some_and(|e| config.always_allow_events.contains(e))
    {
        return true;
    }
    match &item.consent {
        Some(Some(bits)) => match policy.match_mode {
            Match::All => bits.iter().all(|b| *b),
            Match::Any => bits.iter().any(|b| *b),
        },
        _ => config.on_missing_consent == consent_gate::config::MissingConsent::Allow,
    }
}
