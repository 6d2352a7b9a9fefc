//! Hostile and random input: the decision core must never panic, must agree with a reference JSON
//! parser on what is valid, and must never let an item through that it did not allow.

use consent_gate::config::Config;
use consent_gate::decision::{judge, Action, Request};
use consent_gate::json::Scanner;
use consent_gate::policy::{Match, RoutePolicy};
use proptest::prelude::*;
use serde_json::{json, Value};

fn policy() -> RoutePolicy {
    RoutePolicy::new(vec!["Advertising".into(), "Analytics".into()], Match::All)
}

/// Random JSON-like text: real JSON fragments spliced with noise, so most inputs get deep into
/// the scanner before they break.
fn jsonish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\"context\"".to_string()),
        Just("\"consent\"".to_string()),
        Just("\"categoryPreferences\"".to_string()),
        Just("\"Advertising\"".to_string()),
        Just("\"batch\"".to_string()),
        Just("\"type\"".to_string()),
        Just("\"track\"".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
        Just("\\u0041".to_string()),
        Just("\\ud83d\\ude00".to_string()),
        Just("\\ud800".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("-0.5e3".to_string()),
        Just("1e999".to_string()),
        Just("2e308".to_string()),
        Just("17976931348623157e292".to_string()),
        Just("01".to_string()),
        "[a-z0-9 ]{0,4}",
    ];
    prop::collection::vec(atom, 0..40).prop_map(|parts| parts.concat())
}

fn scanner_accepts(text: &str) -> bool {
    let mut s = Scanner::new(text);
    s.skip_value().is_ok() && s.at_end()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn judge_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512), enc in 0usize..4) {
        let encodings = [None, Some("gzip"), Some("deflate"), Some("identity")];
        let config = Config::default();
        let p = policy();
        let _ = judge(&Request { config: &config, policy: &p, content_encoding: encodings[enc], path: "/v1/track", gpc: false, form: false, preflight: false }, &body);
    }

    #[test]
    fn utf8_agrees_with_the_standard_check(
        ascii in prop::collection::vec(0u8..0x80, 0..400),
        inserts in prop::collection::vec((any::<prop::sample::Index>(), any::<char>(), any::<u8>(), any::<bool>()), 0..6),
    ) {
        // Characters beyond ASCII (whole, or cut by the next insert), or stray bytes.
        let mut bytes = ascii;
        for (at, c, b, whole) in inserts {
            let at = at.index(bytes.len() + 1);
            let mut utf8 = [0; 4];
            let piece: Vec<u8> = if whole { c.encode_utf8(&mut utf8).as_bytes().to_vec() } else { vec![b] };
            bytes.splice(at..at, piece);
        }
        prop_assert_eq!(
            consent_gate::json::utf8(&bytes).is_some(),
            std::str::from_utf8(&bytes).is_ok()
        );
    }

    #[test]
    fn judge_never_panics_on_jsonish_text(text in jsonish()) {
        let config = Config::default();
        let p = policy();
        let _ = judge(&Request { config: &config, policy: &p, content_encoding: None, path: "/", gpc: false, form: false, preflight: false }, text.as_bytes());
        let wrapped = format!("{{\"batch\":[{text}],\"context\":{{\"consent\":{text}}}}}");
        let _ = judge(&Request { config: &config, policy: &p, content_encoding: None, path: "/", gpc: false, form: false, preflight: false }, wrapped.as_bytes());
    }

    #[test]
    fn scanner_agrees_with_serde_json_on_validity(text in jsonish()) {
        let reference = serde_json::from_str::<Value>(&text);
        // serde_json stops at 128 levels of nesting, the scanner at 512. Both refuse a number too
        // large for a double.
        let skip = matches!(&reference, Err(e) if e.to_string().contains("recursion"));
        if !skip {
            prop_assert_eq!(scanner_accepts(&text), reference.is_ok(), "text: {:?}", text);
        }
    }

    #[test]
    fn scanner_refuses_exactly_the_numbers_a_double_cannot_hold(
        text in r"-?(0|[1-9][0-9]{0,30}|1797693134862315[0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?(0{0,3}29[0-9]|30[0-9]|31[0-9]|[0-9]{1,4}))?",
    ) {
        // Rust's float parser rounds correctly: infinity is exactly "too large for a double".
        let finite = text.parse::<f64>().map(f64::is_finite).unwrap_or(false);
        prop_assert_eq!(scanner_accepts(&text), finite, "{}", text);
    }

    #[test]
    fn batches_forward_exactly_the_allowed_items(
        items in prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 0..30),
        top in prop::option::of(any::<bool>()),
    ) {
        // Each item: (has own consent, Advertising, Analytics).
        let mut batch = Vec::new();
        let mut expected = Vec::new();
        for (i, (own, ad, an)) in items.iter().enumerate() {
            let id = format!("m{i}");
            let mut e = json!({"type": "track", "messageId": id});
            let consent = if *own {
                e["context"] = json!({"consent": {"categoryPreferences": {"Advertising": ad, "Analytics": an}}});
                Some(*ad && *an)
            } else {
                top
            };
            if consent == Some(true) {
                expected.push(id);
            }
            batch.push(e);
        }
        let mut body = json!({"batch": batch, "sentAt": "now"});
        if let Some(t) = top {
            body["context"] = json!({"consent": {"categoryPreferences": {"Advertising": t, "Analytics": t}}});
        }
        let text = body.to_string();
        let config = Config::default();
        let p = policy();
        let j = judge(&Request { config: &config, policy: &p, content_encoding: None, path: "/", gpc: false, form: false, preflight: false }, text.as_bytes());
        let forwarded: Vec<String> = match &j.action {
            Action::Forward => batch_ids(text.as_bytes()),
            Action::Rewrite(out) => {
                let v: Value = serde_json::from_slice(out).unwrap();
                prop_assert_eq!(&v["sentAt"], &json!("now"));
                batch_ids(out)
            }
            Action::Reply(_) => Vec::new(),
        };
        prop_assert_eq!(forwarded, expected);
    }
}

