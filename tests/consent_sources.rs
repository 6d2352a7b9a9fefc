//! The decision beyond Segment's categories, row by row: a route's destination in the event's
//! `integrations` object, RudderStack's `context.consentManagement`, and Global Privacy Control.

use consent_gate::config::Config;
use consent_gate::decision::{judge, Action, Judgement, Reason, Request};
use consent_gate::policy::{Match, RoutePolicy};

#[derive(Debug, PartialEq)]
enum Want {
    Allow,
    Deny(&'static str),
    /// A batch forwarded with these items (by `messageId`).
    Keep(Vec<&'static str>),
}
use Want::*;

const CONSENT: &str = "FILTERED_BY_END_USER_CONSENT";
const MISSING: &str = "MISSING_CONSENT";
const INVALID: &str = "INVALID_EVENT";
const OFF: &str = "FILTERED_BY_INTEGRATIONS";

fn policy(
    categories: &[&str],
    match_mode: Match,
    destination: Option<&str>,
    gpc: &[&str],
) -> RoutePolicy {
    RoutePolicy::new(
        categories.iter().map(|c| c.to_string()).collect(),
        match_mode,
    )
    .with_extras(
        "",
        destination.map(str::to_string),
        (!gpc.is_empty()).then(|| gpc.iter().map(|c| c.to_string()).collect()),
    )
    .unwrap()
}

fn run(config: &Config, policy: &RoutePolicy, path: &str, gpc: bool, body: &str) -> Judgement {
    judge(
        &Request {
            config,
            policy,
            content_encoding: None,
            path,
            gpc,
            form: false,
            preflight: false,
        },
        body.as_bytes(),
    )
}

fn outcome(j: &Judgement) -> Want {
    match &j.action {
        Action::Forward => Allow,
        Action::Reply(r) => Deny(r.code()),
        Action::Rewrite(body) => {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            let ids = v["batch"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| &*String::from(i["messageId"].as_str().unwrap()).leak())
                .collect();
            Keep(ids)
        }
    }
}

/// A track event with Segment consent for Advertising, and `integrations` as given.
fn seg(ads: bool, integrations: &str) -> String {
    let integrations = if integrations.is_empty() {
        String::new()
    } else {
        format!(r#","integrations":{integrations}"#)
    };
    format!(
        r#"{{"type":"track","event":"Buy","context":{{"consent":{{"categoryPreferences":{{"Advertising":{ads}}}}}}}{integrations}}}"#
    )
}

#[test]
fn integrations_decide_after_consent_on_routes_that_name_a_destination() {
    let config = Config::default();
    let mixpanel = policy(&["Advertising"], Match::All, Some("Mixpanel"), &[]);
    let customer_io = policy(&["Advertising"], Match::All, Some("Customer.io"), &[]);
    let plain = policy(&["Advertising"], Match::All, None, &[]);
    let rows: Vec<(&str, &RoutePolicy, String, Want)> = vec![
        ("no integrations", &mixpanel, seg(true, ""), Allow),
        (
            "destination on",
            &mixpanel,
            seg(true, r#"{"Mixpanel":true}"#),
            Allow,
        ),
        (
            "destination off",
            &mixpanel,
            seg(true, r#"{"Mixpanel":false}"#),
            Deny(OFF),
        ),
        (
            "All off",
            &mixpanel,
            seg(true, r#"{"All":false}"#),
            Deny(OFF),
        ),
        (
            "All off, destination on",
            &mixpanel,
            seg(true, r#"{"All":false,"Mixpanel":true}"#),
            Allow,
        ),
        (
            "All off, destination with options",
            &mixpanel,
            seg(true, r#"{"All":false,"Mixpanel":{"x":1}}"#),
            Allow,
        ),
        // Empty options are off to a receiver that tests the entry's truth (Python's
        // `integrations.get("Mixpanel", True)`, PHP's array), on to Segment's libraries.
        (
            "destination with empty options",
            &mixpanel,
            seg(true, r#"{"Mixpanel":{}}"#),
            Deny(INVALID),
        ),
        (
            "All off, destination with empty options",
            &mixpanel,
            seg(true, r#"{"All":false,"Mixpanel":{}}"#),
            Deny(INVALID),
        ),
        (
            "All with empty options",
            &mixpanel,
            seg(true, r#"{"All":{}}"#),
            Deny(INVALID),
        ),
        (
            "All on, destination off",
            &mixpanel,
            seg(true, r#"{"All":true,"Mixpanel":false}"#),
            Deny(OFF),
        ),
        (
            "another destination off",
            &mixpanel,
            seg(true, r#"{"Amplitude":false}"#),
            Allow,
        ),
        (
            "another case: exact to rudder-server, the same to Segment's Facade: refused",
            &mixpanel,
            seg(true, r#"{"mixpanel":false,"all":false}"#),
            Deny(INVALID),
        ),
        (
            "escaped name is the name",
            &mixpanel,
            seg(true, r#"{"Mixp\u0061nel":false}"#),
            Deny(OFF),
        ),
        (
            "consent first: integrations never stand in for it",
            &mixpanel,
            seg(false, r#"{"Mixpanel":true}"#),
            Deny(CONSENT),
        ),
        (
            "consent refused and destination off: consent is the reason",
            &mixpanel,
            seg(false, r#"{"Mixpanel":false}"#),
            Deny(CONSENT),
        ),
        (
            "missing consent with destination on",
            &mixpanel,
            r#"{"type":"track","integrations":{"Mixpanel":true}}"#.into(),
            Deny(MISSING),
        ),
        (
            "consent event passes consent, not integrations",
            &mixpanel,
            r#"{"type":"track","event":"Consent Change","integrations":{"Mixpanel":false}}"#.into(),
            Deny(OFF),
        ),
        (
            "string \"false\" is read two ways",
            &mixpanel,
            seg(true, r#"{"Mixpanel":"false"}"#),
            Deny(INVALID),
        ),
        (
            "0 is read two ways",
            &mixpanel,
            seg(true, r#"{"All":0}"#),
            Deny(INVALID),
        ),
        (
            "null is read two ways",
            &mixpanel,
            seg(true, r#"{"Mixpanel":null}"#),
            Deny(INVALID),
        ),
        (
            "destination twice",
            &mixpanel,
            seg(true, r#"{"Mixpanel":false,"Mixpanel":true}"#),
            Deny(INVALID),
        ),
        (
            "All twice",
            &mixpanel,
            seg(true, r#"{"All":false,"\u0041ll":true}"#),
            Deny(INVALID),
        ),
        (
            "a key a NUL-stopping reader takes for the destination",
            &mixpanel,
            seg(true, r#"{"Mixpanel\u0000":false}"#),
            Deny(INVALID),
        ),
        // A JavaScript copy of the object takes `__proto__`'s members for its own.
        (
            "__proto__ holding All",
            &mixpanel,
            seg(true, r#"{"__proto__":{"All":false}}"#),
            Deny(INVALID),
        ),
        (
            "__proto__ holding the destination, escaped",
            &mixpanel,
            seg(true, r#"{"\u005f_proto__":{"Mixpanel":false}}"#),
            Deny(INVALID),
        ),
        // Segment's Facade looks entries up without case or punctuation.
        (
            "all in lower case",
            &mixpanel,
            seg(true, r#"{"all":false}"#),
            Deny(INVALID),
        ),
        (
            "the destination spelled another way",
            &mixpanel,
            seg(true, r#"{"Mixpanel":true,"mix_panel":false}"#),
            Deny(INVALID),
        ),
        (
            "A_LL",
            &mixpanel,
            seg(true, r#"{"A_LL":false,"Mixpanel":true}"#),
            Deny(INVALID),
        ),
        // Go's `encoding/json` folds `ſ` and the Kelvin sign, jsoniter lowers `İ`: into a
        // struct with a `Mixpanel` field, these are `Mixpanel`.
        (
            "the destination with a dotted capital I",
            &mixpanel,
            seg(true, r#"{"All":true,"M\u0130xpanel":false}"#),
            Deny(INVALID),
        ),
        (
            "the destination with a raw dotless i",
            &mixpanel,
            seg(true, "{\"Mixpanel\":{},\"M\u{131}xpanel\":false}"),
            Deny(INVALID),
        ),
        (
            "All with goccy's escaped prefix",
            &mixpanel,
            seg(true, r#"{"A\u006c":false,"Mixpanel":true}"#),
            Deny(INVALID),
        ),
        // Paths: stream-json's `pick('integrations.Mixpanel')` takes `Mixpanel.x` too, lodash
        // the first segment.
        (
            "the destination as a path",
            &mixpanel,
            seg(true, r#"{"Mixpanel":true,"All":true,"Mixpanel.x":false}"#),
            Deny(INVALID),
        ),
        (
            "All as a path",
            &mixpanel,
            seg(true, r#"{"All.x":false,"All":true}"#),
            Deny(INVALID),
        ),
        (
            "All in brackets",
            &mixpanel,
            seg(true, r#"{"[All]":false,"Mixpanel":true}"#),
            Deny(INVALID),
        ),
        (
            "another destination's path",
            &mixpanel,
            seg(
                true,
                r#"{"Mixpanel":true,"Slack.x":false,"x.Mixpanel":false}"#,
            ),
            Allow,
        ),
        // Where Facade falls back to: `integrations.providers`, a top-level `options`, and
        // `context` (read as the event's options).
        (
            "integrations.providers",
            &mixpanel,
            seg(true, r#"{"providers":{"Mixpanel":false}}"#),
            Deny(INVALID),
        ),
        (
            "a top-level options object",
            &mixpanel,
            seg(true, "").replacen(r#"{"type""#, r#"{"options":{"all":false},"type""#, 1),
            Deny(INVALID),
        ),
        (
            "context.all",
            &mixpanel,
            seg(true, "").replacen(r#""context":{"#, r#""context":{"all":false,"#, 1),
            Deny(INVALID),
        ),
        (
            "context.Mixpanel",
            &mixpanel,
            seg(true, "").replacen(r#""context":{"#, r#""context":{"Mixpanel":false,"#, 1),
            Deny(INVALID),
        ),
        // obj-case reads a key that folds to the path, or to its first segments:
        // `options.providers.all` is `"providers.all"`, in any spelling.
        (
            "context.providers.all as one key",
            &mixpanel,
            seg(true, "").replacen(r#""context":{"#, r#""context":{"providers.all":false,"#, 1),
            Deny(INVALID),
        ),
        (
            "context.providers.all as one key, spelled otherwise",
            &mixpanel,
            seg(true, "").replacen(
                r#""context":{"#,
                r#""context":{"pro_viders . A-LL":false,"#,
                1,
            ),
            Deny(INVALID),
        ),
        (
            "a destination with a dot, as nested keys",
            &customer_io,
            seg(true, r#"{"Customer":{"io":false}}"#),
            Deny(INVALID),
        ),
        (
            "a destination with a dot, and as nested keys",
            &customer_io,
            seg(true, r#"{"Customer.io":true,"Customer":{"io":false}}"#),
            Deny(INVALID),
        ),
        (
            "integrations and the destination joined, as flatteners write them",
            &mixpanel,
            seg(true, r#"{"Mixpanel":true}"#).replacen(
                r#""integrations""#,
                r#""integrations_Mixpanel":false,"integrations""#,
                1,
            ),
            Deny(INVALID),
        ),
        (
            "integrations and the destination snake-cased, as warehouse loaders write them",
            &mixpanel,
            seg(true, r#"{"Mixpanel":true}"#).replacen(
                r#""integrations""#,
                r#""INTEGRATIONS-mixpanel":false,"integrations""#,
                1,
            ),
            Deny(INVALID),
        ),
        (
            "the destination as dlt spells it (`+` is `x`)",
            &mixpanel,
            seg(true, r#"{"Mixpanel":true,"Mi+panel":false}"#),
            Deny(INVALID),
        ),
        (
            "integrations as dlt spells it (`@` is `a`)",
            &mixpanel,
            seg(true, r#"{"Mixpanel":true}"#).replacen(
                r#""integrations""#,
                r#""integr@tions":{"Mixpanel":false},"integrations""#,
                1,
            ),
            Deny(INVALID),
        ),
        (
            "integrations and All joined",
            &mixpanel,
            seg(true, "{}").replacen(
                r#""integrations""#,
                r#""integrations/All":false,"integrations""#,
                1,
            ),
            Deny(INVALID),
        ),
        (
            "an empty key in integrations",
            &mixpanel,
            seg(true, r#"{"Mixpanel":true,"":{"Mixpanel":false}}"#),
            Deny(INVALID),
        ),
        (
            "a destination with a dot, exactly",
            &customer_io,
            seg(true, r#"{"Customer.io":false,"Customer2":{"io":true}}"#),
            Deny(OFF),
        ),
        (
            "context keys of every day stay other",
            &mixpanel,
            seg(true, "").replacen(
                r#""context":{"#,
                r#""context":{"ip":"x","library":{},"page":{},"#,
                1,
            ),
            Allow,
        ),
        (
            "no destination: context.all is just a key",
            &plain,
            seg(true, "").replacen(r#""context":{"#, r#""context":{"all":false,"#, 1),
            Allow,
        ),
        (
            "other destinations and other keys stay other",
            &mixpanel,
            seg(
                true,
                r#"{"Mixpanel2":false,"Allx":false,"Amplitude":false}"#,
            ),
            Allow,
        ),
        (
            "integrations not an object",
            &mixpanel,
            seg(true, r#"["Mixpanel"]"#),
            Deny(INVALID),
        ),
        (
            "integrations null",
            &mixpanel,
            seg(true, "null"),
            Deny(INVALID),
        ),
        (
            "integrations twice",
            &mixpanel,
            format!(
                r#"{{"integrations":{{"Mixpanel":false}},{}"#,
                &seg(true, r#"{"Mixpanel":true}"#)[1..]
            ),
            Deny(INVALID),
        ),
        (
            "Go reads Integrations as integrations",
            &mixpanel,
            seg(true, "").replace(r#""type""#, r#""Integrations":{"Mixpanel":false},"type""#),
            Deny(INVALID),
        ),
        // A route without a destination reads none of it, as before.
        (
            "no destination: off is ignored",
            &plain,
            seg(true, r#"{"All":false}"#),
            Allow,
        ),
        (
            "no destination: anything goes",
            &plain,
            seg(true, r#""x""#),
            Allow,
        ),
        (
            "no destination: Integrations is just a key",
            &plain,
            seg(true, "").replace(r#""type""#, r#""Integrations":1,"integrations":2,"type""#),
            Allow,
        ),
    ];
    for (name, policy, body, want) in rows {
        let j = run(&config, policy, "/v1/track", false, &body);
        assert_eq!(outcome(&j), want, "row: {name}");
    }
}

#[test]
fn batch_integrations_merge_with_the_batch_and_refuse_what_readings_disagree_on() {
    let config = Config::default();
    let mixpanel = policy(&["Advertising"], Match::All, Some("Mixpanel"), &[]);
    let item = |id: &str, integrations: &str| {
        let mut e = seg(true, integrations);
        e.insert_str(1, &format!(r#""messageId":"{id}","#));
        e
    };
    let batch = |top: &str, items: &[String]| {
        let top = if top.is_empty() {
            String::new()
        } else {
            format!(r#","integrations":{top}"#)
        };
        format!(r#"{{"batch":[{}]{top}}}"#, items.join(","))
    };
    let rows: Vec<(&str, String, Want)> = vec![
        (
            "items decide alone",
            batch("", &[item("a", ""), item("b", r#"{"Mixpanel":false}"#)]),
            Keep(vec!["a"]),
        ),
        (
            "the batch's All off reaches every item",
            batch(
                r#"{"All":false}"#,
                &[item("a", ""), item("b", r#"{"Mixpanel":true}"#)],
            ),
            Keep(vec!["b"]),
        ),
        (
            "the batch's destination off",
            batch(
                r#"{"Mixpanel":false}"#,
                &[item("a", ""), item("b", r#"{"Mixpanel":true}"#)],
            ),
            Keep(vec!["b"]),
        ),
        // Merged key by key: on. Taken whole (the item's object replaces the batch's): All is
        // on, the destination unnamed: on. Both on.
        (
            "item names another destination, batch turns this one on",
            batch(
                r#"{"Mixpanel":true}"#,
                &[item("a", r#"{"X":true}"#), item("b", "")],
            ),
            Allow,
        ),
        // Merged: the destination on. Whole: the item's All off, destination unnamed: off.
        (
            "readings disagree: off wins",
            batch(
                r#"{"Mixpanel":true}"#,
                &[item("a", r#"{"All":false}"#), item("b", "")],
            ),
            Keep(vec!["b"]),
        ),
        (
            "every item off: the batch is refused for integrations",
            batch(r#"{"All":false}"#, &[item("a", ""), item("b", "")]),
            Deny(OFF),
        ),
        (
            "every readable item off, one unreadable: refused for integrations",
            batch(
                r#"{"All":false}"#,
                &[item("a", ""), "1".to_string(), item("b", "")],
            ),
            Deny(OFF),
        ),
        (
            "one item off, one without consent: a consent denial",
            batch(
                "",
                &[
                    item("a", r#"{"Mixpanel":false}"#),
                    r#"{"type":"track","event":"x"}"#.to_string(),
                ],
            ),
            Deny(CONSENT),
        ),
        (
            "unreadable batch integrations refuse the batch",
            batch(r#"{"All":"no"}"#, &[item("a", "")]),
            Deny(INVALID),
        ),
    ];
    for (name, body, want) in rows {
        let j = run(&config, &mixpanel, "/v1/batch", false, &body);
        assert_eq!(outcome(&j), want, "row: {name}");
    }
}

/// A track event with RudderStack consent (`consentManagement` as given, raw JSON).
fn rs(consent_management: &str) -> String {
    format!(
        r#"{{"type":"track","event":"Buy","context":{{"consentManagement":{consent_management}}}}}"#
    )
}

#[test]
fn rudderstack_consent_as_rudder_server_decides() {
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let rudder_allow_missing =
        Config::parse(r#"{"consent_format":"rudderstack","on_missing_consent":"allow"}"#).unwrap();
    let one = policy(&["C0001"], Match::All, None, &[]);
    let two_all = policy(&["foo-1", "foo-4"], Match::All, None, &[]);
    let two_any = policy(&["foo-1", "foo-4"], Match::Any, None, &[]);
    let three = policy(&["foo-1", "foo-2", "foo-3"], Match::All, None, &[]);
    let denied3 = r#""deniedConsentIds":["foo-1","foo-2","foo-3"]"#;
    let rows: Vec<(&str, &Config, &RoutePolicy, String, Want)> = vec![
        (
            "not denied",
            &rudder,
            &one,
            rs(
                r#"{"provider":"oneTrust","resolutionStrategy":"and","allowedConsentIds":["C0001"],"deniedConsentIds":["C0002"]}"#,
            ),
            Allow,
        ),
        (
            "denied",
            &rudder,
            &one,
            rs(
                r#"{"provider":"oneTrust","resolutionStrategy":"and","allowedConsentIds":[],"deniedConsentIds":["C0001"]}"#,
            ),
            Deny(CONSENT),
        ),
        // rudder-server before its allow-list release reads the denied IDs alone; since, an
        // allowed list that lists an ID decides alone. Both readings must let the event go.
        (
            "an ID in neither list: not allowed where the allowed list lists IDs",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":["C0009"],"deniedConsentIds":["C0002"]}"#),
            Deny(CONSENT),
        ),
        (
            "an allowed list alone that lists the route's ID",
            &rudder,
            &one,
            rs(r#"{"provider":"oneTrust","allowedConsentIds":["C0002","C0001"]}"#),
            Allow,
        ),
        (
            "an allowed list alone without it, missing consent allowed",
            &rudder_allow_missing,
            &one,
            rs(r#"{"provider":"custom","allowedConsentIds":["C0009"]}"#),
            Deny(CONSENT),
        ),
        (
            "allowed and denied: denied wins",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":["C0001"],"deniedConsentIds":["C0001"]}"#),
            Deny(CONSENT),
        ),
        (
            "allowed in another spelling allows nothing (rudder-server trims it)",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":["C0001 "],"deniedConsentIds":[]}"#),
            Deny(CONSENT),
        ),
        (
            "older OneTrust builds: an object keyed by ID",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":{"C0001":"Strictly"},"deniedConsentIds":[]}"#),
            Allow,
        ),
        (
            "an object keyed by other IDs",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":{"C0009":"x"},"deniedConsentIds":[]}"#),
            Deny(CONSENT),
        ),
        (
            "an allowed list of no ID decides nothing",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":[],"deniedConsentIds":["C0009"]}"#),
            Allow,
        ),
        (
            "an allowed list that is no list is unreadable",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":"C0001","deniedConsentIds":[]}"#),
            Deny(INVALID),
        ),
        (
            "a denied ID with Unicode white space around it (rudder-server trims it)",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":["C0001\u00a0","\u3000C0001"]}"#),
            Deny(CONSENT),
        ),
        (
            "empty deny list: nothing denied",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":[]}"#),
            Allow,
        ),
        // rudder-server compares IDs exactly, but a Java receiver that binds them to an enum
        // takes other spellings for the constant: the stricter reading counts.
        (
            "an ID in another case denies too",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":["c0001"]}"#),
            Deny(CONSENT),
        ),
        (
            "an ID with white space denies too",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":[" C0001"]}"#),
            Deny(CONSENT),
        ),
        (
            "another ID does not",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":["C00010","C0010","c001"]}"#),
            Allow,
        ),
        (
            "empty IDs are ignored",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":["","C0002"]}"#),
            Allow,
        ),
        // rudder-server's own test table: denied {foo-1, foo-2, foo-3}.
        (
            "and: one of two denied",
            &rudder,
            &two_all,
            rs(&format!(
                r#"{{"provider":"ketch","resolutionStrategy":"and",{denied3}}}"#
            )),
            Deny(CONSENT),
        ),
        (
            "or: one of two denied",
            &rudder,
            &two_all,
            rs(&format!(
                r#"{{"provider":"ketch","resolutionStrategy":"or",{denied3}}}"#
            )),
            Allow,
        ),
        (
            "or: all denied",
            &rudder,
            &three,
            rs(&format!(
                r#"{{"provider":"ketch","resolutionStrategy":"or",{denied3}}}"#
            )),
            Deny(CONSENT),
        ),
        (
            "no strategy is and",
            &rudder,
            &two_any,
            rs(&format!(r#"{{"provider":"oneTrust",{denied3}}}"#)),
            Deny(CONSENT),
        ),
        // rudder-server reads the event's strategy only through its generic consent management
        // (a provider other than none, "" or oneTrust); the older OneTrust setting always drops
        // an event that denies any of the destination's IDs.
        // flatten_json writes a list's items as `…_deniedConsentIds_0`.
        (
            "a denied ID as a flattened list item",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":["C0002"],"deniedConsentIds_0":"C0001"}"#),
            Deny(INVALID),
        ),
        (
            "a denied ID as a flattened list item of context",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":[]}"#).replacen(
                r#""consentManagement""#,
                r#""consentManagement_deniedConsentIds_0":"C0001","consentManagement""#,
                1,
            ),
            Deny(INVALID),
        ),
        // dlt, a warehouse loader, writes `@` as `a`: `consentM@nagement` is its column too.
        (
            "consentManagement as dlt spells it",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":[]}"#).replacen(
                r#""consentManagement""#,
                r#""consentM@nagement":{"deniedConsentIds":["C0001"]},"consentManagement""#,
                1,
            ),
            Deny(INVALID),
        ),
        (
            "or without a provider is and",
            &rudder,
            &two_all,
            rs(&format!(r#"{{"resolutionStrategy":"or",{denied3}}}"#)),
            Deny(CONSENT),
        ),
        (
            "or with an empty provider is and",
            &rudder,
            &two_all,
            rs(&format!(
                r#"{{"provider":"","resolutionStrategy":"or",{denied3}}}"#
            )),
            Deny(CONSENT),
        ),
        (
            "or from oneTrust is and",
            &rudder,
            &two_all,
            rs(&format!(
                r#"{{"provider":"oneTrust","resolutionStrategy":"or",{denied3}}}"#
            )),
            Deny(CONSENT),
        ),
        (
            "or from oneTrust, escaped and cut at a NUL, is and",
            &rudder,
            &two_all,
            rs(&format!(
                r#"{{"provider":"oneTr\u0075st\u0000x","resolutionStrategy":"or",{denied3}}}"#
            )),
            Deny(CONSENT),
        ),
        (
            "or from another provider is or",
            &rudder,
            &two_all,
            rs(&format!(
                r#"{{"provider":"iubenda","resolutionStrategy":"or",{denied3}}}"#
            )),
            Allow,
        ),
        (
            "OR is not or",
            &rudder,
            &two_all,
            rs(&format!(r#"{{"resolutionStrategy":"OR",{denied3}}}"#)),
            Deny(CONSENT),
        ),
        (
            "any is not or",
            &rudder,
            &two_all,
            rs(&format!(r#"{{"resolutionStrategy":"any",{denied3}}}"#)),
            Deny(CONSENT),
        ),
        (
            "custom takes the route's match (any)",
            &rudder,
            &two_any,
            rs(&format!(
                r#"{{"provider":"custom","resolutionStrategy":"and",{denied3}}}"#
            )),
            Allow,
        ),
        (
            "custom takes the route's match (all)",
            &rudder,
            &two_all,
            rs(&format!(
                r#"{{"provider":"custom","resolutionStrategy":"or",{denied3}}}"#
            )),
            Deny(CONSENT),
        ),
        (
            "allowedConsentIds as an object",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":{"C0001":"Necessary"},"deniedConsentIds":[]}"#),
            Allow,
        ),
        (
            "no consentManagement",
            &rudder,
            &one,
            r#"{"type":"track"}"#.into(),
            Deny(MISSING),
        ),
        (
            "no deny list, an allowed list of the route's ID: consent stated",
            &rudder,
            &one,
            rs(r#"{"provider":"custom","allowedConsentIds":["C0001"]}"#),
            Allow,
        ),
        (
            "no deny list, an allowed list of no ID",
            &rudder,
            &one,
            rs(r#"{"provider":"custom","allowedConsentIds":[]}"#),
            Deny(MISSING),
        ),
        (
            "no deny list, missing consent allowed",
            &rudder_allow_missing,
            &one,
            rs(r#"{"allowedConsentIds":[]}"#),
            Allow,
        ),
        (
            "Segment's shape is not read",
            &rudder,
            &one,
            r#"{"type":"track","context":{"consent":{"categoryPreferences":{"C0001":true}}}}"#
                .into(),
            Deny(MISSING),
        ),
        // What rudder-server would ignore (and then deliver) is refused.
        (
            "deny list not a list",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":"C0001"}"#),
            Deny(INVALID),
        ),
        (
            "deny list null",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":null}"#),
            Deny(INVALID),
        ),
        (
            "a number in the deny list",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":["C0001",7]}"#),
            Deny(INVALID),
        ),
        (
            "allowed list of numbers",
            &rudder,
            &one,
            rs(r#"{"allowedConsentIds":[1],"deniedConsentIds":[]}"#),
            Deny(INVALID),
        ),
        (
            "provider not a string",
            &rudder,
            &one,
            rs(r#"{"provider":1,"deniedConsentIds":[]}"#),
            Deny(INVALID),
        ),
        (
            "consentManagement not an object",
            &rudder,
            &one,
            rs(r#"["C0001"]"#),
            Deny(INVALID),
        ),
        (
            "deny list twice",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":["C0001"],"deniedConsentIds":[]}"#),
            Deny(INVALID),
        ),
        (
            "Go reads DeniedConsentIDs as deniedConsentIds",
            &rudder,
            &one,
            rs(r#"{"DeniedConsentIDs":["C0001"],"deniedConsentIds":[]}"#),
            Deny(INVALID),
        ),
        (
            "Go reads ConsentManagement as consentManagement",
            &rudder,
            &one,
            r#"{"context":{"ConsentManagement":{"deniedConsentIds":[]}}}"#.into(),
            Deny(INVALID),
        ),
        (
            "an ID a NUL-stopping reader takes for a category",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":["C0001\u0000x"]}"#),
            Deny(INVALID),
        ),
        (
            "a strategy a NUL-stopping reader takes for or",
            &rudder,
            &two_all,
            rs(r#"{"resolutionStrategy":"or\u0000","deniedConsentIds":[]}"#),
            Deny(INVALID),
        ),
        (
            "a provider that is Oj's Symbol of custom (the route's all, to a reader that takes it to_s)",
            &rudder,
            &two_all,
            rs(r#"{"provider":":custom","resolutionStrategy":"or","deniedConsentIds":["foo-1"]}"#),
            Deny(INVALID),
        ),
        (
            "jsonpickle's keys=True reads json://\"deniedConsentIds\" as deniedConsentIds",
            &rudder,
            &one,
            rs(r#"{"deniedConsentIds":[],"json://\"deniedConsentIds\"":["C0001"]}"#),
            Deny(INVALID),
        ),
    ];
    for (name, config, policy, body, want) in rows {
        let j = run(config, policy, "/v1/track", false, &body);
        assert_eq!(outcome(&j), want, "row: {name}");
    }
}

#[test]
fn a_look_alike_of_the_other_shapes_key_is_a_second_reading() {
    // Go's encoding/json reads `ConsentManagement` and `con\u017fentManagement` into
    // rudder-server's `consentManagement`, a snake-casing loader `consent_management` into its
    // column: under `segment`, a refusal there beside Segment's consent was forwarded while the
    // exact key was refused (row 11a). Likewise `consent` under `rudderstack`.
    let segment = Config::default();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let allow_listed = Config::parse(r#"{"always_allow_events":["Consent Change"]}"#).unwrap();
    let ads = policy(&["Advertising"], Match::All, None, &[]);
    let denied = r#"{"deniedConsentIds":["Advertising"]}"#;
    let item = r#"{"type":"track","event":"Buy","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}"#;
    for key in [
        "consentManagement",
        "ConsentManagement",
        "con\\u017fentManagement",
        "con\u{17f}entManagement",
        "consentmanagement",
        "consent_management",
        "CONSENT_MANAGEMENT",
    ] {
        let context = format!(
            r#"{{"consent":{{"categoryPreferences":{{"Advertising":true}}}},"{key}":{denied}}}"#
        );
        let event = format!(r#"{{"type":"track","event":"Buy","context":{context}}}"#);
        let j = run(&segment, &ads, "/v1/track", false, &event);
        assert_eq!(outcome(&j), Deny(INVALID), "{key}");
        let consent_change = format!(
            r#"{{"type":"track","event":"Consent Change","context":{{"{key}":{denied}}}}}"#
        );
        let j = run(&allow_listed, &ads, "/v1/track", false, &consent_change);
        assert_eq!(outcome(&j), Deny(INVALID), "{key}, allow-listed");
        let batch = format!(r#"{{"batch":[{item}],"context":{{"{key}":{denied}}}}}"#);
        let j = run(&segment, &ads, "/v1/batch", false, &batch);
        assert_eq!(outcome(&j), Deny(INVALID), "{key}, batch");
    }
    for key in ["Consent", "con\\u017fent", "CONSENT"] {
        let event = format!(
            r#"{{"type":"track","event":"Buy","context":{{"consentManagement":{{"deniedConsentIds":[]}},"{key}":{{"categoryPreferences":{{"Advertising":false}}}}}}}}"#
        );
        let j = run(&rudder, &ads, "/v1/track", false, &event);
        assert_eq!(outcome(&j), Deny(INVALID), "{key}");
    }
    // A key no reader takes for it passes, as before.
    let event = r#"{"type":"track","event":"Buy","context":{"consent":{"categoryPreferences":{"Advertising":true}},"consentManagements":{"deniedConsentIds":["Advertising"]}}}"#;
    assert_eq!(
        outcome(&run(&segment, &ads, "/v1/track", false, event)),
        Allow
    );
}

#[test]
fn paths_to_consent_managements_fields_from_its_neighbours_are_a_second_reading() {
    // `consent` + `management…` is `consentManagement…` to a flattener that snake-cases its
    // columns (flatten_json, then inflection's `underscore`), and `resolution` holding
    // `{"strategy": …}` is `resolutionStrategy`: each wrote the other shape's field (row 11a)
    // or the format's own beside the one the filter read.
    let segment = Config::default();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let auto = Config::parse(r#"{"consent_format":"auto"}"#).unwrap();
    // Two categories: with `or`, Ketch's strategy lets an event that denies one of them go.
    let ads = policy(&["Advertising", "Analytics"], Match::All, None, &[]);
    let p = r#""categoryPreferences":{"Advertising":true,"Analytics":true}"#;
    let ketch_or = r#""consentManagement":{"deniedConsentIds":["Advertising"],"provider":"ketch","resolutionStrategy":"or"}"#;
    let track =
        |context: &str| format!(r#"{{"type":"track","event":"Buy","context":{{{context}}}}}"#);
    let rows: Vec<(&str, &Config, String)> = vec![
        (
            "management holding the list",
            &segment,
            track(&format!(
                r#""consent":{{{p},"management":{{"deniedConsentIds":["Advertising"]}}}}"#
            )),
        ),
        (
            "the list's path snake-cased",
            &segment,
            track(&format!(
                r#""consent":{{{p},"management_denied_consent_ids":["Advertising"]}}"#
            )),
        ),
        (
            "the list's path camel-cased",
            &segment,
            track(&format!(
                r#""consent":{{{p},"managementDeniedConsentIds":["Advertising"]}}"#
            )),
        ),
        (
            "the strategy under the other shape's key",
            &segment,
            track(&format!(
                r#"{ketch_or},"consent":{{{p},"management":{{"resolutionStrategy":"and"}}}}"#
            )),
        ),
        (
            "the strategy beside the format's own",
            &rudder,
            track(&format!(
                r#"{ketch_or},"consent":{{"management":{{"resolutionStrategy":"and"}}}}"#
            )),
        ),
        (
            "management under auto",
            &auto,
            track(&format!(
                r#""consent":{{{p},"management":{{"deniedConsentIds":["Advertising"]}}}}"#
            )),
        ),
        (
            "resolution holding the strategy",
            &rudder,
            track(
                r#""consentManagement":{"deniedConsentIds":["Advertising"],"provider":"ketch","resolutionStrategy":"or","resolution":{"strategy":"and"}}"#,
            ),
        ),
        (
            "resolution holding the strategy, the other shape",
            &segment,
            track(&format!(
                r#""consent":{{{p}}},"consentManagement":{{"deniedConsentIds":["Advertising"],"provider":"ketch","resolutionStrategy":"or","resolution":{{"strategy":"and"}}}}"#
            )),
        ),
    ];
    for (name, config, body) in &rows {
        let j = run(config, &ads, "/v1/track", false, body);
        assert_eq!(outcome(&j), Deny(INVALID), "{name}: {body}");
    }
    // In a batch: an item with such a context is dropped; a batch-level one refuses the batch.
    let item = |id: &str, context: &str| {
        format!(r#"{{"type":"track","event":"Buy","messageId":"{id}","context":{{{context}}}}}"#)
    };
    let bad = format!(r#""consent":{{{p},"management":{{"deniedConsentIds":["Advertising"]}}}}"#);
    let good = format!(r#""consent":{{{p}}}"#);
    let batch = format!(
        r#"{{"batch":[{},{}]}}"#,
        item("bad", &bad),
        item("ok", &good)
    );
    let j = run(&segment, &ads, "/v1/batch", false, &batch);
    assert_eq!(outcome(&j), Keep(vec!["ok"]));
    let batch = format!(r#"{{"batch":[{}],"context":{{{bad}}}}}"#, item("ok", &good));
    let j = run(&segment, &ads, "/v1/batch", false, &batch);
    assert_eq!(outcome(&j), Deny(INVALID));
    // Segment's own consent, and RudderStack's strategy, as real payloads carry them, pass.
    let j = run(&segment, &ads, "/v1/track", false, &track(&good));
    assert_eq!(outcome(&j), Allow);
    let allowed = r#""consentManagement":{"deniedConsentIds":[],"provider":"ketch","resolutionStrategy":"or"}"#;
    let j = run(&rudder, &ads, "/v1/track", false, &track(allowed));
    assert_eq!(outcome(&j), Allow);
}

#[test]
fn a_key_holding_the_rest_of_a_categorys_name_is_a_second_reading() {
    // To a loader that snake-cases the joined path (flatten_json, then inflection's
    // `underscore`), `Ads` holding `{"Personalization": false}` is `ads_personalization`, and
    // `ad` holding `{"storage": false}` (Google Consent Mode's names) is `ad_storage`: the
    // category's column, beside the entry the filter read. Words end before an upper-case
    // letter, and after other characters.
    let segment = Config::default();
    let personalization = policy(&["AdsPersonalization"], Match::All, None, &[]);
    let either = policy(&["Ads", "AdsPersonalization"], Match::Any, None, &[]);
    let underscored = policy(
        &["Advertising", "Advertising_Personalized"],
        Match::Any,
        None,
        &[],
    );
    let gcm = policy(&["ad_storage", "ad_user_data"], Match::All, None, &[]);
    let track = |context: &str| {
        format!(r#"{{"type":"track","event":"Buy","messageId":"m1","context":{{{context}}}}}"#)
    };
    let prefs = |entries: &str| {
        track(&format!(
            r#""consent":{{"categoryPreferences":{{{entries}}}}}"#
        ))
    };
    let gcm_true = r#""ad_storage":true,"ad_user_data":true"#;
    let rows: Vec<(&str, &RoutePolicy, String)> = vec![
        (
            "camel case",
            &personalization,
            prefs(r#""AdsPersonalization":true,"Ads":{"Personalization":false}"#),
        ),
        (
            "camel case, match any",
            &either,
            prefs(r#""AdsPersonalization":true,"Ads":{"Personalization":false}"#),
        ),
        (
            "after an underscore",
            &underscored,
            prefs(r#""Advertising_Personalized":true,"Advertising":{"Personalized":false}"#),
        ),
        (
            "snake case",
            &gcm,
            prefs(&format!(r#"{gcm_true},"ad":{{"storage":false}}"#)),
        ),
        (
            "upper case",
            &gcm,
            prefs(&format!(r#"{gcm_true},"AD":{{"STORAGE":false}}"#)),
        ),
        (
            "two words of three",
            &gcm,
            prefs(&format!(r#"{gcm_true},"ad_user":{{"data":false}}"#)),
        ),
        (
            "one word of three",
            &gcm,
            prefs(&format!(r#"{gcm_true},"ad":{{"user":{{"data":false}}}}"#)),
        ),
        (
            "from consent",
            &gcm,
            track(&format!(
                r#""consent":{{"categoryPreferences":{{{gcm_true}}},"categoryPreferences_ad":{{"storage":false}}}}"#
            )),
        ),
        (
            "from context",
            &gcm,
            track(&format!(
                r#""consent":{{"categoryPreferences":{{{gcm_true}}}}},"consentCategoryPreferencesAd":{{"storage":false}}"#
            )),
        ),
    ];
    for (name, policy, body) in &rows {
        let j = run(&segment, policy, "/v1/track", false, body);
        assert_eq!(outcome(&j), Deny(INVALID), "{name}: {body}");
    }
    let from_the_event = format!(
        r#"{{"type":"track","event":"Buy","context":{{"consent":{{"categoryPreferences":{{{gcm_true}}}}}}},"context_consent_categoryPreferences_ad":{{"storage":false}}}}"#
    );
    let j = run(&segment, &gcm, "/v1/track", false, &from_the_event);
    assert_eq!(outcome(&j), Deny(INVALID), "from the event");
    // In a batch: the item is dropped; in the batch's context, the batch is refused.
    let bad = prefs(&format!(r#"{gcm_true},"ad":{{"storage":false}}"#));
    let good = prefs(gcm_true).replace("m1", "m2");
    let j = run(
        &segment,
        &gcm,
        "/v1/batch",
        false,
        &format!(r#"{{"batch":[{bad},{good}]}}"#),
    );
    assert_eq!(outcome(&j), Keep(vec!["m2"]));
    let context =
        format!(r#""consent":{{"categoryPreferences":{{{gcm_true},"ad":{{"storage":false}}}}}}"#);
    let bare = r#"{"type":"track","event":"Buy","messageId":"m1"}"#;
    let batch = format!(r#"{{"batch":[{bare}],"context":{{{context}}}}}"#);
    assert_eq!(
        outcome(&run(&segment, &gcm, "/v1/batch", false, &batch)),
        Deny(INVALID)
    );
    // Such an object is refused whatever it holds (its keys are not read: `{"Other": …}` too);
    // a key that ends inside a word, or holds no object, reads as another category.
    let j = run(
        &segment,
        &personalization,
        "/v1/track",
        false,
        &prefs(r#""AdsPersonalization":true,"Ads":{"Other":false}"#),
    );
    assert_eq!(outcome(&j), Deny(INVALID));
    for entries in [
        r#""AdsPersonalization":true,"Ad":{"sPersonalization":false}"#,
        r#""AdsPersonalization":true,"Ads":false"#,
    ] {
        let j = run(
            &segment,
            &personalization,
            "/v1/track",
            false,
            &prefs(entries),
        );
        assert_eq!(outcome(&j), Allow, "{entries}");
    }
}

#[test]
fn auto_reads_either_shape_and_refuses_both() {
    let auto = Config::parse(r#"{"consent_format":"auto"}"#).unwrap();
    let segment = Config::default();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let segment_allow_missing = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    let rudder_allow_missing =
        Config::parse(r#"{"consent_format":"rudderstack","on_missing_consent":"allow"}"#).unwrap();
    let ads = policy(&["Advertising"], Match::All, None, &[]);
    let both = r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}},"consentManagement":{"deniedConsentIds":[]}}}"#;
    let rows: Vec<(&str, &Config, String, Want)> = vec![
        ("segment shape", &auto, seg(true, ""), Allow),
        (
            "segment shape refused",
            &auto,
            seg(false, ""),
            Deny(CONSENT),
        ),
        (
            "rudderstack shape",
            &auto,
            rs(r#"{"deniedConsentIds":[]}"#),
            Allow,
        ),
        (
            "rudderstack shape refused",
            &auto,
            rs(r#"{"deniedConsentIds":["Advertising"]}"#),
            Deny(CONSENT),
        ),
        (
            "neither",
            &auto,
            r#"{"type":"track"}"#.into(),
            Deny(MISSING),
        ),
        ("both: ambiguous", &auto, both.into(), Deny(INVALID)),
        (
            "both, segment format, the other shape denying nothing",
            &segment,
            both.into(),
            Allow,
        ),
        // A single format still has every reader of the other shape let the event go
        // (rudder-server takes Segment's endpoints and reads only its own shape).
        (
            "both, segment format, the other shape denying",
            &segment,
            both.replace(r#""deniedConsentIds":[]"#, r#""deniedConsentIds":["Advertising"]"#),
            Deny(INVALID),
        ),
        (
            "both, rudderstack format, the other shape refusing",
            &rudder,
            both.replace(r#""Advertising":true"#, r#""Advertising":false"#),
            Deny(INVALID),
        ),
        (
            "allow-listed, segment format, the other shape denying",
            &segment,
            both.replace(r#""deniedConsentIds":[]"#, r#""deniedConsentIds":["Advertising"]"#)
                .replace(r#""type":"track""#, r#""type":"track","event":"Consent Change""#),
            Deny(INVALID),
        ),
        // `on_missing_consent: allow` lets through events without consent, not events whose
        // consent is in the shape the format does not read (its denials would be ignored).
        (
            "rudderstack shape, segment format, missing allowed",
            &segment_allow_missing,
            rs(r#"{"deniedConsentIds":["Advertising"]}"#),
            Deny(MISSING),
        ),
        (
            "segment shape, rudderstack format, missing allowed",
            &rudder_allow_missing,
            seg(false, ""),
            Deny(MISSING),
        ),
        (
            "segment shape under a key Go reads as consent, rudderstack format, missing allowed",
            &rudder_allow_missing,
            r#"{"type":"track","context":{"Consent":{"categoryPreferences":{"Advertising":false}}}}"#
                .into(),
            // `Consent` holding an object also starts `consentManagement`'s column to a
            // snake-casing loader (`consent` + `management…`): a look-alike.
            Deny(INVALID),
        ),
        (
            "rudderstack shape under a look-alike key, segment format, missing allowed",
            &segment_allow_missing,
            r#"{"type":"track","context":{"ConsentManagement":{"deniedConsentIds":["Advertising"]}}}"#
                .into(),
            // A second reading of the other shape, which the decision reads (row 11a).
            Deny(INVALID),
        ),
        (
            "neither shape, missing allowed",
            &segment_allow_missing,
            r#"{"type":"track","context":{"consentManagements":{}}}"#.into(),
            Allow,
        ),
        (
            "both, segment format, missing allowed: segment's decides",
            &segment_allow_missing,
            both.into(),
            Allow,
        ),
    ];
    for (name, config, body, want) in rows {
        let j = run(config, &ads, "/v1/track", false, &body);
        assert_eq!(outcome(&j), want, "row: {name}");
    }
    // Under a single format too, when the batch's other shape denies what its items consent
    // to (merged all the way down, an item's own empty list takes the batch's items).
    let batch = |denied: &str| {
        format!(
            r#"{{"batch":[{{"messageId":"a","type":"track","context":{{"consent":{{"categoryPreferences":{{"Advertising":true}}}}}}}},{{"messageId":"b","type":"track","context":{{"consent":{{"categoryPreferences":{{"Advertising":true}}}},"consentManagement":{{"deniedConsentIds":[]}}}}}}],"context":{{"consentManagement":{{"deniedConsentIds":[{denied}]}}}}}}"#
        )
    };
    let judge_batch =
        |denied: &str| outcome(&run(&segment, &ads, "/v1/batch", false, &batch(denied)));
    assert_eq!(judge_batch(r#""Advertising""#), Deny(INVALID));
    assert_eq!(judge_batch(r#""Analytics""#), Allow);
    // A batch whose context has one shape and an item the other: merged, the item has both.
    let batch = r#"{"batch":[{"messageId":"a","type":"track","context":{"consentManagement":{"deniedConsentIds":[]}}},{"messageId":"b","type":"track"}],"context":{"consent":{"categoryPreferences":{"Advertising":true}}}}"#;
    assert_eq!(
        outcome(&run(&auto, &ads, "/v1/batch", false, batch)),
        Keep(vec!["b"])
    );
}

#[test]
fn a_batch_item_has_only_its_own_rudderstack_consent() {
    // rudder-server's gateway stores each item alone and drops the batch's context: an item
    // without its own consentManagement has none, whatever the batch's says.
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let rudder_allow_missing =
        Config::parse(r#"{"consent_format":"rudderstack","on_missing_consent":"allow"}"#).unwrap();
    let one = policy(&["C0004"], Match::All, None, &[]);
    let own = r#"{"messageId":"a","type":"track","context":{"consentManagement":{"deniedConsentIds":[]}}}"#;
    let bare = r#"{"messageId":"b","type":"track"}"#;
    let batch = |top: &str| {
        format!(r#"{{"batch":[{own},{bare}],"context":{{"consentManagement":{top}}}}}"#)
    };
    let not_denied = batch(r#"{"deniedConsentIds":[]}"#);
    let denied = batch(r#"{"deniedConsentIds":["C0004"]}"#);
    assert_eq!(
        outcome(&run(&rudder, &one, "/v1/batch", false, &not_denied)),
        Keep(vec!["a"])
    );
    // Without consent rudder-server delivers to every destination: so does `allow`.
    assert_eq!(
        outcome(&run(
            &rudder_allow_missing,
            &one,
            "/v1/batch",
            false,
            &not_denied
        )),
        Allow
    );
    // But the batch's denial is the item's to receivers that merge the batch's context into
    // each item (Jitsu, as Segment merges `consent`): an item without its own is dropped. So is
    // one whose own list is empty: merged all the way down (lodash's `merge`), lists element by
    // element, it keeps the batch's denied ID.
    for config in [&rudder, &rudder_allow_missing] {
        assert_eq!(
            outcome(&run(config, &one, "/v1/batch", false, &denied)),
            Deny("FILTERED_BY_END_USER_CONSENT"),
            "{denied}"
        );
    }
    let own_other = own.replace("[]", r#"["C0001"]"#);
    let longer = format!(
        r#"{{"batch":[{own_other}],"context":{{"consentManagement":{{"deniedConsentIds":["C0002","C0004"]}}}}}}"#
    );
    assert_eq!(
        outcome(&run(&rudder, &one, "/v1/batch", false, &longer)),
        Deny("FILTERED_BY_END_USER_CONSENT"),
        "{longer}"
    );
    // An allowed list at the batch's top level that lacks the route's ID: merged into an item
    // whose own lists name nothing, it decides for rudder-server's allow-list release.
    let allowing_other = batch(r#"{"allowedConsentIds":["C0001"]}"#);
    for config in [&rudder, &rudder_allow_missing] {
        assert_eq!(
            outcome(&run(config, &one, "/v1/batch", false, &allowing_other)),
            Deny("FILTERED_BY_END_USER_CONSENT"),
            "{allowing_other}"
        );
    }
    // The item's allowed IDs as an object, the batch's as a list: lodash's `merge` leaves the
    // batch's list (JSON drops the object's keys put on it), which lacks the route's ID.
    let object_over_list =
        r#"{"batch":[{"messageId":"a","type":"track","context":{"consentManagement":{"allowedConsentIds":{"C0004":"x"},"deniedConsentIds":[]}}}],"context":{"consentManagement":{"allowedConsentIds":["C0001"],"deniedConsentIds":[]}}}"#.to_string();
    assert_eq!(
        outcome(&run(&rudder, &one, "/v1/batch", false, &object_over_list)),
        Deny("FILTERED_BY_END_USER_CONSENT"),
        "{object_over_list}"
    );
    let j = run(&rudder, &one, "/v1/batch", false, &not_denied);
    assert_eq!((j.events, j.dropped), (2, 1));
    assert_eq!(j.reason(), Some(Reason::MissingConsent));
    // Merged all the way down, the batch's `provider: "custom"` (the route's strategy, `all`)
    // overrides nothing the item says but its strategy: the item's `"or"` no longer holds.
    let two = policy(&["C0001", "C0002"], Match::All, None, &[]);
    let item = r#"{"messageId":"a","type":"track","context":{"consentManagement":{"deniedConsentIds":["C0001"],"resolutionStrategy":"or"}}}"#;
    // Alone, without a provider, rudder-server reads its `"or"` as nothing (the older OneTrust
    // setting); with one (`ketch`), it counts.
    let alone = format!(r#"{{"batch":[{item}]}}"#);
    assert_eq!(
        outcome(&run(&rudder, &two, "/v1/batch", false, &alone)),
        Deny("FILTERED_BY_END_USER_CONSENT")
    );
    let ketch = item.replace(
        r#""resolutionStrategy""#,
        r#""provider":"ketch","resolutionStrategy""#,
    );
    let alone = format!(r#"{{"batch":[{ketch}]}}"#);
    assert_eq!(
        outcome(&run(&rudder, &two, "/v1/batch", false, &alone)),
        Allow
    );
    let merged = format!(
        r#"{{"batch":[{item}],"context":{{"consentManagement":{{"provider":"custom"}}}}}}"#
    );
    assert_eq!(
        outcome(&run(&rudder, &two, "/v1/batch", false, &merged)),
        Deny("FILTERED_BY_END_USER_CONSENT"),
        "{merged}"
    );
}

#[test]
fn global_privacy_control_withdraws_the_routes_gpc_categories() {
    let config = Config::default();
    let allow_missing = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let ads = policy(&["Advertising"], Match::All, None, &["Advertising"]);
    let any = policy(
        &["Advertising", "Analytics"],
        Match::Any,
        None,
        &["Advertising"],
    );
    let two = r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}"#;
    let rows: Vec<(&str, &Config, &RoutePolicy, bool, String, Want)> = vec![
        ("no signal", &config, &ads, false, seg(true, ""), Allow),
        (
            "signal withdraws consent",
            &config,
            &ads,
            true,
            seg(true, ""),
            Deny(CONSENT),
        ),
        (
            "signal with missing consent allowed",
            &allow_missing,
            &ads,
            true,
            r#"{"type":"track"}"#.into(),
            Deny(CONSENT),
        ),
        (
            "missing consent is still missing",
            &config,
            &ads,
            true,
            r#"{"type":"track"}"#.into(),
            Deny(MISSING),
        ),
        (
            "any: another category still consented",
            &config,
            &any,
            true,
            two.into(),
            Allow,
        ),
        (
            "RudderStack consent too",
            &rudder,
            &ads,
            true,
            rs(r#"{"deniedConsentIds":[]}"#),
            Deny(CONSENT),
        ),
        (
            "the consent change event still passes",
            &config,
            &ads,
            true,
            r#"{"type":"track","event":"Consent Change"}"#.into(),
            Allow,
        ),
    ];
    for (name, config, policy, gpc, body, want) in rows {
        let j = run(config, policy, "/v1/track", gpc, &body);
        assert_eq!(outcome(&j), want, "row: {name}");
        if want == Deny(CONSENT) {
            assert_eq!(
                j.denied_categories & 1,
                1,
                "row: {name}: Advertising is named as denied"
            );
        }
    }
}

#[test]
fn route_settings_for_destinations_and_gpc_are_checked() {
    use consent_gate::policy::RouteSetting;
    let setting = |json: &str| RouteSetting::from_json(json, Match::All);
    match setting(r#"{"category":"A","destination":"Mixpanel","gpc_denies":["A"]}"#) {
        Ok(RouteSetting::Gated(p)) => {
            assert_eq!(p.destination.as_deref(), Some("Mixpanel"));
            assert_eq!(p.gpc_denies, 1);
        }
        other => panic!("{other:?}"),
    }
    for (json, want) in [
        (
            r#"{"category":"A","destination":""}"#,
            r#""destination" must not be empty"#,
        ),
        (
            r#"{"category":"A","destination":"All"}"#,
            r#""destination" must name a destination, not "All""#,
        ),
        (
            r#"{"category":"A","destination":5}"#,
            r#""destination" must be a string, got the number 5"#,
        ),
        (
            r#"{"category":"A","gpc_denies":["B"]}"#,
            r#""gpc_denies[0]" names "B", which the route does not require"#,
        ),
        (
            r#"{"category":"A","gpc_denies":[]}"#,
            r#""gpc_denies" must not be empty"#,
        ),
        (
            r#"{"categories":["A","B"],"gpc_denies":["A","A"]}"#,
            r#""gpc_denies[1]" repeats "A""#,
        ),
        (
            r#"{"category":"A","gpc_denies":"A"}"#,
            r#""gpc_denies" must be a list, got the string "A""#,
        ),
        (
            r#"{"destination":"Mixpanel"}"#,
            r#"has "destination" but no "category" or "categories""#,
        ),
        (
            r#"{"gpc_denies":["A"]}"#,
            r#"has "gpc_denies" but no "category" or "categories""#,
        ),
        (
            r#"{"exempt":true,"destination":"Mixpanel"}"#,
            r#"has "destination" but no "category""#,
        ),
    ] {
        let err = setting(json).unwrap_err();
        assert!(err.contains(want), "{json}: {err}");
    }
    let err =
        Config::parse(r#"{"routes":[{"path_prefix":"/","categories":["A"],"gpc_denies":["B"]}]}"#)
            .unwrap_err();
    assert!(
        err.contains(r#""routes[0].gpc_denies[0]" names "B""#),
        "{err}"
    );
    let err = Config::parse(r#"{"consent_format":"rudder"}"#).unwrap_err();
    assert!(
        err.contains(
            r#""consent_format" must be one of "segment", "rudderstack", "auto", got "rudder""#
        ),
        "{err}"
    );
}

#[test]
fn a_key_with_a_category_or_entry_names_jsoniter_hash_is_a_second_reading() {
    // json-iterator/go decodes a struct of up to ten fields by a hash of each key, never its
    // text, and takes the last: a struct of the categories (`{AdStorage bool `json:"ad_storage"`}`)
    // or of `integrations` entries (`{All, Mixpanel *bool}`) reads a key with a name's hash as
    // that name. Each key (tests/support/jsoniter_keys.json, "names") was read so by
    // json-iterator/go 1.1.12: `folded` under its default (names all lower case), `exact` under
    // `CaseSensitive`. Beside the exact key saying otherwise, or alone where the name decides,
    // it is a second reading; saying the same, or renamed, it changes nothing.
    let keys: serde_json::Value =
        serde_json::from_str(include_str!("support/jsoniter_keys.json")).unwrap();
    let config = Config::default();
    let prefs = |name: &str, more: &str| {
        format!(
            r#"{{"type":"track","event":"Buy","context":{{"consent":{{"categoryPreferences":{{"{name}":true,{more}}}}}}}}}"#
        )
    };
    let mut checked = 0;
    for mode in ["folded", "exact"] {
        for (name, key) in keys["names"][mode].as_object().unwrap() {
            let key = serde_json::to_string(key).unwrap();
            let rows: Vec<(RoutePolicy, String, Want)> = match name.as_str() {
                "Mixpanel" => {
                    let p = || policy(&["Advertising"], Match::All, Some("Mixpanel"), &[]);
                    vec![
                        (
                            p(),
                            seg(true, &format!(r#"{{"Mixpanel":true,{key}:false}}"#)),
                            Deny(INVALID),
                        ),
                        (
                            p(),
                            seg(true, &format!(r#"{{"All":false,{key}:true}}"#)),
                            Deny(INVALID),
                        ),
                        (p(), seg(true, r#"{"Mixpanel":true,"x":false}"#), Allow),
                    ]
                }
                "All" => {
                    let p = || policy(&["Advertising"], Match::All, Some("Mixpanel"), &[]);
                    vec![
                        (
                            p(),
                            seg(true, &format!(r#"{{{key}:false}}"#)),
                            Deny(INVALID),
                        ),
                        (
                            p(),
                            seg(true, &format!(r#"{{"All":true,{key}:false}}"#)),
                            Deny(INVALID),
                        ),
                        (p(), seg(true, r#"{"x":false}"#), Allow),
                    ]
                }
                category => {
                    let p = || policy(&[category], Match::All, None, &[]);
                    vec![
                        (p(), prefs(category, &format!("{key}:false")), Deny(INVALID)),
                        (p(), prefs(category, &format!("{key}:true")), Allow),
                        (p(), prefs(category, r#""x":false"#), Allow),
                    ]
                }
            };
            for (policy, body, want) in rows {
                let path = "/v1/track";
                assert_eq!(
                    outcome(&run(&config, &policy, path, false, &body)),
                    want,
                    "{mode} {name}: {body}"
                );
                // The same event as a batch's item.
                let batch = format!(r#"{{"batch":[{body}]}}"#);
                let j = run(&config, &policy, "/v1/batch", false, &batch);
                let want = match want {
                    Allow => Allow,
                    Deny(_) => Deny(INVALID),
                    Keep(_) => unreachable!(),
                };
                assert_eq!(outcome(&j), want, "{mode} {name} in a batch: {batch}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
}

#[test]
fn rudderstack_values_a_java_enum_or_a_loose_comparison_reads_otherwise() {
    // A Java receiver that binds `provider` or the IDs to an enum takes other spellings for a
    // constant (Gson its name, `CUSTOM`, `ONE_TRUST`, `ADVERTISING`; Jackson's
    // ACCEPT_CASE_INSENSITIVE_ENUMS any case, `equalsIgnoreCase`'s folding too) and a string of
    // digits for the constant at that place (Jackson); PHP's `in_array` reads `"05"` as `"5"`,
    // Perl's `==` `"5abc"` as 5. Each was read so by Gson 2.10, Jackson 2.14, PHP 8.2 or Perl.
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let segment = Config::default();
    let two = policy(&["Advertising", "Analytics"], Match::All, None, &[]);
    let ads = policy(&["Advertising"], Match::All, None, &[]);
    let purpose = policy(&["5"], Match::All, None, &[]);
    let or_one = |provider: &str| {
        rs(&format!(
            r#"{{"provider":{provider},"resolutionStrategy":"or","deniedConsentIds":["Advertising"]}}"#
        ))
    };
    let denied = |id: &str| {
        rs(&format!(
            r#"{{"provider":"ketch","deniedConsentIds":[{id}]}}"#
        ))
    };
    let mut rows: Vec<(String, &Config, &RoutePolicy, String, Want)> = Vec::new();
    // `or` with one of two IDs denied passes for a provider that honours it (`ketch`), not
    // for `custom` (the route's `all`) or `oneTrust` (always `and`).
    rows.push(("ketch".into(), &rudder, &two, or_one(r#""ketch""#), Allow));
    for custom in [
        r#""CUSTOM""#,
        r#""Custom""#,
        r#""cu\u017ftom""#,
        r#""3""#,
        r#""0""#,
        // Jackson trims what is not above U+0020, then takes decimal digits of any script.
        r#"" 3""#,
        r#""3 ""#,
        r#""\t3""#,
        r#""\u00013""#,
        r#""0\u0663""#,
        r#""custom\u0000""#,
    ] {
        rows.push((custom.into(), &rudder, &two, or_one(custom), Deny(INVALID)));
    }
    for one_trust in [
        r#""ONE_TRUST""#,
        r#""OneTrust""#,
        r#""onetrust""#,
        r#""ONETRUST""#,
    ] {
        rows.push((
            one_trust.into(),
            &rudder,
            &two,
            or_one(one_trust),
            Deny(CONSENT),
        ));
    }
    for id in [
        r#""ADVERTISING""#,
        r#""advertising""#,
        r#""Adverti\u017fing""#,
        r#""advertising_""#,
    ] {
        rows.push((id.into(), &rudder, &ads, denied(id), Deny(CONSENT)));
    }
    // Digits where the route's IDs are names: any constant to Jackson.
    for id in [
        r#""0""#,
        r#""\t7""#,
        r#"" 1""#,
        r#""1 ""#,
        r#""\u00007""#,
        r#""0\u0660""#,
    ] {
        rows.push((id.into(), &rudder, &ads, denied(id), Deny(INVALID)));
    }
    // iubenda's consented purposes, digits, are not read as other numbers: they allow what they
    // list exactly (the numeric route's "5"), and on a route of named IDs they allow nothing,
    // which rudder-server's allow-list release drops for lack of consent (not as unreadable).
    let allowed = rs(
        r#"{"provider":"iubenda","allowedConsentIds":["1","2","3","4","5"],"deniedConsentIds":[]}"#,
    );
    rows.push((
        "allowed digits".into(),
        &rudder,
        &ads,
        allowed.clone(),
        Deny(CONSENT),
    ));
    rows.push((
        "allowed digits, numeric route".into(),
        &rudder,
        &purpose,
        allowed,
        Allow,
    ));
    // IDs in other scripts are other IDs: no reader binds them to a Latin constant.
    for id in [
        r#""Реклама""#,
        r#""広告Cookie""#,
        r#""Publicité""#,
        r#""tcf.purpose_10""#,
    ] {
        rows.push((id.into(), &rudder, &ads, denied(id), Allow));
    }
    let cookie = policy(&["分析Cookie"], Match::All, None, &[]);
    let other = denied(r#""広告Cookie""#);
    rows.push(("CJK, another".into(), &rudder, &cookie, other, Allow));
    let same = denied(r#""分析COOKIE""#);
    rows.push((
        "CJK, the same".into(),
        &rudder,
        &cookie,
        same,
        Deny(CONSENT),
    ));
    rows.push((
        r#""Analytics""#.into(),
        &rudder,
        &ads,
        denied(r#""Analytics""#),
        Allow,
    ));
    // Numbers, where the route's IDs are numbers (iubenda's purposes).
    for id in [
        r#""05""#,
        r#""5.0""#,
        r#"" 5""#,
        r#""5 ""#,
        r#""\n5""#,
        r#""5e0""#,
        r#""+5""#,
        r#""5.""#,
        r#"".5e1""#,
        r#""0005""#,
        r#""5.00""#,
        r#""5abc""#,
        // An exponent's leading zeros; more digits than a double holds, rounding onto 5.
        r#""0.5e0000001""#,
        r#""50e-0000001""#,
        r#""0.5e0000001abc""#,
        r#""4.99999999999999999""#,
        r#""4.99999999999999999x""#,
    ] {
        rows.push((id.into(), &rudder, &purpose, denied(id), Deny(CONSENT)));
    }
    for id in [
        r#""50""#,
        r#""3""#,
        r#""ax5""#,
        r#""C0004""#,
        r#""analytics""#,
        r#""tcf.purpose_5""#,
    ] {
        rows.push((id.into(), &rudder, &purpose, denied(id), Allow));
    }
    // Other forms of numbers, which some reader may read as the route's: Jackson binds "04" to
    // place 4, JavaScript's `==` reads "0x5", "0b101" and "\u00a05" as 5, Python's `int`
    // "0_5" and other scripts' digits.
    for id in [
        r#""04""#,
        r#"" 04""#,
        r#""0x5""#,
        r#""0b101""#,
        r#""\u0665""#,
        r#""\uff15""#,
        r#""0_5""#,
        r##""#05""##,
        r##""-#05""##,
        r#""x5""#,
        r#""B101""#,
        r#""0.5""#,
        r#""-1""#,
    ] {
        rows.push((id.into(), &rudder, &purpose, denied(id), Deny(INVALID)));
    }
    // White space beyond ASCII around the route's number: rudder-server trims it, so it is
    // that ID, denied.
    rows.push((
        "nbsp".into(),
        &rudder,
        &purpose,
        denied(r#""\u00a05""#),
        Deny(CONSENT),
    ));
    // Beside Segment's consent (row 11a), the other shape's refusal read the same way.
    let both = r#"{"type":"track","event":"Buy","context":{"consent":{"categoryPreferences":{"Advertising":true}},"consentManagement":{"deniedConsentIds":["ADVERTISING"]}}}"#;
    rows.push(("11a".into(), &segment, &ads, both.into(), Deny(INVALID)));
    for (name, config, policy, body, want) in rows {
        assert_eq!(
            outcome(&run(config, policy, "/v1/track", false, &body)),
            want,
            "{name}: {body}"
        );
        // The same event as a batch's item, beside one that passes: dropped where refused.
        let ok = r#"{"type":"track","event":"Buy","messageId":"ok","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true,"5":true,"分析Cookie":true}},"consentManagement":{"deniedConsentIds":[]}}}"#;
        let item = body.replacen('{', r#"{"messageId":"x","#, 1);
        let batch = format!(r#"{{"batch":[{item},{ok}]}}"#);
        let want = match want {
            Deny(_) => Keep(vec!["ok"]),
            other => other,
        };
        assert_eq!(
            outcome(&run(config, policy, "/v1/batch", false, &batch)),
            want,
            "{name} in a batch: {batch}"
        );
    }
}

#[test]
fn salesforce_is_off_unless_named_in_segments_shape_only() {
    let salesforce = policy(&["C0004"], Match::All, Some("Salesforce"), &[]);
    let segment = Config::default();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let auto = Config::parse(r#"{"consent_format":"auto"}"#).unwrap();
    let seg_event = |integrations: &str| {
        format!(
            r#"{{"type":"track","event":"Buy","context":{{"consent":{{"categoryPreferences":{{"C0004":true}}}}}}{integrations}}}"#
        )
    };
    let rs_event = |integrations: &str| {
        format!(
            r#"{{"type":"track","event":"Buy","context":{{"consentManagement":{{"deniedConsentIds":[]}}}}{integrations}}}"#
        )
    };
    // Segment's Facade holds Salesforce off unless the event turns it on, whatever `All` says.
    for (config, body, want) in [
        (&segment, seg_event(""), Deny(OFF)),
        (
            &segment,
            seg_event(r#","integrations":{"All":true}"#),
            Deny(OFF),
        ),
        (
            &segment,
            seg_event(r#","integrations":{"Salesforce":true}"#),
            Allow,
        ),
        (&auto, seg_event(""), Deny(OFF)),
        // rudder-server has no such default: RudderStack's SDKs send `All: true`.
        (&rudder, rs_event(r#","integrations":{"All":true}"#), Allow),
        (&rudder, rs_event(""), Allow),
        (&auto, rs_event(r#","integrations":{"All":true}"#), Allow),
        (
            &rudder,
            rs_event(r#","integrations":{"Salesforce":false}"#),
            Deny(OFF),
        ),
    ] {
        assert_eq!(
            outcome(&run(config, &salesforce, "/v1/track", false, &body)),
            want,
            "{body}"
        );
    }
}
