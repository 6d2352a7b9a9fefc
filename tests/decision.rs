//! The decision table, row by row: each row is a request body on a route and what must happen.

use consent_gate::config::{Config, MissingConsent};
use consent_gate::decision::{judge, Action, Judgement, Reason, Request};
use consent_gate::encoding::Encoding;
use consent_gate::policy::{Match, RoutePolicy};

fn policy(categories: &[&str], match_mode: Match) -> RoutePolicy {
    RoutePolicy::new(
        categories.iter().map(|c| c.to_string()).collect(),
        match_mode,
    )
}

fn run(
    config: &Config,
    policy: &RoutePolicy,
    path: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> Judgement {
    judge(
        &Request {
            config,
            policy,
            content_encoding: encoding,
            path,
            gpc: false,
            form: false,
            preflight: false,
        },
        body,
    )
}

fn event(prefs: &str) -> String {
    format!(
        r#"{{"type":"track","event":"Order Completed","userId":"u1","context":{{"consent":{{"categoryPreferences":{prefs}}}}}}}"#
    )
}

#[derive(Debug, PartialEq)]
enum Want {
    Allow,
    Deny(&'static str, u16),
}

fn outcome(config: &Config, j: &Judgement) -> Want {
    match j.action {
        Action::Forward => Want::Allow,
        Action::Reply(r) => Want::Deny(r.code(), r.status(config)),
        Action::Rewrite(_) => panic!("single events are never rewritten"),
    }
}

#[test]
fn single_event_decision_table() {
    let deny = Config::default();
    let allow_missing = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    let status_451 = Config::parse(r#"{"deny_status":451}"#).unwrap();
    let ads = policy(&["Advertising"], Match::All);
    let both_all = policy(&["Advertising", "Analytics"], Match::All);
    let both_any = policy(&["Advertising", "Analytics"], Match::Any);
    use Want::*;
    const CONSENT: &str = "FILTERED_BY_END_USER_CONSENT";
    const MISSING: &str = "MISSING_CONSENT";
    const INVALID: &str = "INVALID_EVENT";
    let rows: Vec<(&str, &Config, &RoutePolicy, String, Want)> = vec![
        ("consented", &deny, &ads, event(r#"{"Advertising":true}"#), Allow),
        ("refused", &deny, &ads, event(r#"{"Advertising":false}"#), Deny(CONSENT, 403)),
        ("custom deny status", &status_451, &ads, event(r#"{"Advertising":false}"#), Deny(CONSENT, 451)),
        ("absent category is not consent", &deny, &ads, event(r#"{"Analytics":true}"#), Deny(CONSENT, 403)),
        ("empty preferences consent to nothing", &deny, &ads, event("{}"), Deny(CONSENT, 403)),
        ("empty preferences, even when missing consent is allowed", &allow_missing, &ads, event("{}"), Deny(CONSENT, 403)),
        ("string \"true\" is not consent", &deny, &ads, event(r#"{"Advertising":"true"}"#), Deny(CONSENT, 403)),
        ("1 is not consent", &deny, &ads, event(r#"{"Advertising":1}"#), Deny(CONSENT, 403)),
        ("null is not consent", &deny, &ads, event(r#"{"Advertising":null}"#), Deny(CONSENT, 403)),
        ("keys are case-sensitive", &deny, &ads, event(r#"{"advertising":true}"#), Deny(CONSENT, 403)),
        ("keys are not trimmed", &deny, &ads, event(r#"{" Advertising":true}"#), Deny(CONSENT, 403)),
        ("escaped keys are decoded", &deny, &ads, event(r#"{"Adv\u0065rtising":true}"#), Allow),
        ("unused keys are ignored", &deny, &ads, event(r#"{"Advertising":true,"Other":false}"#), Allow),
        ("all: every category", &deny, &both_all, event(r#"{"Advertising":true,"Analytics":true}"#), Allow),
        ("all: one missing", &deny, &both_all, event(r#"{"Advertising":true,"Analytics":false}"#), Deny(CONSENT, 403)),
        ("any: one is enough", &deny, &both_any, event(r#"{"Advertising":false,"Analytics":true}"#), Allow),
        ("any: none", &deny, &both_any, event(r#"{"Advertising":false}"#), Deny(CONSENT, 403)),
        ("no context", &deny, &ads, r#"{"type":"track","event":"x"}"#.into(), Deny(MISSING, 403)),
        ("no consent", &deny, &ads, r#"{"type":"track","context":{"ip":"1.2.3.4"}}"#.into(), Deny(MISSING, 403)),
        ("consent {}", &deny, &ads, r#"{"type":"track","context":{"consent":{}}}"#.into(), Deny(MISSING, 403)),
        ("missing consent allowed", &allow_missing, &ads, r#"{"type":"track"}"#.into(), Allow),
        ("no consent allowed", &allow_missing, &ads, r#"{"type":"track","context":{"ip":"1.2.3.4"}}"#.into(), Allow),
        // Segment: `consent: {}` flows to every destination, as no consent does.
        ("consent {} allowed as missing", &allow_missing, &ads, r#"{"type":"track","context":{"consent":{}}}"#.into(), Allow),
        ("preferences not an object", &deny, &ads, r#"{"context":{"consent":{"categoryPreferences":true}}}"#.into(), Deny(INVALID, 400)),
        ("preferences null", &deny, &ads, r#"{"context":{"consent":{"categoryPreferences":null}}}"#.into(), Deny(INVALID, 400)),
        ("consent not an object", &deny, &ads, r#"{"context":{"consent":"yes"}}"#.into(), Deny(INVALID, 400)),
        ("context not an object", &deny, &ads, r#"{"context":[]}"#.into(), Deny(INVALID, 400)),
        ("duplicate category (false then true)", &deny, &ads, event(r#"{"Advertising":false,"Advertising":true}"#), Deny(INVALID, 400)),
        ("duplicate category (true then false)", &deny, &ads, event(r#"{"Advertising":true,"Advertising":false}"#), Deny(INVALID, 400)),
        ("duplicate category via escape", &deny, &ads, event(r#"{"Advertising":false,"\u0041dvertising":true}"#), Deny(INVALID, 400)),
        // cJSON's `cJSON_GetObjectItem` finds a key without ASCII case, the first one: here
        // `advertising`, and reads the refusal.
        ("category in another case before its exact key", &deny, &ads, event(r#"{"advertising":false,"Advertising":true}"#), Deny(INVALID, 400)),
        ("category in another case before its exact key, the same answer", &deny, &ads, event(r#"{"ADVERTISING":true,"Analytics":true,"Advertising":true}"#), Allow),
        ("another case of a category no route requires", &deny, &ads, event(r#"{"analytics":false,"Analytics":false,"Advertising":true}"#), Allow),
        ("duplicate categoryPreferences", &deny, &ads,
            r#"{"context":{"consent":{"categoryPreferences":{"Advertising":false},"categoryPreferences":{"Advertising":true}}}}"#.into(), Deny(INVALID, 400)),
        ("duplicate consent", &deny, &ads,
            r#"{"context":{"consent":{"categoryPreferences":{}},"consent":{"categoryPreferences":{"Advertising":true}}}}"#.into(), Deny(INVALID, 400)),
        ("duplicate context", &deny, &ads,
            r#"{"context":{},"context":{"consent":{"categoryPreferences":{"Advertising":true}}}}"#.into(), Deny(INVALID, 400)),
        ("Go reads Context as context", &deny, &ads,
            r#"{"type":"track","Context":{"consent":{"categoryPreferences":{"Advertising":true}}}}"#.into(), Deny(INVALID, 400)),
        ("context and Context", &deny, &ads,
            r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":false}}},"Context":{"consent":{"categoryPreferences":{"Advertising":true}}}}"#.into(), Deny(INVALID, 400)),
        ("consent and con\\u017fent", &deny, &ads,
            r#"{"context":{"consent":{"categoryPreferences":{"Advertising":true}},"con\u017fent":{"categoryPreferences":{"Advertising":false}}}}"#.into(), Deny(INVALID, 400)),
        ("categoryPreferences in upper case", &deny, &ads,
            r#"{"context":{"consent":{"CategoryPreferences":{"Advertising":true}}}}"#.into(), Deny(INVALID, 400)),
        ("type and Type", &deny, &ads, r#"{"type":"identify","Type":"track","event":"Consent Change"}"#.into(), Deny(INVALID, 400)),
        ("a key a NUL-stopping reader takes for context", &deny, &ads,
            r#"{"context\u0000x":{"consent":{"categoryPreferences":{"Advertising":true}}}}"#.into(), Deny(INVALID, 400)),
        ("category keys count only exactly: another case is no consent", &deny, &ads,
            event(r#"{"ADVERTISING":true}"#), Deny(CONSENT, 403)),
        ("another case of a required category saying otherwise, after it: Go's struct reads it", &deny, &ads,
            event(r#"{"Advertising":true,"ADVERTISING":false}"#), Deny(INVALID, 400)),
        ("another spelling saying otherwise: Facade's obj-case reads the first", &deny, &ads,
            event(r#"{"Ad-vertising":false,"Advertising":true}"#), Deny(INVALID, 400)),
        ("another spelling saying the same is read alike", &deny, &ads,
            event(r#"{"Advertising":true,"advertising":true}"#), Allow),
        ("a top-level options object is Facade's context", &deny, &ads,
            format!(r#"{{"options":{{"consent":{{"categoryPreferences":{{"Advertising":false}}}}}},{}"#,
                    &event(r#"{"Advertising":true}"#)[1..]), Deny(INVALID, 400)),
        ("an escaped key goccy takes for a field by its prefix", &deny, &ads,
            r#"{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":{"Advertising":true}}},"c\u006f":{"consent":{"categoryPreferences":{"Advertising":false}}}}"#.into(),
            Deny(INVALID, 400)),
        ("duplicate event name", &deny, &ads, r#"{"type":"track","event":"Consent Change","event":"Buy"}"#.into(), Deny(INVALID, 400)),
        ("allow-listed consent event, no consent", &deny, &ads, r#"{"type":"track","event":"Consent Change"}"#.into(), Allow),
        ("allow-listed consent event, refused", &deny, &ads,
            r#"{"type":"track","event":"Segment Consent Preference Updated","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}"#.into(), Allow),
        ("allow-listed name but not a track event", &deny, &ads, r#"{"type":"identify","event":"Consent Change"}"#.into(), Deny(MISSING, 403)),
        // A model that binds `type` and `event` to attributes named otherwise (marshmallow's
        // `data_key`, class-transformer's `@Expose({name})`, pydantic's alias with extra keys
        // dumped) takes a key of that name, after the field, for it: with any key but
        // Segment's own, the allow list does not apply, the event's consent decides.
        ("allow-listed, with an event_name", &deny, &ads,
            r#"{"type":"track","event":"Consent Change","event_name":"Order Completed"}"#.into(), Deny(MISSING, 403)),
        ("allow-listed, with an eventType", &deny, &ads,
            r#"{"type":"track","event":"Consent Change","eventType":"identify","traits":{"email":"a@b.example"}}"#.into(), Deny(MISSING, 403)),
        ("allow-listed, with events", &deny, &ads,
            r#"{"type":"track","event":"Consent Change","events":[{"type":"track","event":"Order Completed"}]}"#.into(), Deny(MISSING, 403)),
        ("allow-listed, with an EVENT_NAME, consented", &deny, &ads,
            r#"{"type":"track","event":"Consent Change","EVENT_NAME":"Order Completed","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}"#.into(), Allow),
        ("allow-listed, with a name", &deny, &ads,
            r#"{"type":"track","event":"Consent Change","name":"Order Completed"}"#.into(), Deny(MISSING, 403)),
        ("allow-listed, with an e", &deny, &ads,
            r#"{"type":"track","event":"Consent Change","e":"Order Completed"}"#.into(), Deny(MISSING, 403)),
        ("allow-listed, with Segment's keys", &deny, &ads,
            r#"{"type":"track","event":"Consent Change","userId":"u","anonymousId":"a","messageId":"m","timestamp":"t","properties":{"event_type":"x","name":"n"},"context":{},"integrations":{},"sentAt":"s","_metadata":{},"version":2,"userProperties":{"plan":"pro"}}"#.into(), Allow),
        ("allow-listed event with unreadable consent", &deny, &ads,
            r#"{"type":"track","event":"Consent Change","context":{"consent":{"categoryPreferences":7}}}"#.into(), Deny(INVALID, 400)),
        ("not JSON", &deny, &ads, "hello".into(), Deny(INVALID, 400)),
        ("an array", &deny, &ads, "[]".into(), Deny(INVALID, 400)),
        ("a string", &deny, &ads, r#""{}""#.into(), Deny(INVALID, 400)),
        ("trailing bytes", &deny, &ads, format!("{} x", event(r#"{"Advertising":true}"#)), Deny(INVALID, 400)),
        ("two objects", &deny, &ads, format!("{0}{0}", event(r#"{"Advertising":true}"#)), Deny(INVALID, 400)),
        ("truncated", &deny, &ads, event(r#"{"Advertising":true}"#).trim_end_matches('}').into(), Deny(INVALID, 400)),
        ("white space around is fine", &deny, &ads, format!(" \n{}\r\n ", event(r#"{"Advertising":true}"#)), Allow),
        ("empty body is missing consent", &deny, &ads, String::new(), Deny(MISSING, 403)),
        ("empty body, missing consent allowed", &allow_missing, &ads, String::new(), Allow),
    ];
    for (name, config, policy, body, want) in rows {
        let j = run(config, policy, "/collect", None, body.as_bytes());
        assert_eq!(outcome(config, &j), want, "row: {name}");
        assert!(!j.is_batch, "row: {name}");
    }
}

#[test]
fn invalid_utf8_is_invalid() {
    let config = Config::default();
    let body = b"{\"type\":\"track\",\"event\":\"\xff\",\"context\":{\"consent\":{\"categoryPreferences\":{\"Ads\":true}}}}";
    let j = run(&config, &policy(&["Ads"], Match::All), "/", None, body);
    assert_eq!(j.action, Action::Reply(Reason::InvalidEvent));
}

#[test]
fn the_endpoint_and_the_body_must_name_the_same_kind_of_call() {
    let config = Config::default();
    let ads = policy(&["Ads"], Match::All);
    let judge_at = |path: &str, body: &str| run(&config, &ads, path, None, body.as_bytes()).action;
    let reply = Action::Reply;
    let consented = r#""context":{"consent":{"categoryPreferences":{"Ads":true}}}"#;
    let track = format!(r#"{{"type":"track","event":"Buy",{consented}}}"#);
    let item = format!(r#"{{"type":"track","event":"Buy",{consented},"messageId":"m"}}"#);
    // A path that names a call and a body whose type names another: refused.
    assert_eq!(judge_at("/v1/track", &track), Action::Forward);
    assert_eq!(judge_at("/v1/t", &track), Action::Forward);
    assert_eq!(
        judge_at("/v1/identify", &track),
        reply(Reason::InvalidEvent)
    );
    assert_eq!(
        judge_at("/v1/%69dentify", &track),
        reply(Reason::InvalidEvent)
    );
    assert_eq!(judge_at("/v1/p", &track), reply(Reason::InvalidEvent));
    // Routers that take a format suffix off (`identify.json`) or fold `ſ`, `ı` route these to
    // the call: an allow-listed track there is no track to them.
    let consent_change = r#"{"type":"track","event":"Consent Change"}"#;
    assert_eq!(judge_at("/v1/track.json", consent_change), Action::Forward);
    // So do handlers that take the segments after their own (CherryPy's `*args`, Go's
    // `/v1/identify/` subtree pattern): `/v1/identify/x` runs the identify handler.
    for path in [
        "/v1/identify.json",
        "/v1/alia%C5%BF",
        "/v1/%C4%B1dentify",
        "/v1/identify/x",
        "/v1/identify/track",
        "/ads/v1/batch/x",
    ] {
        assert_eq!(
            judge_at(path, consent_change),
            reply(Reason::InvalidEvent),
            "{path}"
        );
    }
    let page = format!(r#"{{"type":"page",{consented}}}"#);
    assert_eq!(judge_at("/v1/track", &page), reply(Reason::InvalidEvent));
    assert_eq!(judge_at("/v1/page", &page), Action::Forward);
    let odd_type = format!(r#"{{"type":"Track",{consented}}}"#);
    assert_eq!(
        judge_at("/v1/track", &odd_type),
        reply(Reason::InvalidEvent)
    );
    assert_eq!(judge_at("/collect", &odd_type), Action::Forward);
    // No type: the endpoint names the call, and the body cannot contradict it.
    let untyped = format!(r#"{{"event":"Buy",{consented}}}"#);
    assert_eq!(judge_at("/v1/identify", &untyped), Action::Forward);
    // A batch body at a single-event endpoint, a single event at a batch endpoint: refused.
    let batch = format!(r#"{{"batch":[{item}],"sentAt":"x"}}"#);
    assert_eq!(judge_at("/v1/batch", &batch), Action::Forward);
    assert_eq!(judge_at("/v1/b", &batch), Action::Forward);
    assert_eq!(judge_at("/collect", &batch), Action::Forward);
    assert_eq!(judge_at("/v1/track", &batch), reply(Reason::InvalidEvent));
    assert_eq!(judge_at("/v1/batch", &track), reply(Reason::InvalidEvent));
    assert_eq!(judge_at("/v1/import", &track), reply(Reason::InvalidEvent));
    // RudderStack's retl and replay take batches.
    for path in ["/internal/v1/retl", "/internal/v1/replay"] {
        assert_eq!(judge_at(path, &batch), Action::Forward, "{path}");
        assert_eq!(
            judge_at(path, &track),
            reply(Reason::InvalidEvent),
            "{path}"
        );
    }
    // RudderStack's other calls: the gateway sets `type` from the path, so neither a track
    // (allow-listed or not) nor a batch body may go there; a body of that call is judged.
    for path in [
        "/v1/merge",
        "/v1/audiencelist",
        "/internal/v1/audiencelist",
        "/internal/v1/extract",
        "/v1/webhook",
        "/v1/MERGE/",
    ] {
        assert_eq!(
            judge_at(path, &track),
            reply(Reason::InvalidEvent),
            "{path}"
        );
        assert_eq!(
            judge_at(path, &batch),
            reply(Reason::InvalidEvent),
            "{path}"
        );
        let merge = format!(r#"{{"type":"merge","mergeProperties":[],{consented}}}"#);
        assert_eq!(judge_at(path, &merge), Action::Forward, "{path}");
        assert_eq!(judge_at(path, &untyped), Action::Forward, "{path}");
        let refused =
            r#"{"type":"merge","context":{"consent":{"categoryPreferences":{"Ads":false}}}}"#;
        assert_eq!(
            judge_at(path, refused),
            reply(Reason::FilteredByEndUserConsent),
            "{path}"
        );
    }
}

#[test]
fn a_query_that_may_carry_an_event_is_refused_with_a_body_or_without() {
    let config = Config::default();
    let lenient = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    let ads = policy(&["Ads"], Match::All);
    let consented = r#""context":{"consent":{"categoryPreferences":{"Ads":true}}}"#;
    let track = format!(r#"{{"type":"track","event":"Buy",{consented}}}"#);
    let batch = format!(r#"{{"batch":[{track}]}}"#);
    let judge_at = |config: &Config, path: &str, body: &str| {
        run(config, &ads, path, None, body.as_bytes()).action
    };
    let invalid = Action::Reply(Reason::InvalidEvent);
    for config in [&config, &lenient] {
        // A pixel reader takes the event from the query and ignores the consented body.
        for path in [
            "/v1/pixel/track?data=eyJ0eXBlIjoidHJhY2sifQ",
            "/v1/track?data=e30",
            "/v1/pixel/track?userId=u1&event=Buy&properties.x=1",
            "/pixel/v1/track?writeKey=k&anonymousId=a&event=Buy",
            "/v1/track?x=1",
            "/v1/track?&",
            "/v1/track?writeKey",
            "/v1/track?writekey=k",
            "/v1/track?writeKey=k&writeKey=k",
            // Readers that split at `;`, or decode escapes before splitting, see `data`.
            "/v1/track?writeKey=k;data=e30",
            "/v1/track?writeKey=k%26data%3De30",
            "/v1/track?writeKey=k+data",
            "/v1/track?writeKey=k#x?data=e30",
            "/v1/track?#x",
            // A fragment without a query: some reader may take what follows it for one.
            "/v1/track#data=e30",
            "/v1/track#?data=e30",
            "/v1/track#",
            // A query in `%3F`: a proxy that hands on its decoded path makes it one.
            "/v1/pixel/track%3Fdata=eyJ0eXBlIjoidHJhY2sifQ",
            "/v1/track%253Fdata=e30",
            "/v1/track%23data=e30",
            // Fastify 4's router ends a path at `;`, as at `?`: what follows is its query.
            "/v1/pixel/track;data=eyJ0eXBlIjoidHJhY2sifQ",
            "/v1/identify;/x",
            "/v1/track;",
            "/v1/track%3Bdata=e30",
        ] {
            assert_eq!(judge_at(config, path, &track), invalid, "{path}");
            assert_eq!(judge_at(config, path, ""), invalid, "{path}, no body");
        }
        // A write key alone (RudderStack's beacon requests) does not carry an event.
        assert_eq!(
            judge_at(config, "/beacon/v1/batch?writeKey=2Va8-vv_J8.5~x", &batch),
            Action::Forward
        );
        assert_eq!(
            judge_at(config, "/v1/track?writeKey=k", &track),
            Action::Forward
        );
        assert_eq!(judge_at(config, "/v1/track?", &track), Action::Forward);
        // ... and a body without consent is still judged as one.
        let unconsented = r#"{"type":"track","event":"Buy"}"#;
        let want = if config.on_missing_consent == MissingConsent::Allow {
            Action::Forward
        } else {
            Action::Reply(Reason::MissingConsent)
        };
        assert_eq!(judge_at(config, "/v1/track?writeKey=k", unconsented), want);
        // No body: nothing there to judge, whatever the query.
        assert_eq!(judge_at(config, "/v1/pixel/track?writeKey=k", ""), invalid);
    }
}

#[test]
fn a_form_body_is_refused_when_a_form_reader_finds_event_fields_in_it() {
    let config = Config::default();
    let ads = policy(&["Advertising"], Match::All);
    let judge_form = |path: &str, body: &str, form: bool| {
        let j = judge(
            &Request {
                config: &config,
                policy: &ads,
                content_encoding: None,
                path,
                gpc: false,
                form,
                preflight: false,
            },
            body.as_bytes(),
        );
        outcome(&config, &j)
    };
    let consented = event(r#"{"Advertising":true}"#);
    let hiding = |tail: &str| {
        consented.replacen(
            r#""userId":"u1""#,
            &format!(r#""userId":"u1","p":"{tail}""#),
            1,
        )
    };
    // Express's urlencoded(), Go's ParseForm and Flask read these fields from the body.
    for tail in [
        "&type=identify&userId=u1&traits[email]=jane@example.com&z=",
        "&t%79pe=identify&z=",
        "&user%49d=u1",
        "&USERID=u1",
        "&context.consent=x",
        ";anonymousId=a",
        "&batch[0][type]=identify",
        "&data=eyJ0eXBlIjoiaWRlbnRpZnkifQ",
        // Spelled as a Ruby or Python receiver names its fields (see row 2's spellings).
        "&user_id=u1",
        "&anonymous_id=a",
        "&_type=identify",
        "&Anonymous-Id=a",
        "&previous%20id=p",
        // PHP's names: `.` and spaces are `_`, an unclosed `[` is `_`, a NUL ends the name.
        "&user.id=u1",
        "&user[id=u1",
        "&.type=identify",
        "&%20.type=identify",
        "&type%00x=identify",
        // Rack's and qs's: leading brackets dropped.
        "&[type]=identify",
        "&%5Btype%5D=identify",
        "&]type=identify",
        "&[[user_id=u1",
        // Any name that is not JSON text, spelled as converters spell it.
        "&~type=identify",
        "&t%C3%BDpe=identify",
        "&user~id=u1",
        "&%22type=identify",
        "&%7Btraits[email]=x",
        "&type%22=identify",
        // A NUL first, escapes that are not UTF-8 (qs keeps `%batch` as it is).
        "&%00type=track",
        "&%batch[0][type]=track",
        "&%data=x",
    ] {
        let body = hiding(tail);
        assert_eq!(
            judge_form("/v1/track", &body, true),
            Want::Deny("INVALID_EVENT", 400),
            "{body}"
        );
        // Read as JSON (the declared type is not a form), it is the consented event.
        assert_eq!(judge_form("/v1/track", &body, false), Want::Allow, "{body}");
    }
    // A JSON body declared a form (RudderStack's Node client does) whose strings hold no
    // event field name: the same event to every reader that reads it at all.
    for tail in ["", "https://shop.example/?a=1&b=2", "x;y", "100%", "a=b"] {
        let body = hiding(tail);
        assert_eq!(judge_form("/v1/track", &body, true), Want::Allow, "{body}");
    }
    assert_eq!(judge_form("/v1/track", &consented, true), Want::Allow);
    // The JSON's own first key holding `=`: qs reads `{"type` as a field, lodash's camelCase
    // makes it `type`.
    let keyed = consented.replacen('{', r#"{"type=track&":1,"#, 1);
    assert_eq!(
        judge_form("/v1/track", &keyed, true),
        Want::Deny("INVALID_EVENT", 400)
    );
}

#[test]
fn a_prototype_key_on_an_object_the_decision_reads_is_invalid() {
    // `JSON.parse` keeps `__proto__` as an own key, but a JavaScript receiver that copies the
    // object with `Object.assign` (or a `for…in` loop) sets the copy's prototype to it, and then
    // reads its members as the copy's fields: here a refusal where the filter saw no consent.
    let allow_missing = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    let both = Config::parse(r#"{"on_missing_consent":"allow","consent_format":"auto"}"#).unwrap();
    let ads = policy(&["Ads"], Match::All);
    let refusal = r#"{"consent":{"categoryPreferences":{"Ads":false}}}"#;
    let rudder = r#"{"consentManagement":{"deniedConsentIds":["Ads"]}}"#;
    for (config, body) in [
        (&allow_missing, format!(r#"{{"type":"track","__proto__":{{"context":{refusal}}}}}"#)),
        (&allow_missing, format!(r#"{{"type":"track","__pro\u0074o__":{{"context":{refusal}}}}}"#)),
        (&allow_missing, format!(r#"{{"type":"track","context":{{"__proto__":{refusal}}}}}"#)),
        (
            &allow_missing,
            r#"{"type":"track","context":{"consent":{"__proto__":{"categoryPreferences":{"Ads":false}}}}}"#.to_string(),
        ),
        // Under a granted category too: the copy's own `Ads` would still win, but the object
        // is one the decision reads, so its prototype is one more reading of it.
        (
            &allow_missing,
            r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,"__proto__":{"Ads":false}}}}}"#.to_string(),
        ),
        (
            &allow_missing,
            r#"{"type":"track","context":{"consent":{"categoryPreferences":{"__pro\u0074o__":{"Ads":true}}}}}"#.to_string(),
        ),
        (&both, format!(r#"{{"type":"track","context":{{"__proto__":{rudder}}}}}"#)),
        (
            &both,
            r#"{"type":"track","context":{"consentManagement":{"__proto__":{"deniedConsentIds":["Ads"]}}}}"#.to_string(),
        ),
    ] {
        let j = run(config, &ads, "/v1/track", None, body.as_bytes());
        assert_eq!(j.action, Action::Reply(Reason::InvalidEvent), "{body}");
    }
    // Where the decision reads nothing, it is just a key.
    let body = r#"{"type":"track","properties":{"__proto__":{"x":1}},"context":{"consent":{"categoryPreferences":{"Ads":true}}}}"#;
    let j = run(&allow_missing, &ads, "/v1/track", None, body.as_bytes());
    assert_eq!(j.action, Action::Forward);
}

#[test]
fn a_key_that_makes_a_reader_rebuild_the_object_or_a_symbol_is_invalid() {
    const REFUSAL: &str =
        r#""properties":{"x":{"Ads":false},"c":{"consent":{"categoryPreferences":{"Ads":false}}}}"#;
    // Oj, Ruby's fast JSON gem, loads in its object mode by default (`Oj.load(body)`): a key
    // starting with `^` is a directive there (`"^#1":[key, value]` sets the entry `key`, after
    // the real one too; `"^o"` first turns the object into an instance of a class), and a key
    // starting with `:` is a Symbol, which Rails' indifferent access merges with the string key.
    let segment = Config::default();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let routed = Config::parse(r#"{"routes":[]}"#).unwrap();
    let ads = policy(&["Ads"], Match::All);
    let granted = r#"{"consent":{"categoryPreferences":{"Ads":true}}}"#;
    let cases: Vec<(&Config, &str, String)> = vec![
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,"^#1":["Ads",false]}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,"\u005e#x":["Ads",false]}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"^o":"String","Ads":true}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,":Ads":false}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,"\u003aAds":false}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true},"^#1":["categoryPreferences",{"Ads":false}]}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true}},"^#1":["consent",{"categoryPreferences":{"Ads":false}}]}}"#.into()),
        (&segment, "/v1/track", format!(r#"{{"type":"track","context":{granted},"^#1":["context",{{"consent":{{"categoryPreferences":{{"Ads":false}}}}}}]}}"#)),
        (&segment, "/v1/track", r#"{"type":"track","event":"Consent Change","^#1":["type","identify"],"traits":{"email":"a@b.example"}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","event":"Consent Change","^#1":["event","Order Completed"]}"#.into()),
        (&segment, "/v1/batch", format!(r#"{{"batch":[{{"type":"track","context":{granted},"^#1":["context",{{}}]}}]}}"#)),
        (&segment, "/v1/batch", r#"{"batch":[{"type":"track"}],"context":{"consent":{"categoryPreferences":{"Ads":true,"^#1":["Ads",false]}}}}"#.into()),
        (&segment, "/v1/batch", format!(r#"{{"batch":[{{"type":"track","context":{granted}}}],"^#1":["batch",[]]}}"#)),
        (&rudder, "/v1/track", r#"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[],"^#1":["deniedConsentIds",["Ads"]]}}}"#.into()),
        (&rudder, "/v1/track", r#"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[":Ads"]}}}"#.into()),
        // Ruby's `JSON.load` (additions on by default): `json_class` makes the object a String.
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"json_class":"String","raw":[],"Ads":true}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"json_class":"String","raw":[],"consent":{"categoryPreferences":{"Ads":true}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"json\u005fclass":"String","categoryPreferences":{"Ads":true}}}}"#.into()),
        (&segment, "/v1/batch", r#"{"batch":[{"type":"track"}],"context":{"json_class":"String","raw":[],"consent":{"categoryPreferences":{"Ads":true}}}}"#.into()),
        (&rudder, "/v1/track", r#"{"type":"track","context":{"consentManagement":{"json_class":"String","deniedConsentIds":[]}}}"#.into()),
        // JSON reference and object-graph readers replace an object holding `$ref` (Python's
        // jsonref, npm's json-refs, cycle.js) or `@ref` (JSOG) with the one it points at;
        // jsonpickle and json_tricks rebuild one from `py/…` and `__instance_type__`.
        (&segment, "/v1/track", format!(r##"{{"type":"track",{REFUSAL},"context":{{"consent":{{"categoryPreferences":{{"Ads":true,"$ref":"#/properties/x"}}}}}}}}"##)),
        (&segment, "/v1/track", format!(r#"{{"type":"track",{REFUSAL},"context":{{"$ref":"$[\"properties\"][\"c\"]","consent":{{"categoryPreferences":{{"Ads":true}}}}}}}}"#)),
        (&segment, "/v1/track", format!(r#"{{"type":"track",{REFUSAL},"context":{{"consent":{{"@ref":"1","categoryPreferences":{{"Ads":true}}}}}}}}"#)),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,"py/id":1}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"__instance_type__":["collections","OrderedDict"],"categoryPreferences":{"Ads":true}}}}"#.into()),
        // jsonpickle with `keys=True` reads `json://"Ads"` as `Ads`, wherever it stands.
        (&segment, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,"json://\"Ads\"":false}}}}"#.into()),
        (&segment, "/v1/track", r#"{"type":"track","event":"Consent Change","json://\"type\"":"identify","traits":{"email":"a@b.example"}}"#.into()),
        (&segment, "/v1/batch", format!(r##"{{"batch":[{{"$ref":"#/metadata/x","type":"track","context":{granted}}}],"metadata":{{"x":{{"type":"identify"}}}}}}"##)),
        (&rudder, "/v1/track", r##"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[],"$ref":"#/properties/cm"}}}"##.into()),
    ];
    for (config, path, body) in &cases {
        let j = run(config, &ads, path, None, body.as_bytes());
        assert_eq!(
            j.reason(),
            Some(Reason::InvalidEvent),
            "{path} {body}: {:?}",
            j.action
        );
    }
    // Escapes anywhere in such a key: read decoded, as every reader does.
    for body in [
        r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,":A\u0064s":false}}}}"#,
        r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,"j\u0073on_class":"String","raw":[]}}}}"#,
        r##"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true,"$r\u0065f":"#/x"}}}}"##,
    ] {
        let j = run(&segment, &ads, "/v1/track", None, body.as_bytes());
        assert_eq!(j.reason(), Some(Reason::InvalidEvent), "{body}");
    }
    // `integrations`, on a route with a destination.
    let mixpanel = RoutePolicy::new(vec!["Ads".into()], Match::All)
        .with_extras("", Some("Mixpanel".into()), None)
        .unwrap();
    for integrations in [
        r#""Mixpanel":true,"^#1":["Mixpanel",false]"#,
        r##""Mixpanel":true,"$ref":"#/properties/off""##,
        // In the destination's or `All`'s options too: to jsonref, this entry is `false`.
        r##""All":false,"Mixpanel":{"$ref":"#/integrations/All"}"##,
        r##""All":{"json_class":"X"}"##,
        r##""Mixpanel":{"^o":"FalseClass"}"##,
    ] {
        let body =
            format!(r#"{{"type":"track","context":{granted},"integrations":{{{integrations}}}}}"#);
        let j = run(&routed, &mixpanel, "/v1/track", None, body.as_bytes());
        assert_eq!(j.reason(), Some(Reason::InvalidEvent), "{body}");
    }
    // Options without such a key are options: the destination is on.
    let body = format!(
        r#"{{"type":"track","context":{granted},"integrations":{{"All":false,"Mixpanel":{{"apiKey":"k"}}}}}}"#
    );
    let j = run(&routed, &mixpanel, "/v1/track", None, body.as_bytes());
    assert_eq!(j.action, Action::Forward, "{body}");
    // Where the decision reads nothing, and in values, they are just text.
    let body = r##"{"type":"track","event":"^#1","properties":{"^#1":["a",1],":Ads":false,"$ref":"#/x"},"context":{"consent":{"categoryPreferences":{"Ads":true,"Other":false,":Other":true}}}}"##;
    let j = run(&segment, &ads, "/v1/track", None, body.as_bytes());
    assert_eq!(j.action, Action::Forward, "{body}");
}

#[test]
fn a_key_jsoniter_takes_for_a_field_the_decision_reads_is_invalid() {
    // json-iterator/go matches the fields of a small struct by a hash of each key, and takes
    // the last: after the field itself, a key with its hash (tests/support/jsoniter_keys.json)
    // is a second reading of it, here the one that refuses.
    let keys: serde_json::Value =
        serde_json::from_str(include_str!("support/jsoniter_keys.json")).unwrap();
    let segment = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let ads = policy(&["Ads"], Match::All);
    let granted = r#"{"consent":{"categoryPreferences":{"Ads":true}}}"#;
    let mut checked = 0;
    for mode in ["folded", "exact"] {
        for (name, key) in keys[mode].as_object().unwrap() {
            let key = serde_json::to_string(key).unwrap();
            let managed = |more: &str| {
                format!(
                    r#"{{"type":"track","context":{{"consentManagement":{{"deniedConsentIds":[]{more}}}}}}}"#
                )
            };
            let (config, path, body) = match name.as_str() {
                "context" => (
                    &segment,
                    "/v1/track",
                    format!(
                        r#"{{"type":"track","context":{granted},{key}:{{"consent":{{"categoryPreferences":{{"Ads":false}}}}}}}}"#
                    ),
                ),
                "type" => (
                    &segment,
                    "/v1/track",
                    format!(
                        r#"{{"type":"track","context":{granted},{key}:"identify","traits":{{"email":"e@example.com"}}}}"#
                    ),
                ),
                "event" => (
                    &segment,
                    "/v1/track",
                    format!(
                        r#"{{"type":"track","event":"Order Completed","context":{granted},{key}:"Consent Change"}}"#
                    ),
                ),
                "batch" => (
                    &segment,
                    "/v1/batch",
                    format!(
                        r#"{{"batch":[{{"type":"track","context":{granted}}}],{key}:[{{"type":"track"}}]}}"#
                    ),
                ),
                // Read only on routes that name a destination (tests/consent_sources.rs).
                "integrations" => continue,
                "consent" => (
                    &segment,
                    "/v1/track",
                    format!(
                        r#"{{"type":"track","context":{{"consent":{{"categoryPreferences":{{"Ads":true}}}},{key}:{{"categoryPreferences":{{"Ads":false}}}}}}}}"#
                    ),
                ),
                "categoryPreferences" => (
                    &segment,
                    "/v1/track",
                    format!(
                        r#"{{"type":"track","context":{{"consent":{{"categoryPreferences":{{"Ads":true}},{key}:{{"Ads":false}}}}}}}}"#
                    ),
                ),
                "consentManagement" => (
                    &rudder,
                    "/v1/track",
                    format!(
                        r#"{{"type":"track","context":{{"consentManagement":{{"deniedConsentIds":[]}},{key}:{{"deniedConsentIds":["Ads"]}}}}}}"#
                    ),
                ),
                "deniedConsentIds" => {
                    (&rudder, "/v1/track", managed(&format!(r#",{key}:["Ads"]"#)))
                }
                "allowedConsentIds" => (&rudder, "/v1/track", managed(&format!(r#",{key}:{{}}"#))),
                "provider" => (
                    &rudder,
                    "/v1/track",
                    managed(&format!(r#",{key}:"custom""#)),
                ),
                "resolutionStrategy" => (&rudder, "/v1/track", managed(&format!(r#",{key}:"or""#))),
                other => panic!("no body for {other}"),
            };
            // With another key in its place (none, in a batch's envelope), it is forwarded.
            let plain = match name.as_str() {
                "batch" => body.replace(&format!(r#",{key}:[{{"type":"track"}}]"#), ""),
                _ => body.replace(&format!("{key}:"), r#""x":"#),
            };
            assert_ne!(plain, body);
            assert_eq!(
                run(config, &ads, path, None, plain.as_bytes()).action,
                Action::Forward,
                "{plain}"
            );
            let j = run(config, &ads, path, None, body.as_bytes());
            assert_eq!(
                j.action,
                Action::Reply(Reason::InvalidEvent),
                "{mode} {name}: {body}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 22);
}

#[test]
fn another_spelling_or_a_path_of_a_field_is_invalid() {
    // Key converters and binding layers map other spellings onto a field and keep the last
    // (Django REST's camel-case parser, humps, camelcase-keys; pydantic's populate_by_name with
    // extra fields dumped, marshmallow, Jackson's @JsonAlias), and path getters (lodash's
    // `_.get`, get-value) read a key spelled as the path. Each body here was read so, with its
    // refusal, by such a reader; with the look-alike renamed, it is forwarded.
    let segment = Config::default();
    let allow = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let rudder_allow =
        Config::parse(r#"{"consent_format":"rudderstack","on_missing_consent":"allow"}"#).unwrap();
    let allow_listed = Config::parse(r#"{"always_allow_events":["Consent Change"]}"#).unwrap();
    let ads = policy(&["Advertising"], Match::All);
    let mixpanel = policy(&["Advertising"], Match::All)
        .with_extras("", Some("Mixpanel".into()), None)
        .unwrap();
    let granted = r#""context":{"consent":{"categoryPreferences":{"Advertising":true}}}"#;
    let cases: [(&Config, &RoutePolicy, &str, String, &str); 26] = [
        (&segment, &ads, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true},"category_preferences":{"Advertising":false}}}}"#.into(), "category_preferences"),
        (&segment, &ads, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true},"category-preferences":{"Advertising":false}}}}"#.into(), "category-preferences"),
        (&rudder, &ads, "/v1/track", r#"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[],"denied_consent_ids":["Advertising"]}}}"#.into(), "denied_consent_ids"),
        (&rudder, &ads, "/v1/track", r#"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[]},"consent_management":{"deniedConsentIds":["Advertising"]}}}"#.into(), "consent_management"),
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"context_":{{"consent":{{"categoryPreferences":{{"Advertising":false}}}}}}}}"#), "context_"),
        (&allow_listed, &ads, "/v1/track", r#"{"type":"track","event":"Consent Change","event_":"Order Completed"}"#.into(), "event_"),
        (&allow_listed, &ads, "/v1/track", r#"{"type":"track","event":"Consent Change","type_":"identify","traits":{"email":"a@b.c"}}"#.into(), "type_"),
        (&allow, &ads, "/v1/track", r#"{"type":"track","context":{"consent":{"category_preferences":{"Advertising":false}}}}"#.into(), "category_preferences"),
        (&rudder_allow, &ads, "/v1/track", r#"{"type":"track","context":{"consent_management":{"denied_consent_ids":["Advertising"]}}}"#.into(), "consent_management"),
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"context.consent.categoryPreferences.Advertising":false}}"#), "context.consent.categoryPreferences.Advertising"),
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"context.consent.categoryPreferences":{{"Advertising":false}}}}"#), "context.consent.categoryPreferences"),
        (&rudder, &ads, "/v1/track", r#"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[]}},"context.consentManagement.deniedConsentIds":["Advertising"]}"#.into(), "context.consentManagement.deniedConsentIds"),
        (&segment, &mixpanel, "/v1/track", format!(r#"{{"type":"track",{granted},"integrations":{{"All":true}},"integrations.Mixpanel":false}}"#), "integrations.Mixpanel"),
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"context[consent]":{{"categoryPreferences":{{"Advertising":false}}}}}}"#), "context[consent]"),
        (&allow, &ads, "/v1/track", r#"{"type":"track","context.consent":{"categoryPreferences":{"Advertising":false}}}"#.into(), "context.consent"),
        (&allow, &ads, "/v1/track", r#"{"type":"track","context":{"consent.categoryPreferences":{"Advertising":false}}}"#.into(), "consent.categoryPreferences"),
        (&allow, &ads, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences.Advertising":false}}}"#.into(), "categoryPreferences.Advertising"),
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"$context":{{"consent":{{"categoryPreferences":{{"Advertising":false}}}}}}}}"#), "$context"),
        // Separators beyond ASCII and accented letters (humps, change-case, lodash's camelCase),
        // and lodash's path grammar (`_.set` building the object from each key).
        (&segment, &ads, "/v1/track", r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true},"category\u00a0preferences":{"Advertising":false}}}}"#.into(), r"category\u00a0preferences"),
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"t\u00fdpe":"identify"}}"#), r"t\u00fdpe"),
        (&rudder, &ads, "/v1/track", r#"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[],"denied\u00a0consent\u00a0ids":["Advertising"]}}}"#.into(), r"denied\u00a0consent\u00a0ids"),
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"[context].consent.categoryPreferences.Advertising":false}}"#), "[context].consent.categoryPreferences.Advertising"),
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"context]consent]categoryPreferences.Advertising":false}}"#), "context]consent]categoryPreferences.Advertising"),
        // A NUL inside the name is dropped like any separator.
        (&segment, &ads, "/v1/track", format!(r#"{{"type":"track",{granted},"con\u0000text":{{"consent":{{"categoryPreferences":{{"Advertising":false}}}}}}}}"#), r"con\u0000text"),
        (&allow_listed, &ads, "/v1/track", r#"{"type":"track","event":"Consent Change","t\u0000ype":"identify","traits":{"email":"a@b.c"}}"#.into(), r"t\u0000ype"),
        (&rudder, &ads, "/v1/track", r#"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[],"denied\u0000ConsentIds":["Advertising"]}}}"#.into(), r"denied\u0000ConsentIds"),
    ];
    for (config, policy, path, body, lookalike) in cases {
        let j = run(config, policy, path, None, body.as_bytes());
        assert_eq!(j.action, Action::Reply(Reason::InvalidEvent), "{body}");
        let renamed = body.replace(&format!("\"{lookalike}\""), renamed_key(&body));
        assert_ne!(renamed, body);
        let j = run(config, policy, path, None, renamed.as_bytes());
        assert_eq!(j.action, Action::Forward, "{renamed}");
    }
    // In a batch, the item is dropped.
    let batch = format!(
        r#"{{"batch":[{{"type":"track","messageId":"a",{granted}}},{{"type":"track","messageId":"b",{granted},"context.consent.categoryPreferences.Advertising":false}}]}}"#
    );
    let j = run(&segment, &ads, "/v1/batch", None, batch.as_bytes());
    let Action::Rewrite(out) = &j.action else {
        panic!("{:?}", j.action)
    };
    assert!(!String::from_utf8_lossy(out).contains(r#""messageId":"b""#));
}

/// A track event's consent to Advertising, as a member of the event.
const GRANTED: &str = r#""context":{"consent":{"categoryPreferences":{"Advertising":true}}}"#;
/// A `context` refusing Advertising.
const DENIED_CONTEXT: &str = r#"{"consent":{"categoryPreferences":{"Advertising":false}}}"#;

/// A route for Advertising that names the destination Mixpanel.
fn mixpanel_route() -> RoutePolicy {
    policy(&["Advertising"], Match::All)
        .with_extras("", Some("Mixpanel".into()), None)
        .unwrap()
}

/// The key a look-alike is renamed to: one that is no field's. For an allow-listed event, one
/// of Segment's own (`version`): any other key is one a model may bind `event` to, and the
/// allow list then does not apply.
fn renamed_key(body: &str) -> &'static str {
    match body.contains(r#""event":"Consent Change""#) {
        true => r#""version""#,
        false => r#""extra""#,
    }
}

/// Each body is refused as unreadable (a look-alike of a field), and forwarded once the
/// look-alike key is renamed to one that is no field's.
fn refused_until_renamed(cases: &[(&Config, &RoutePolicy, String, &str)]) {
    for (config, policy, body, lookalike) in cases {
        let j = run(config, policy, "/v1/track", None, body.as_bytes());
        assert_eq!(j.action, Action::Reply(Reason::InvalidEvent), "{body}");
        let renamed = body.replace(&format!("\"{lookalike}\""), renamed_key(body));
        assert_ne!(&renamed, body);
        let j = run(config, policy, "/v1/track", None, renamed.as_bytes());
        assert_eq!(j.action, Action::Forward, "{renamed}");
    }
}

#[test]
fn a_key_a_transliterating_loader_writes_as_a_field_is_invalid() {
    // Loaders that transliterate keys into Latin before naming columns (unidecode,
    // python-slugify, npm's transliteration, NFKD with the marks dropped) write each of these
    // keys as the column of a field the decision reads, and the later value wins: the stored
    // row reads a refusal, another call or the destination off. Renamed to a key that is no
    // field's spelling, each body is forwarded.
    let segment = Config::default();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let allow_listed = Config::parse(r#"{"always_allow_events":["Consent Change"]}"#).unwrap();
    let ads = policy(&["Advertising"], Match::All);
    let mixpanel = mixpanel_route();
    let (granted, denied_context) = (GRANTED, DENIED_CONTEXT);
    let cases: [(&Config, &RoutePolicy, String, &str); 24] = [
        // Fullwidth letters (NFKD, unidecode).
        (&segment, &ads, format!(r#"{{"type":"track",{granted},"ｃｏｎｔｅｘｔ":{denied_context}}}"#), "ｃｏｎｔｅｘｔ"),
        // Cyrillic and Greek look-alikes (unidecode: `о` is `o`, `τ` is `t`).
        (&segment, &ads, format!(r#"{{"type":"track",{granted},"cоntext":{denied_context}}}"#), "cоntext"),
        (&segment, &ads, event(r#"{"Advertising":true,"Аdvertising":false}"#), "Аdvertising"),
        (&segment, &ads, event(r#"{"Аdvertising":false,"Advertising":true}"#), "Аdvertising"),
        (&allow_listed, &ads, r#"{"type":"track","event":"Consent Change","τype":"identify","traits":{"email":"a@b.c"}}"#.into(), "τype"),
        // Latin letters beyond Latin-1 and Latin Extended-A, and a combining mark.
        (&segment, &ads, r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}},"con\u0219ent":{"categoryPreferences":{"Advertising":false}}}}"#.into(), r"con\u0219ent"),
        (&allow_listed, &ads, r#"{"type":"track","event":"Consent Change","t\u1e8fpe":"identify"}"#.into(), r"t\u1e8fpe"),
        (&segment, &ads, event(r#"{"Advertising":true,"Adve\u0301rtising":false}"#), r"Adve\u0301rtising"),
        (&segment, &mixpanel, format!(r#"{{"type":"track",{granted},"integrations":{{"Mixpanel":true,"\u1e3eixpanel":false}}}}"#), r"\u1e3eixpanel"),
        (&segment, &mixpanel, format!(r#"{{"type":"track",{granted},"integrations":{{"Mixpanel":true,"\u01cdll":false}}}}"#), r"\u01cdll"),
        // A character another script spells as letters (unidecode: `セ` is `se`).
        (&segment, &ads, r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}},"conセnt":{"categoryPreferences":{"Advertising":false}}}}"#.into(), "conセnt"),
        // Joined paths, as flatteners and warehouse loaders write them.
        (&segment, &ads, format!(r#"{{"type":"track",{granted},"cоntext_consent_category_preferences_advertising":false}}"#), "cоntext_consent_category_preferences_advertising"),
        (&segment, &mixpanel, format!(r#"{{"type":"track",{granted},"integrations":{{"Mixpanel":true}},"integrations_Ｍixpanel":false}}"#), "integrations_Ｍixpanel"),
        (&rudder, &ads, r#"{"type":"track","context":{"consentManagement":{"deniedConsentIds":[]},"consentManagement_deniedConsentIds_\u0660":"Advertising"}}"#.into(), r"consentManagement_deniedConsentIds_\u0660"),
        // HTML character references (python-slugify decodes them, then drops `&`, `<`, `>`).
        (&allow_listed, &ads, r#"{"type":"track","event":"Consent Change","&#116;ype":"identify"}"#.into(), "&#116;ype"),
        (&allow_listed, &ads, r#"{"type":"track","event":"Consent Change","&lt;type&gt;":"identify"}"#.into(), "&lt;type&gt;"),
        (&segment, &ads, format!(r#"{{"type":"track",{granted},"&#x63;ontext":{denied_context}}}"#), "&#x63;ontext"),
        (&segment, &ads, event(r#"{"Advertising":true,"&#65;dvertising":false}"#), "&#65;dvertising"),
        // Punctuation npm's slugify writes as a word (`|` is `or`, `&` is `and`).
        (&segment, &ads, r#"{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true},"categ|yPreferences":{"Advertising":false}}}}"#.into(), "categ|yPreferences"),
        (&segment, &ads, event(r#"{"Advertising":true,"Advert|ing":false}"#), "Advert|ing"),
        (&segment, &ads, format!(r#"{{"type":"track",{granted},"context_consent_categ|yPreferences_Advertising":false}}"#), "context_consent_categ|yPreferences_Advertising"),
        // Whole keys in other scripts that some loader writes in Latin: Bopomofo (unidecode's
        // `CONTEXT`), Hebrew and Ethiopic (`Type`), squared Latin abbreviations (NFKD's `All`).
        (&segment, &ads, format!(r#"{{"type":"track",{granted},"ㄘㄛㄋㄊㄜㄒㄊ":{denied_context}}}"#), "ㄘㄛㄋㄊㄜㄒㄊ"),
        (&allow_listed, &ads, r#"{"type":"track","event":"Consent Change","טיፕ":"identify"}"#.into(), "טיፕ"),
        (&segment, &mixpanel, format!(r#"{{"type":"track",{granted},"integrations":{{"All":true,"㎂㎕㎕":false}}}}"#), "㎂㎕㎕"),
    ];
    refused_until_renamed(&cases);
    // The same answer under both keys is one reading; keys beyond ASCII elsewhere are data.
    for body in [
        event(r#"{"Advertising":true,"Аdvertising":true}"#),
        format!(r#"{{"type":"track",{granted},"properties":{{"ｃｏｎｔｅｘｔ":1,"広告":false}}}}"#),
        format!(r#"{{"type":"track",{granted},"context2":{{"広告":false}}}}"#),
    ] {
        let j = run(&segment, &ads, "/v1/track", None, body.as_bytes());
        assert_eq!(j.action, Action::Forward, "{body}");
    }
}

#[test]
fn a_key_the_singer_sdk_names_as_a_field_is_invalid() {
    // Meltano's Singer SDK abbreviates a key whose flattened column reaches its length limit
    // (camelize, then every lower-case letter dropped: `Cxxx…ONTEXT` is `context`), and its SQL
    // sinks write a leading digit as a letter (`2ontext` is `context`): the stored row reads
    // the later value. Renamed to a key that is no field's, each body is forwarded.
    let segment = Config::default();
    let allow = Config::parse(r#"{"on_missing_consent":"allow"}"#).unwrap();
    let allow_listed = Config::parse(r#"{"always_allow_events":["Consent Change"]}"#).unwrap();
    let ads = policy(&["Advertising"], Match::All);
    let mixpanel = mixpanel_route();
    let (granted, denied_context) = (GRANTED, DENIED_CONTEXT);
    let padded = |upper: &str| format!("{}{}{}", &upper[..1], "x".repeat(230), &upper[1..]);
    let context = padded("CONTEXT");
    let event_key = padded("EVENT");
    let type_key = padded("TYPE");
    // Characters beyond ASCII in an abbreviated key: Python's `upper` makes `ı` an `I`, and the
    // SQL sinks drop `É`.
    let dotless = format!("\u{131}{}NTEGRATIONS", "x".repeat(250));
    let accented = format!("{context}\u{c9}");
    let cases: [(&Config, &RoutePolicy, String, &str); 8] = [
        (
            &segment,
            &ads,
            format!(r#"{{"type":"track",{granted},"{context}":{denied_context}}}"#),
            &context,
        ),
        (
            &allow_listed,
            &ads,
            format!(
                r#"{{"type":"track","event":"Consent Change",{granted},"{event_key}":"Order Completed"}}"#
            ),
            &event_key,
        ),
        (
            &segment,
            &ads,
            format!(r#"{{"type":"track",{granted},"{type_key}":"identify"}}"#),
            &type_key,
        ),
        (
            &segment,
            &ads,
            format!(r#"{{"type":"track",{granted},"c/o/n/t/e/x/t":{denied_context}}}"#),
            "c/o/n/t/e/x/t",
        ),
        (
            &allow,
            &ads,
            format!(r#"{{"type":"track","2ontext":{denied_context}}}"#),
            "2ontext",
        ),
        (
            &segment,
            &mixpanel,
            format!(r#"{{"type":"track",{granted},"8ntegrations":{{"Mixpanel":false}}}}"#),
            "8ntegrations",
        ),
        (
            &segment,
            &mixpanel,
            format!(r#"{{"type":"track",{granted},"{dotless}":{{"Mixpanel":false}}}}"#),
            &dotless,
        ),
        (
            &segment,
            &ads,
            format!(r#"{{"type":"track",{granted},"{accented}":{denied_context}}}"#),
            &accented,
        ),
    ];
    refused_until_renamed(&cases);
    // Keys whose capitals spell no field, and digits that start no field's name, are data.
    let body = format!(
        r#"{{"type":"track",{granted},"ABTestGroup":"b","deniedConsentIds":[],"USER_ID":"u","3rdParty":true,"2fa":false}}"#
    );
    let j = run(&segment, &ads, "/v1/track", None, body.as_bytes());
    assert_eq!(j.action, Action::Forward, "{body}");
}

#[test]
fn a_nested_key_that_splits_a_field_at_a_word_is_invalid() {
    // RudderStack's warehouse loader joins nested keys with `_` and snake-cases the column:
    // `category` holding `{"preferences": …}` is `categoryPreferences`'s column, and both are
    // written to it in any order. Renamed to a key that is no field's start, each is forwarded.
    let segment = Config::default();
    let rudder = Config::parse(r#"{"consent_format":"rudderstack"}"#).unwrap();
    let ads = policy(&["Advertising"], Match::All);
    let preferences = r#""categoryPreferences":{"Advertising":true}"#;
    let denied = r#""deniedConsentIds":["C0002"]"#;
    let cases: [(&Config, &RoutePolicy, String, &str); 5] = [
        (
            &segment,
            &ads,
            format!(
                r#"{{"type":"track","context":{{"consent":{{{preferences},"category":{{"preferences":{{"Advertising":false}}}}}}}}}}"#
            ),
            "category",
        ),
        (
            &segment,
            &ads,
            format!(
                r#"{{"type":"track","context":{{"consent":{{{preferences}}},"consentCategory":{{"preferences":{{"Advertising":false}}}}}}}}"#
            ),
            "consentCategory",
        ),
        (
            &rudder,
            &ads,
            format!(
                r#"{{"type":"track","context":{{"consentManagement":{{{denied},"denied":{{"consentIds":["Advertising"]}}}}}}}}"#
            ),
            "denied",
        ),
        (
            &rudder,
            &ads,
            format!(
                r#"{{"type":"track","context":{{"consentManagement":{{{denied},"deniedConsent":{{"ids":["Advertising"]}}}}}}}}"#
            ),
            "deniedConsent",
        ),
        (
            &rudder,
            &ads,
            format!(
                r#"{{"type":"track","context":{{"consentManagement":{{{denied}}},"consentManagementDenied":{{"consentIds":["Advertising"]}}}}}}"#
            ),
            "consentManagementDenied",
        ),
    ];
    refused_until_renamed(&cases);
    // The same keys holding no object are data, and so are objects under other names.
    let body = format!(
        r#"{{"type":"track","context":{{"consent":{{{preferences},"category":"ads","version":{{"v":2}}}},"page":{{"path":"/"}},"campaign":{{"name":"x"}}}}}}"#
    );
    let j = run(&segment, &ads, "/v1/track", None, body.as_bytes());
    assert_eq!(j.action, Action::Forward, "{body}");
}

#[test]
fn a_batch_envelope_carries_only_what_batching_clients_send() {
    let config = Config::default();
    let ads = policy(&["Ads"], Match::All);
    let judge_at = |body: String| run(&config, &ads, "/v1/batch", None, body.as_bytes()).action;
    let item = r#"{"type":"track","event":"Buy","context":{"consent":{"categoryPreferences":{"Ads":true}}}}"#;
    let envelope = r#""sentAt":"x","writeKey":"k","context":{},"integrations":{},"metadata":{},"messageId":"m","sequence":1,"timestamp":"t""#;
    assert_eq!(
        judge_at(format!(r#"{{"batch":[{item}],{envelope}}}"#)),
        Action::Forward
    );
    for extra in [
        r#""type":"track""#,
        r#""event":"Buy""#,
        r#""userId":"u""#,
        r#""anonymousId":"a""#,
        r#""properties":{}"#,
        r#""traits":{}"#,
        r#""SentAt":"x""#,
        r#""Batch":[]"#,
        r#""BATCH":[]"#,
        r#""batch":[]"#,
    ] {
        assert_eq!(
            judge_at(format!(r#"{{"batch":[{item}],{extra}}}"#)),
            Action::Reply(Reason::InvalidEvent),
            "{extra}"
        );
    }
    // `Batch` alone: a batch to Go, an event to the others.
    assert_eq!(
        run(
            &config,
            &ads,
            "/collect",
            None,
            format!(r#"{{"Batch":[{item}]}}"#).as_bytes()
        )
        .action,
        Action::Reply(Reason::InvalidEvent)
    );
}

#[test]
fn always_allow_needs_a_track_call_by_body_and_endpoint() {
    let config = Config::default();
    let ads = policy(&["Ads"], Match::All);
    let judge_at = |path: &str, body: &str| run(&config, &ads, path, None, body.as_bytes()).action;
    let typed = r#"{"type":"track","event":"Consent Change"}"#;
    let untyped = r#"{"event":"Consent Change"}"#;
    assert_eq!(judge_at("/v1/track", typed), Action::Forward);
    assert_eq!(judge_at("/v1/track?writeKey=k", typed), Action::Forward);
    assert_eq!(judge_at("/collect", typed), Action::Forward);
    // At an endpoint of another call, the receiver does not read a track.
    assert_eq!(
        judge_at("/v1/merge", typed),
        Action::Reply(Reason::InvalidEvent)
    );
    assert_eq!(
        judge_at("/v1/audiencelist", untyped),
        Action::Reply(Reason::MissingConsent)
    );
    // The body does not say track: judged on its consent.
    assert_eq!(
        judge_at("/v1/track", untyped),
        Action::Reply(Reason::MissingConsent)
    );
    assert_eq!(
        judge_at("/collect", untyped),
        Action::Reply(Reason::MissingConsent)
    );
    let page = r#"{"type":"page","event":"Consent Change"}"#;
    assert_eq!(
        judge_at("/collect", page),
        Action::Reply(Reason::MissingConsent)
    );
    // Batch items: by their own type.
    let batch = format!(r#"{{"batch":[{typed},{untyped}]}}"#);
    let j = run(&config, &ads, "/v1/batch", None, batch.as_bytes());
    assert!(matches!(j.action, Action::Rewrite(_)));
    assert_eq!((j.events, j.dropped), (2, 1));
}

#[test]
fn denial_names_the_categories_not_consented_in_route_order() {
    let config = Config::default();
    let p = policy(&["A", "B", "C"], Match::All);
    let j = run(
        &config,
        &p,
        "/",
        None,
        event(r#"{"C":false,"B":true}"#).as_bytes(),
    );
    let names: Vec<&str> = consent_gate::reply::category_names(&p, j.denied_categories).collect();
    assert_eq!(names, vec!["A", "C"]);
    let reply = consent_gate::reply::body(Reason::FilteredByEndUserConsent, &j, Some(&p));
    let parsed: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(parsed["reason"], "FILTERED_BY_END_USER_CONSENT");
    assert_eq!(parsed["categories"], serde_json::json!(["A", "C"]));
    assert!(
        !reply.contains("u1"),
        "the reply never echoes event content"
    );
}

#[test]
fn body_size_limit_applies_before_and_after_decompression() {
    let config = Config::parse(r#"{"max_body_bytes":1000}"#).unwrap();
    let ads = policy(&["Ads"], Match::All);
    let big = format!(
        r#"{{"pad":"{}","context":{{"consent":{{"categoryPreferences":{{"Ads":true}}}}}}}}"#,
        "x".repeat(1000)
    );
    assert_eq!(
        run(&config, &ads, "/", None, big.as_bytes()).action,
        Action::Reply(Reason::BodyTooLarge)
    );
    let packed = Encoding::Gzip.encode(big.as_bytes().to_vec());
    assert!(packed.len() < 1000);
    assert_eq!(
        run(&config, &ads, "/", Some("gzip"), &packed).action,
        Action::Reply(Reason::BodyTooLarge)
    );
}

#[test]
fn compressed_events_are_judged_on_their_content() {
    let config = Config::default();
    let ads = policy(&["Ads"], Match::All);
    for (enc, header) in [(Encoding::Gzip, "gzip"), (Encoding::Deflate, "deflate")] {
        let yes = enc.encode(event(r#"{"Ads":true}"#).into_bytes());
        let no = enc.encode(event(r#"{"Ads":false}"#).into_bytes());
        assert_eq!(
            run(&config, &ads, "/", Some(header), &yes).action,
            Action::Forward
        );
        assert_eq!(
            run(&config, &ads, "/", Some(header), &no).action,
            Action::Reply(Reason::FilteredByEndUserConsent)
        );
        let truncated = &yes[..yes.len() - 4];
        assert_eq!(
            run(&config, &ads, "/", Some(header), truncated).action,
            Action::Reply(Reason::InvalidEvent)
        );
    }
    let yes = event(r#"{"Ads":true}"#);
    for header in ["br", "zstd", "gzip, gzip", "compress"] {
        assert_eq!(
            run(&config, &ads, "/", Some(header), yes.as_bytes()).action,
            Action::Reply(Reason::UnsupportedContentEncoding),
            "{header}"
        );
    }
}

#[test]
fn nesting_counts_from_the_body_itself() {
    // README row 1: deeper than 512 levels is invalid, counting every object and array around a
    // value, the event's own included, and empty ones.
    let config = Config::default();
    let ads = policy(&["Ads"], Match::All);
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let consent = r#""context":{"consent":{"categoryPreferences":{"Ads":true}}}"#;
    // (levels around the nested value, the body with `V` for it, the path)
    let cases = [
        (
            2,
            format!(r#"{{"type":"track","properties":{{"x":V}},{consent}}}"#),
            "/v1/track",
        ),
        (
            2,
            r#"{"type":"track","context":{"x":V,"consent":{"categoryPreferences":{"Ads":true}}}}"#
                .to_string(),
            "/v1/track",
        ),
        (
            4,
            format!(r#"{{"batch":[{{"type":"track","properties":{{"x":V}},{consent}}}]}}"#),
            "/v1/batch",
        ),
        // A batch item that is not an event is dropped, not the batch refused.
        (
            2,
            format!(r#"{{"batch":[{{"type":"track",{consent}}},V]}}"#),
            "/v1/batch",
        ),
    ];
    let body = |template: &String, v: String| template.replacen('V', &v, 1);
    for (i, (around, template, path)) in cases.iter().enumerate() {
        let fits = 512 - around;
        let j = run(
            &config,
            &ads,
            path,
            None,
            body(template, nested(fits)).as_bytes(),
        );
        let dropped_item = i == 3 && j.dropped == 1 && matches!(j.action, Action::Rewrite(_));
        assert!(
            j.action == Action::Forward || dropped_item,
            "{fits} levels inside {around}, {path}: {:?}",
            j.reason()
        );
        let j = run(
            &config,
            &ads,
            path,
            None,
            body(template, nested(fits + 1)).as_bytes(),
        );
        assert_eq!(
            j.action,
            Action::Reply(Reason::InvalidEvent),
            "{} levels inside {around}, {path}",
            fits + 1
        );
    }
}