fn batch_ids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["messageId"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scanner_and_serde_json_agree_on_number_range() {
    // A number too large for a double is read two ways (Go and serde_json refuse it, Python and
    // JavaScript read infinity): the scanner refuses it as serde_json does.
    let long = ["1".repeat(309), "2".repeat(309), "9".repeat(308)];
    let texts = [
        "1e999",
        "-2e308",
        "66e666666666",
        "1.8e308",
        "1.7976931348623157e308",
        "-1e308",
        "1e-999",
        "0e999",
        "0.0e-999",
        "1E+308",
        "12e307",
        &long[0],
        &long[1],
        &long[2],
    ];
    for text in texts {
        let reference = serde_json::from_str::<Value>(text).is_ok();
        assert_eq!(scanner_accepts(text), reference, "{text}");
        let wrapped = format!("{{\"properties\":{{\"n\":{text}}}}}");
        assert_eq!(scanner_accepts(&wrapped), reference, "{wrapped}");
    }
}

#[test]
fn the_largest_numbers_a_double_holds_are_accepted_and_no_more() {
    // 2^1024 - 2^970 is halfway past the largest double: it rounds (to even) to infinity.
    let limit = "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792";
    let just_below = format!("{}1e-1", &limit[..limit.len() - 1]);
    let cases = [
        (limit.to_string(), false),
        (format!("{limit}.0000000001"), false),
        (format!("0.{limit}e309"), false),
        (format!("-{limit}"), false),
        (just_below.clone(), true),
        (format!("-{just_below}"), true),
        ("1.7976931348623158e308".to_string(), true),
        ("0.00017976931348623159e312".to_string(), false),
        (
            "179769313486231580793728971405303415079934e266".to_string(),
            true,
        ),
    ];
    for (text, holds) in cases {
        assert_eq!(
            text.parse::<f64>().map(f64::is_finite),
            Ok(holds),
            "reference: {text}"
        );
        assert_eq!(scanner_accepts(&text), holds, "{text}");
    }
}
