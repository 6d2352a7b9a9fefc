"""The consent decision for single events, against the default plugin configuration `{}`
(on_missing_consent deny, match all, deny_status 403, default always_allow_events).

Routes in envoy/e2e.yaml: /ads → Advertising; / (e.g. /v1/track) → Analytics;
/multi → Advertising + Analytics (match all); /multi-any → the same, match any; /open and
/rule-gated → not gated.

Every row is one HTTP/1.1 POST with Content-Length; an allowed row must reach the upstream
byte-identical with its headers, a denied row must not reach it at all.
"""

import json
from pathlib import Path

import pytest

from harness import clients
from harness.checks import (
    ALLOW,
    INVALID,
    MISSING,
    OMIT,
    assert_outcome,
    denied,
    encode,
    event,
)

HEADERS = {
    "content-type": "application/json",
    "sec-gpc": "1",
    "x-custom-header": "keep me",
    "user-agent": "consent-gate-e2e/1",
}


def row(id, path, body, expect):
    if not isinstance(body, bytes):
        body = encode(body)
    return pytest.param(path, body, expect, id=id)


def run(gate, upstream, path, body, expect):
    resp = clients.http1(gate.port, "POST", path, body, HEADERS)
    assert_outcome(resp, upstream, expect, body, path=path, sent_headers=HEADERS)


# ---- consent per route --------------------------------------------------------------------------

ROUTES = [
    row("ads/consented", "/ads", event({"Advertising": True}), ALLOW),
    row("ads/refused", "/ads", event({"Advertising": False}), denied("Advertising")),
    row("ads/other-category-only", "/ads", event({"Analytics": True}), denied("Advertising")),
    row("ads/extra-categories-ignored", "/ads/v1/track",
        event({"Advertising": True, "Analytics": False, "C0004": False}), ALLOW),
    row("default-route/consented", "/v1/track", event({"Analytics": True}), ALLOW),
    row("default-route/refused", "/v1/track", event({"Analytics": False, "Advertising": True}),
        denied("Analytics")),
    row("multi-all/both", "/multi", event({"Advertising": True, "Analytics": True}), ALLOW),
    row("multi-all/advertising-only", "/multi", event({"Advertising": True, "Analytics": False}),
        denied("Analytics")),
    row("multi-all/analytics-only", "/multi", event({"Analytics": True}), denied("Advertising")),
    row("multi-all/none", "/multi", event({"Functional": True}), denied("Advertising", "Analytics")),
    row("multi-all/denied-listed-in-route-order", "/multi",
        event({"Analytics": False, "Advertising": False}), denied("Advertising", "Analytics")),
    row("multi-any/advertising-only", "/multi-any", event({"Advertising": True, "Analytics": False}),
        ALLOW),
    row("multi-any/analytics-only", "/multi-any", event({"Analytics": True}), ALLOW),
    row("multi-any/none", "/multi-any", event({"Advertising": False, "Analytics": False}),
        denied("Advertising", "Analytics")),
    row("multi-any/empty-preferences", "/multi-any", event({}), denied("Advertising", "Analytics")),
    row("ungated-open/refused-consent-passes", "/open", event({"Advertising": False}), ALLOW),
    row("ungated-open/no-consent-passes", "/open", event(), ALLOW),
    row("ungated-rule-gated-without-rules", "/rule-gated/x", event({"Advertising": False}), ALLOW),
]


@pytest.mark.parametrize("path, body, expect", ROUTES)
def test_consent_per_route(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)


# ---- missing or unreadable consent --------------------------------------------------------------

MISSING_CONSENT = [
    row("no-context", "/ads", event(context=OMIT), MISSING),
    row("context-without-consent", "/ads", event(), MISSING),
    row("empty-context", "/ads", event(context={}), MISSING),
    row("empty-consent", "/ads", event(consent={}), MISSING),
    row("consent-without-preferences", "/ads", event(consent={"version": 2}), MISSING),
    row("empty-preferences-consent-to-nothing", "/ads", event({}), denied("Advertising")),
    row("context-null", "/ads", event(context=None), INVALID),
    row("context-string", "/ads", event(context="eu"), INVALID),
    row("context-array", "/ads", event(context=[]), INVALID),
    row("consent-null", "/ads", event(consent=None), INVALID),
    row("consent-array", "/ads", event(consent=[{"categoryPreferences": {}}]), INVALID),
    row("consent-string", "/ads", event(consent="granted"), INVALID),
    row("preferences-null", "/ads", event(None), INVALID),
    row("preferences-array", "/ads", event(["Advertising"]), INVALID),
    row("preferences-string", "/ads", event("Advertising"), INVALID),
    row("preferences-true", "/ads", event(True), INVALID),
]


