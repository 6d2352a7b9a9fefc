//! Batches: each item judged like a single event, the batch's context merged under each item's.

use consent_gate::config::Config;
use consent_gate::decision::{judge, Action, Judgement, Reason, Request};
use consent_gate::encoding::Encoding;
use consent_gate::policy::{Match, RoutePolicy};
use serde_json::{json, Value};

fn ads() -> RoutePolicy {
    RoutePolicy::new(vec!["Advertising".into()], Match::All)
}

fn run(config: &Config, body: &str) -> Judgement {
    judge(
        &Request {
            config,
            policy: &ads(),
            content_encoding: None,
            path: "/v1/batch",
            gpc: false,
            form: false,
            preflight: false,
        },
        body.as_bytes(),
    )
}

fn item(id: &str, prefs: Option<Value>) -> Value {
    let mut e =
        json!({"type": "track", "event": "Order Completed", "messageId": id, "userId": "u1"});
    if let Some(p) = prefs {
        e["context"] = json!({"consent": {"categoryPreferences": p}});
    }
    e
}

/// The message ids a rewritten body still carries.
fn kept_ids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["messageId"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn all_allowed_is_forwarded_untouched() {
    let body = json!({"batch": [item("a", Some(json!({"Advertising": true}))), item("b", Some(json!({"Advertising": true})))]});
    let j = run(&Config::default(), &body.to_string());
    assert_eq!(j.action, Action::Forward);
    assert!(j.is_batch);
    assert_eq!((j.events, j.dropped), (2, 0));
}

#[test]
fn mixed_batch_keeps_only_allowed_items_in_order_and_every_other_field() {
    let body = format!(
        "{{\"sentAt\":\"2026-01-01T00:00:00Z\", \"writeKey\":\"k\",\n \"batch\": [\n  {},\n  {},\n  {},\n  {},\n  42\n ],\n \"context\": {{\"library\": {{\"name\": \"x\"}}}}}}",
        item("a", Some(json!({"Advertising": true}))),
        item("b", Some(json!({"Advertising": false}))),
        item("c", None),
        item("d", Some(json!({"Advertising": true, "Other": false}))),
    );
    let j = run(&Config::default(), &body);
    let Action::Rewrite(out) = &j.action else {
        panic!("expected a rewrite, got {:?}", j.action)
    };
    assert_eq!(kept_ids(out), vec!["a", "d"]);
    assert_eq!((j.events, j.dropped), (5, 3));
    assert_eq!(
        j.dropped_by_reason[Reason::FilteredByEndUserConsent.index()],
        1
    );
    assert_eq!(j.dropped_by_reason[Reason::MissingConsent.index()], 1);
    assert_eq!(j.dropped_by_reason[Reason::InvalidEvent.index()], 1);
    // Byte-wise: the prefix up to `[` and the suffix from `]` are the client's; items verbatim.
    let text = String::from_utf8(out.clone()).unwrap();
    let open = body.find('[').unwrap();
    let close = body.rfind(']').unwrap();
    assert!(text.starts_with(&body[..=open]));
    assert!(text.ends_with(&body[close..]));
    let expected_inside = format!(
        "{},{}",
        item("a", Some(json!({"Advertising": true}))),
        item("d", Some(json!({"Advertising": true, "Other": false})))
    );
    assert_eq!(
        &text[open + 1..text.len() - (body.len() - close)],
        expected_inside
    );
}

#[test]
fn top_level_consent_applies_to_items_without_their_own() {
    let body = json!({
        "context": {"consent": {"categoryPreferences": {"Advertising": true}}},
        "batch": [
            item("inherits", None),
            item("own-refusal-wins", Some(json!({"Advertising": false}))),
            {"type": "track", "messageId": "own-empty-consent-wins", "context": {"consent": {}}},
            {"type": "track", "messageId": "context-without-consent-inherits", "context": {"ip": "x"}},
        ]
    });
    let j = run(&Config::default(), &body.to_string());
    let Action::Rewrite(out) = &j.action else {
        panic!("{:?}", j.action)
    };
    assert_eq!(
        kept_ids(out),
        vec!["inherits", "context-without-consent-inherits"]
    );
    assert_eq!(
        j.dropped_by_reason[Reason::FilteredByEndUserConsent.index()],
        1
    );
    assert_eq!(j.dropped_by_reason[Reason::MissingConsent.index()], 1);

    let refused_top = json!({
        "context": {"consent": {"categoryPreferences": {"Advertising": false}}},
        "batch": [item("granted-by-item", Some(json!({"Advertising": true}))), item("inherits-refusal", None)]
    });
    let Action::Rewrite(out) = run(&Config::default(), &refused_top.to_string()).action else {
        panic!()
    };
    assert_eq!(kept_ids(&out), vec!["granted-by-item"]);
}

#[test]
fn an_item_is_kept_only_if_every_way_of_merging_the_batch_context_allows_it() {
    let rudder = |denied: &[&str]| json!({"deniedConsentIds": denied});
    let cases = [
        // (format, on_missing_consent, batch context, item context, kept)
        // Segment's rule: the item's own consent wins over the batch's.
        (
            "segment",
            "deny",
            json!({"consent": {"categoryPreferences": {"Advertising": false}}}),
            json!({"consent": {"categoryPreferences": {"Advertising": true}}}),
            true,
        ),
        // RudderStack's consent at batch level: the gateway drops it (the item has none), Jitsu
        // merges it into the item: a denial in either reading drops the item.
        (
            "rudderstack",
            "allow",
            json!({"consentManagement": rudder(&["Advertising"])}),
            json!({"ip": "x"}),
            false,
        ),
        (
            "rudderstack",
            "allow",
            json!({"consentManagement": rudder(&[])}),
            json!({"ip": "x"}),
            true,
        ),
        (
            "rudderstack",
            "allow",
            json!({"consentManagement": rudder(&[])}),
            json!({"consentManagement": rudder(&["Analytics"])}),
            true,
        ),
        // Merged all the way down, the batch's other spelling of a category sits beside the
        // item's exact key in one object: Facade's obj-case reads the first (the batch's, after
        // lodash's `merge`), Go's struct the last (after `defaultsDeep`). Dropped even with the
        // same answer: the filter keeps no answers of other spellings (SDKs send no consent at
        // a batch's top level).
        (
            "segment",
            "deny",
            json!({"consent": {"categoryPreferences": {"advertising": false}}}),
            json!({"consent": {"categoryPreferences": {"Advertising": true}}}),
            false,
        ),
        (
            "segment",
            "deny",
            json!({"consent": {"categoryPreferences": {"Ad-vertising": true}}}),
            json!({"consent": {"categoryPreferences": {"Advertising": true}}}),
            false,
        ),
        // Merged all the way down (lodash's `merge`, `defaultsDeep`), lists element by element:
        // the item's empty list keeps the batch's denial, a shorter one the batch's later IDs,
        // and an item whose consent states nothing takes the batch's preferences, which
        // `on_missing_consent: allow` must not let pass.
        (
            "rudderstack",
            "allow",
            json!({"consentManagement": rudder(&["Advertising"])}),
            json!({"consentManagement": rudder(&[])}),
            false,
        ),
        (
            "rudderstack",
            "deny",
            json!({"consentManagement": rudder(&["Analytics", "Advertising"])}),
            json!({"consentManagement": rudder(&["Functional"])}),
            false,
        ),
        (
            "rudderstack",
            "allow",
            json!({"consentManagement": rudder(&["Advertising"])}),
            json!({"consentManagement": {"allowedConsentIds": ["Advertising"]}}),
            false,
        ),
        (
            "segment",
            "allow",
            json!({"consent": {"categoryPreferences": {"Advertising": false}}}),
            json!({"consent": {}}),
            false,
        ),
        (
            "segment",
            "allow",
            json!({"consent": {"categoryPreferences": {"Advertising": true}}}),
            json!({"consent": {}}),
            true,
        ),
        (
            "segment",
            "allow",
            json!({"consent": {}}),
            json!({"consent": {}}),
            true,
        ),
        (
            "rudderstack",
            "deny",
            json!({"consentManagement": rudder(&[])}),
            json!({"ip": "x"}),
            false,
        ),
        // Under `auto`, merging gives the item both shapes, in either direction.
        (
            "auto",
            "deny",
            json!({"consentManagement": rudder(&["Advertising"])}),
            json!({"consent": {"categoryPreferences": {"Advertising": true}}}),
            false,
        ),
        (
            "auto",
            "deny",
            json!({"consent": {"categoryPreferences": {"Advertising": true}}}),
            json!({"consentManagement": rudder(&[])}),
            false,
        ),
        (
            "auto",
            "deny",
            json!({"ip": "x"}),
            json!({"consent": {"categoryPreferences": {"Advertising": true}}}),
            true,
        ),
    ];
    for (format, missing, top, own, kept) in cases {
        let config = Config::parse(&format!(
            r#"{{"consent_format":"{format}","on_missing_consent":"{missing}"}}"#
        ))
        .unwrap();
        let body = json!({
            "context": top,
            "batch": [{"type": "track", "messageId": "x", "context": own}]
        });
        let j = run(&config, &body.to_string());
        assert_eq!(
            j.dropped == 0,
            kept,
            "{format} {missing} {body}: {:?}",
            j.action
        );
    }
}

#[test]
fn nothing_allowed_is_answered_locally_with_counts() {
    let body = json!({"batch": [item("a", Some(json!({"Advertising": false}))), item("b", None)]});
    let j = run(&Config::default(), &body.to_string());
    assert_eq!(j.action, Action::Reply(Reason::FilteredByEndUserConsent));
    assert_eq!((j.events, j.dropped), (2, 2));
    let reply: Value = serde_json::from_str(&consent_gate::reply::body(
        Reason::FilteredByEndUserConsent,
        &j,
        Some(&ads()),
    ))
    .unwrap();
    assert_eq!(reply["dropped"], 2);
    assert_eq!(reply["events"], 2);
    assert_eq!(
        reply["dropped_by_reason"],
        json!({"FILTERED_BY_END_USER_CONSENT": 1, "MISSING_CONSENT": 1})
    );
    assert_eq!(reply["categories"], json!(["Advertising"]));

    // Items without consent are consent denials too; only a batch of nothing but unreadable
    // items is an invalid request.
    let only_missing = json!({"batch": [item("a", None), item("b", None)]});
    assert_eq!(
        run(&Config::default(), &only_missing.to_string()).action,
        Action::Reply(Reason::FilteredByEndUserConsent)
    );
    let only_invalid = json!({"batch": [1, "x", null]});
    assert_eq!(
        run(&Config::default(), &only_invalid.to_string()).action,
        Action::Reply(Reason::InvalidEvent)
    );
}

#[test]
fn reject_mode_refuses_the_whole_batch_on_any_denial() {
    let config = Config::parse(r#"{"batch_mode":"reject"}"#).unwrap();
    let body = json!({"batch": [item("a", Some(json!({"Advertising": true}))), item("b", Some(json!({"Advertising": false})))]});
    let j = run(&config, &body.to_string());
    assert_eq!(j.action, Action::Reply(Reason::FilteredByEndUserConsent));
    assert_eq!(j.dropped, 1);
    let fine = json!({"batch": [item("a", Some(json!({"Advertising": true})))]});
    assert_eq!(run(&config, &fine.to_string()).action, Action::Forward);
}

#[test]
fn unreadable_items_are_dropped_and_unreadable_batches_refused() {
    // Each body: an item "ok" and one read two ways, which is dropped as INVALID_EVENT.
    let kept = |body: &str| {
        let j = run(&Config::default(), body);
        let Action::Rewrite(out) = &j.action else {
            panic!("{:?}", j.action)
        };
        assert_eq!(j.dropped_by_reason[Reason::InvalidEvent.index()], 1);
        kept_ids(out)
    };
    let with_ok = |other: &str| {
        format!(
            r#"{{"batch":[{},{other}]}}"#,
            item("ok", Some(json!({"Advertising": true})))
        )
    };
    let dup = with_ok(
        r#"{"type":"track","messageId":"dup","context":{"consent":{"categoryPreferences":{"Advertising":false,"Advertising":true}}}}"#,
    );
    assert_eq!(kept(&dup), vec!["ok"]);

    // A key json-iterator/go takes for `consent` (tests/support/jsoniter_keys.json).
    let keys: Value = serde_json::from_str(include_str!("support/jsoniter_keys.json")).unwrap();
    let mut twice = item("twice", Some(json!({"Advertising": true})));
    twice["context"][keys["folded"]["consent"].as_str().unwrap()] =
        json!({"categoryPreferences": {"Advertising": false}});
    assert_eq!(kept(&with_ok(&twice.to_string())), vec!["ok"]);

    // The category in another case before its exact key: cJSON's lookup, which ignores ASCII
    // case, reads the refusal.
    let recased = with_ok(
        r#"{"type":"track","messageId":"recased","context":{"consent":{"categoryPreferences":{"advertising":false,"Advertising":true}}}}"#,
    );
    assert_eq!(kept(&recased), vec!["ok"]);

    // A batch of its own in an item (or a key some reader takes for `batch`): a receiver that
    // reads an event or a batch through one model delivers the refused event inside.
    let denied = item("n", Some(json!({"Advertising": false})));
    for nested in [
        format!(r#"{{"messageId":"outer","batch":[{denied}]}}"#),
        format!(r#"{{"messageId":"outer","Batch":[{denied}]}}"#),
        format!(r#"{{"messageId":"outer","b\u0061tch":[{denied}]}}"#),
        format!(
            r#"{{"type":"track","messageId":"outer","context":{{"consent":{{"categoryPreferences":{{"Advertising":true}}}}}},"batch":[{denied}]}}"#
        ),
    ] {
        let body = format!(
            r#"{{"batch":[{},{nested}],"context":{{"consent":{{"categoryPreferences":{{"Advertising":true}}}}}}}}"#,
            item("ok", Some(json!({"Advertising": true})))
        );
        assert_eq!(kept(&body), vec!["ok"], "{body}");
    }

    for unreadable in [
        r#"{"batch":{}}"#,
        r#"{"batch":[],"batch":[]}"#,
        r#"{"batch":[{"type":"track"}],"context":{"consent":{"categoryPreferences":1}}}"#,
        r#"{"batch":[{"type":"track"}],"context":{"consent":{},"consent":{}}}"#,
        r#"{"batch":[{"type":"track"},]}"#,
        r#"{"batch":[{"type":"track"}]"#,
    ] {
        assert_eq!(
            run(&Config::default(), unreadable).action,
            Action::Reply(Reason::InvalidEvent),
            "{unreadable}"
        );
    }
}

#[test]
fn empty_batch_has_nothing_to_refuse() {
    let j = run(&Config::default(), r#"{"batch":[],"sentAt":"x"}"#);
    assert_eq!(j.action, Action::Forward);
    assert_eq!((j.events, j.dropped), (0, 0));
}

#[test]
fn rewritten_compressed_batches_are_compressed_the_same_way() {
    let body = json!({"batch": [item("a", Some(json!({"Advertising": true}))), item("b", Some(json!({"Advertising": false})))]}).to_string();
    for (enc, header) in [(Encoding::Gzip, "gzip"), (Encoding::Deflate, "deflate")] {
        let packed = enc.encode(body.as_bytes().to_vec());
        let config = Config::default();
        let policy = ads();
        let j = judge(
            &Request {
                config: &config,
                policy: &policy,
                content_encoding: Some(header),
                path: "/",
                gpc: false,
                form: false,
                preflight: false,
            },
            &packed,
        );
        let Action::Rewrite(out) = &j.action else {
            panic!("{:?}", j.action)
        };
        let plain = enc.decode(out, 1 << 20).unwrap();
        assert_eq!(kept_ids(&plain), vec!["a"], "{header}");
    }
}