@pytest.mark.parametrize("path, body, expect", MISSING_CONSENT)
def test_missing_or_unreadable_consent(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)


# ---- only JSON true consents; keys match exactly, after unescaping ------------------------------

VALUES_AND_KEYS = [
    row("value-string-true", "/ads", event({"Advertising": "true"}), denied("Advertising")),
    row("value-1", "/ads", event({"Advertising": 1}), denied("Advertising")),
    row("value-string-1", "/ads", event({"Advertising": "1"}), denied("Advertising")),
    row("value-null", "/ads", event({"Advertising": None}), denied("Advertising")),
    row("value-object", "/ads", event({"Advertising": {"granted": True}}), denied("Advertising")),
    row("value-array", "/ads", event({"Advertising": [True]}), denied("Advertising")),
    row("value-yes", "/ads", event({"Advertising": "yes"}), denied("Advertising")),
    row("key-lower-case", "/ads", event({"advertising": True}), denied("Advertising")),
    row("key-upper-case", "/ads", event({"ADVERTISING": True}), denied("Advertising")),
    # Another spelling of a required category with another answer is a refusal to some reader:
    # cJSON's cJSON_GetObjectItem (without ASCII case, the first), Go's encoding/json and
    # Jackson into a struct (folded, the last), Facade's obj-case and key converters (letters
    # and digits), goccy/go-json (an escaped prefix as long as the name).
    row("key-other-case-before-exact", "/ads", event({"advertising": False, "Advertising": True}), INVALID),
    row("key-other-case-after-exact", "/ads", event({"Advertising": True, "ADVERTISING": False}), INVALID),
    row("key-folded-after-exact", "/ads", event({"Advertising": True, "adverti\u017fing": False}), INVALID),
    row("key-separator-before-exact", "/ads", event({"Ad-vertising": False, "Advertising": True}), INVALID),
    row("key-accent-after-exact", "/ads", event({"Advertising": True, "Advertising\u00e9": None}), INVALID),
    row("key-goccy-prefix-after-exact", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":true,"\\u0061\\u0064":false}}}}', INVALID),
    row("key-other-case-same-answer", "/ads", event({"Advertising": True, "advertising": True}), ALLOW),
    row("top-level-options-is-facades-context", "/ads",
        encode({"options": {"consent": {"categoryPreferences": {"Advertising": False}}},
                **event({"Advertising": True})}), INVALID),
    row("escaped-prefix-goccy-takes-for-context", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":true}}},"c\\u006f":{"consent":{"categoryPreferences":{"Advertising":false}}}}',
        INVALID),
    row("key-leading-space", "/ads", event({" Advertising": True}), denied("Advertising")),
    row("key-trailing-space", "/ads", event({"Advertising ": True}), denied("Advertising")),
    row("key-display-name", "/ads", event({"Advertising Cookies": True}), denied("Advertising")),
    row("escaped-category-key", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":'
        b'{"categoryPreferences":{"Adv\\u0065rtising":true}}}}', ALLOW),
    row("fully-escaped-category-key", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"\\u0041\\u0064\\u0076\\u0065\\u0072\\u0074\\u0069\\u0073\\u0069\\u006e\\u0067":true}}}}',
        ALLOW),
    row("escaped-category-key-refused", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":'
        b'{"categoryPreferences":{"Adv\\u0065rtising":false}}}}', denied("Advertising")),
    row("escaped-path-keys", "/ads",
        b'{"type":"track","event":"Order Completed","c\\u006fntext":{"cons\\u0065nt":'
        b'{"category\\u0050references":{"Advertising":true}}}}', ALLOW),
    # A reader that stops at NUL takes this key for Advertising: refused as ambiguous.
    row("escaped-key-with-nul-is-ambiguous", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":'
        b'{"categoryPreferences":{"Advertising\\u0000":true}}}}', INVALID),
    row("non-ascii-keys-and-values", "/ads",
        event({"Werbung \u00fc\U0001F36A": False, "Advertising": True}, name="Caf\u00e9 \u2615"),
        ALLOW),
]


@pytest.mark.parametrize("path, body, expect", VALUES_AND_KEYS)
def test_category_values_and_keys(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)


# ---- consent that can be read two ways is rejected ----------------------------------------------

PREFS_TRUE = b'{"consent":{"categoryPreferences":{"Advertising":true}}}'
DUPLICATES = [
    row("two-context", "/ads",
        b'{"type":"track","event":"Order Completed","context":' + PREFS_TRUE + b',"context":' +
        PREFS_TRUE + b"}", INVALID),
    row("two-context-one-escaped", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":false}}},"c\\u006fntext":' + PREFS_TRUE + b"}", INVALID),
    row("two-consent", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":false}},"consent":{"categoryPreferences":{"Advertising":true}}}}', INVALID),
    row("two-categoryPreferences", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":false},"categoryPreferences":{"Advertising":true}}}}', INVALID),
    row("category-twice-false-then-true", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":false,"Advertising":true}}}}', INVALID),
    row("category-twice-true-then-false", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":true,"Advertising":false}}}}', INVALID),
    row("category-twice-both-true", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":true,"Advertising":true}}}}', INVALID),
    row("category-twice-one-escaped", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":false,"Adv\\u0065rtising":true}}}}', INVALID),
    row("second-required-category-twice", "/multi",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"Advertising":true,"Analytics":true,"Analytics":false}}}}', INVALID),
    row("two-type", "/ads",
        b'{"type":"track","type":"identify","event":"Order Completed","context":' + PREFS_TRUE + b"}",
        INVALID),
    row("two-event", "/ads",
        b'{"type":"track","event":"Consent Change","event":"Order Completed","context":' +
        PREFS_TRUE + b"}", INVALID),
    row("two-event-both-always-allowed-no-consent", "/ads",
        b'{"type":"track","event":"Consent Change","event":"Consent Change"}', INVALID),
]


@pytest.mark.parametrize("path, body, expect", DUPLICATES)
def test_duplicate_keys_are_rejected(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)


# json-iterator/go matches a small struct's fields by a 64-bit hash of each key and keeps the last:
# keys with a field's hash (found by lattice reduction, checked with jsoniter 1.1.12; `folded` for
# its default, `exact` for CaseSensitive) after the field itself are a second reading of it.
JSONITER_KEYS = json.loads((Path(__file__).parents[1] / "support" / "jsoniter_keys.json").read_text())


def jsoniter_rows():
    refused = {"consent": {"categoryPreferences": {"Advertising": False}}}
    for mode in ("folded", "exact"):  # the keys of the fields the decision reads ("names" elsewhere)
        keys = JSONITER_KEYS[mode]
        key = {name: json.dumps(k) for name, k in keys.items()}
        granted = encode(event({"Advertising": True}))[:-1]
        yield row(f"{mode}/context", "/ads", granted + b"," + key["context"].encode() + b":" +
                  encode(refused) + b"}", INVALID)
        yield row(f"{mode}/type", "/ads", granted + b"," + key["type"].encode() + b':"identify"}', INVALID)
        yield row(f"{mode}/event", "/ads", granted + b"," + key["event"].encode() + b':"Consent Change"}',
                  INVALID)
        yield row(f"{mode}/consent", "/ads", encode(event(context={
            "consent": {"categoryPreferences": {"Advertising": True}},
            keys["consent"]: refused["consent"]})), INVALID)
        yield row(f"{mode}/categoryPreferences", "/ads", encode(event(consent={
            "categoryPreferences": {"Advertising": True},
            keys["categoryPreferences"]: {"Advertising": False}})), INVALID)
    # The same bodies with an ordinary key in its place are forwarded.
    yield row("control", "/ads", encode(event({"Advertising": True}))[:-1] + b',"extra":"identify"}', ALLOW)


@pytest.mark.parametrize("path, body, expect", list(jsoniter_rows()))
def test_a_key_jsoniter_takes_for_a_field_is_rejected(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)


# Key converters and binding layers take other spellings of a field for it (camelcase-keys,
# humps, Django REST's camel-case parser, pydantic's populate_by_name, Jackson's @JsonAlias), and
# path getters (lodash's `_.get`) a key spelled as the path to it.
GRANTED = encode(event({"Advertising": True}))[:-1]
SPELLINGS = [
    row("category_preferences", "/ads", encode(event(consent={
        "categoryPreferences": {"Advertising": True},
        "category_preferences": {"Advertising": False}})), INVALID),
    row("category-preferences", "/ads", encode(event(consent={
        "categoryPreferences": {"Advertising": True},
        "category-preferences": {"Advertising": False}})), INVALID),
    row("context_", "/ads", GRANTED + b',"context_":' + encode(
        {"consent": {"categoryPreferences": {"Advertising": False}}}) + b"}", INVALID),
    row("type_", "/ads", GRANTED + b',"type_":"identify"}', INVALID),
    row("dotted-path", "/ads", GRANTED + b',"context.consent.categoryPreferences.Advertising":false}',
        INVALID),
    row("dotted-path-in-consent", "/ads", encode(event(consent={
        "categoryPreferences": {"Advertising": True},
        "categoryPreferences.Advertising": False})), INVALID),
    row("no-break-space-separator", "/ads", encode(event(consent={
        "categoryPreferences": {"Advertising": True},
        "category\u00a0preferences": {"Advertising": False}})), INVALID),
    row("accented-letter", "/ads", GRANTED + b',"t\\u00fdpe":"identify"}', INVALID),
    row("lodash-bracket-path", "/ads",
        GRANTED + b',"[context].consent.categoryPreferences.Advertising":false}', INVALID),
    row("nul-inside-the-name", "/ads", GRANTED + b',"con\\u0000text":' + encode(
        {"consent": {"categoryPreferences": {"Advertising": False}}}) + b"}", INVALID),
    row("ordinary-keys-with-separators", "/ads", GRANTED + b',"event_id":"e1","message_id":"m1"}', ALLOW),
]


@pytest.mark.parametrize("path, body, expect", SPELLINGS)
def test_another_spelling_or_a_path_of_a_field_is_rejected(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)



# Ruby's readers. Oj loads in its object mode by default (`Oj.load(body)`, Oj 3.14): a key starting with `^`
# is a directive (`"^#1": [key, value]` sets the entry `key`, after the real one too; `"^o"` first
# turns the object into an instance of a class), and `:name` is a Symbol, which Rails' indifferent
# access merges with `name`. Each row below was forwarded before, and read by Oj as written here.
OJ = [
    row("directive-sets-the-category", "/ads",
        b'{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":'
        b'{"categoryPreferences":{"Advertising":true,"^#1":["Advertising",false]}}}}', INVALID),
    row("escaped-directive", "/ads",
        b'{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":'
        b'{"categoryPreferences":{"Advertising":true,"\\u005e#x":["Advertising",false]}}}}', INVALID),
    row("directive-sets-the-context", "/ads",
        GRANTED + b',"^#1":["context",{"consent":{"categoryPreferences":{"Advertising":false}}}]}',
        INVALID),
    row("directive-sets-the-type", "/ads",
        b'{"type":"track","event":"Consent Change","userId":"u1","^#1":["type","identify"],'
        b'"traits":{"email":"jane@example.com"}}', INVALID),
    row("class-directive-first", "/ads",
        b'{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":'
        b'{"categoryPreferences":{"^o":"String","Advertising":true}}}}', INVALID),
    row("symbol-of-the-category", "/ads",
        b'{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":'
        b'{"categoryPreferences":{"Advertising":true,":Advertising":false}}}}', INVALID),
    row("symbol-with-an-escape", "/ads",
        b'{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":'
        b'{"categoryPreferences":{"Advertising":true,":Adv\\u0065rtising":false}}}}', INVALID),
    # jsonpickle with keys=True (its coming default) reads `json://"Advertising"` as Advertising.
    row("jsonpickle-json-key", "/ads",
        b'{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":'
        b'{"categoryPreferences":{"Advertising":true,"json://\\"Advertising\\"":false}}}}', INVALID),
    row("batch-item-directive", "/ads/v1/batch",
        b'{"batch":[{"type":"track","event":"A","messageId":"m1","context":{"consent":'
        b'{"categoryPreferences":{"Advertising":true,"^#1":["Advertising",false]}}}}]}', INVALID),
    # Ruby's `JSON.load` (additions on by default) makes an object with `json_class` that class.
    row("json-class-makes-the-preferences-a-string", "/ads",
        b'{"type":"track","event":"Order Completed","context":{"consent":{"categoryPreferences":'
        b'{"json_class":"String","raw":[],"Advertising":true}}}}', INVALID),
    row("json-class-on-the-batch-context", "/ads/v1/batch",
        b'{"batch":[{"type":"track","event":"A","messageId":"m1"}],"context":{"json_class":"String",'
        b'"raw":[],"consent":{"categoryPreferences":{"Advertising":true}}}}', INVALID),
    row("directive-where-nothing-is-read", "/ads",
        GRANTED + b',"extra":{"^#1":["price",1],":sku":"x"}}', ALLOW),
]


@pytest.mark.parametrize("path, body, expect", OJ)
def test_a_key_ruby_reads_as_a_directive_or_a_symbol_is_rejected(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)

# ---- the body must be exactly one JSON object ---------------------------------------------------

VALID = encode(event({"Advertising": True}))
INVALID_BODIES = [
    row("not-json", "/ads", b"not json", INVALID),
    row("empty-array", "/ads", b"[]", INVALID),
    row("array-of-events", "/ads", b"[" + VALID + b"]", INVALID),
    row("string", "/ads", b'"track"', INVALID),
    row("number", "/ads", b"42", INVALID),
    row("null", "/ads", b"null", INVALID),
    row("true", "/ads", b"true", INVALID),
    row("whitespace-only", "/ads", b" \n", INVALID),
    row("trailing-garbage", "/ads", VALID + b" x", INVALID),
    row("two-objects", "/ads", VALID + VALID, INVALID),
    row("truncated", "/ads", VALID[:-1], INVALID),
    row("trailing-comma", "/ads", VALID[:-1] + b",}", INVALID),
    row("single-quotes", "/ads", b"{'type':'track'}", INVALID),
    row("nan", "/ads", VALID[:-1] + b',"revenue":NaN}', INVALID),
    row("comment", "/ads", VALID + b" // allowed", INVALID),
    row("invalid-utf8-in-string", "/ads", VALID[:-1] + b',"userId2":"\xff\xfe"}', INVALID),
    row("raw-control-char-in-string", "/ads", VALID[:-1] + b',"note":"a\x01b"}', INVALID),
    row("bad-escape", "/ads", VALID[:-1] + b',"note":"\\x41"}', INVALID),
    row("bad-number", "/ads", VALID[:-1] + b',"n":1e}', INVALID),
    # Go refuses a number too large for a double, Python and Node read infinity: two readings.
    row("number-too-large-for-a-double", "/ads", VALID[:-1] + b',"properties":{"revenue":1e999}}', INVALID),
    row("number-at-the-double-limit-is-fine", "/ads", VALID[:-1] + b',"properties":{"revenue":1.7976931348623157e308}}', ALLOW),
    row("whitespace-around-object-is-fine", "/ads", b" \r\n\t" + VALID + b"\n ", ALLOW),
]


@pytest.mark.parametrize("path, body, expect", INVALID_BODIES)
def test_body_must_be_one_json_object(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)


def test_invalid_json_on_ungated_route_passes_untouched(gate, upstream):
    run(gate, upstream, "/open/collect", b"\xff not json {", ALLOW)


# README row 1: nesting deeper than 512 is invalid, the event's own object counted (the event
# object holds the arrays here: 511 of them make 512 levels).
@pytest.mark.parametrize("depth, expect", [(200, ALLOW), (511, ALLOW), (512, INVALID), (5000, INVALID)])
def test_nesting_is_bounded_at_512_levels(gate, upstream, depth, expect):
    body = encode(event({"Advertising": True}))[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    run(gate, upstream, "/ads", body, expect)


# ---- consent-change events always pass ----------------------------------------------------------

ALWAYS_ALLOW = [
    row("consent-change-without-consent", "/ads", event(name="Consent Change"), ALLOW),
    row("preference-updated-with-refusal", "/ads",
        event({"Advertising": False}, name="Segment Consent Preference Updated"), ALLOW),
    row("typed-on-track-path", "/ads/v1/track", event(name="Consent Change"), ALLOW),
    row("typed-on-short-track-path-with-query", "/ads/v1/t?writeKey=abc", event(name="Consent Change"), ALLOW),
    # A track call by both its body and its endpoint, or it is judged on its consent.
    row("untyped-on-track-path", "/ads/v1/track", event(type=OMIT, name="Consent Change"), MISSING),
    row("untyped-on-track-path-with-query", "/ads/v1/track?writeKey=abc",
        event(type=OMIT, name="Consent Change"), MISSING),
    row("untyped-on-other-path", "/ads/v1/identify", event(type=OMIT, name="Consent Change"), MISSING),
    # The endpoint and the body name different calls: each reader sees another call.
    row("typed-track-on-identify-path", "/ads/v1/identify", event(name="Consent Change"), INVALID),
    row("typed-track-on-short-page-path", "/ads/v1/p", event(name="Consent Change"), INVALID),
    # Routers that take a format suffix off, or fold `ſ` as Go's EqualFold, route these to
    # identify and alias.
    row("typed-track-on-identify-json-path", "/ads/v1/identify.json", event(name="Consent Change"), INVALID),
    row("typed-track-on-folded-alias-path", "/ads/v1/alia%C5%BF", event(name="Consent Change"), INVALID),
    row("typed-on-track-json-path", "/ads/v1/track.json", event(name="Consent Change"), ALLOW),
    row("identify-type-on-track-path", "/ads/v1/track", event(type="identify", name="Consent Change"),
        INVALID),
    # RudderStack's gateway sets `type` from these paths: the body's track is not what it reads.
    row("typed-track-on-merge-path", "/ads/v1/merge", event(name="Consent Change"), INVALID),
    row("typed-track-on-audiencelist-path", "/ads/internal/v1/audiencelist",
        event(name="Consent Change"), INVALID),
    row("untyped-on-merge-path", "/ads/v1/merge", event(type=OMIT, name="Consent Change"), MISSING),
    row("merge-type-consented-on-merge-path", "/ads/v1/merge",
        event({"Advertising": True}, type="merge"), ALLOW),
    # A model that binds `type` and `event` to attributes named otherwise (marshmallow's
    # `data_key`, class-transformer's `@Expose({name})`) takes such a key, after the field, for
    # the attribute: the allow list does not apply, the event's consent decides.
    row("with-an-event-name-key", "/ads", event(name="Consent Change", event_name="Order Completed"), MISSING),
    row("with-an-event-type-key", "/ads", event(name="Consent Change", eventType="identify"), MISSING),
    # (Any key but Segment's own: Customer.io, Braze and GA4 call the event `name`.)
    row("with-a-name-key", "/ads", {**event(name="Consent Change"), "name": "Order Completed"}, MISSING),
    row("with-an-event-name-key-consented", "/ads",
        event({"Advertising": True}, name="Consent Change", EVENT_NAME="Order Completed"), ALLOW),
    row("name-is-case-sensitive", "/ads", event(name="consent change"), MISSING),
    row("name-must-match-exactly", "/ads", event(name="Consent Change "), MISSING),
    row("not-in-default-list", "/ads", event(name="Opt Out Recorded"), MISSING),
    row("still-must-be-valid-preferences", "/ads", event("yes", name="Consent Change"), INVALID),
    row("still-must-be-valid-context", "/ads", event(context=None, name="Consent Change"), INVALID),
]


@pytest.mark.parametrize("path, body, expect", ALWAYS_ALLOW)
def test_always_allow_events(gate, upstream, path, body, expect):
    run(gate, upstream, path, body, expect)
