"""Beyond Segment's categories, through the real Envoy: a route's destination in the event's
`integrations` object, RudderStack's `context.consentManagement` (`consent_format`), and Global
Privacy Control (`Sec-GPC: 1` withdrawing a route's `gpc_denies`).

Routes in envoy/e2e.yaml: /mixpanel → Advertising, destination Mixpanel; /gpc → Advertising and
Analytics (match all), gpc_denies [Advertising]; /ads → Advertising; / → Analytics. The
`rudderstack` and `auto` Envoys run the same routes with `consent_format` set; `sources_rules`
gates everything with one `routes` rule that carries a destination and gpc_denies.

The last test drives a real, unmodified RudderStack client (`rudder-sdk-python`, from PyPI via
tests/requirements.txt) through the `rudderstack` Envoy.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from harness import accesslog, clients, stats
from harness.batches import decompress
from harness.checks import (
    ALLOW,
    INVALID,
    MISSING,
    SETTLE_SECONDS,
    Expect,
    assert_denied,
    assert_outcome,
    denied,
    encode,
    event,
)

JSON = {"content-type": "application/json"}
GPC = {**JSON, "sec-gpc": "1"}
OFF = Expect(403, "FILTERED_BY_INTEGRATIONS")


def seg(ads: bool | None, integrations=None, **fields) -> bytes:
    """A track event with Segment consent to Advertising and Analytics (None: no consent)."""
    if integrations is not None:
        fields["integrations"] = integrations
    if ads is None:
        return encode(event(**fields))
    return encode(event({"Advertising": ads, "Analytics": ads}, **fields))


def rs(consent_management, **fields) -> bytes:
    """A track event with RudderStack consent."""
    return encode(event(context={"library": {"name": "e2e"}, "consentManagement": consent_management},
                        **fields))


def row(id, path, body, expect, headers=JSON):
    return pytest.param(path, body, headers, expect, id=id)


def send(envoy, upstream, path, body, headers, expect):
    resp = clients.http1(envoy.port, "POST", path, body, headers)
    assert_outcome(resp, upstream, expect, body, path=path, sent_headers=headers)
    return resp


# ---- Segment's integrations object, on a route that names its destination ----------------------

INTEGRATIONS = [
    row("no-integrations", "/mixpanel", seg(True), ALLOW),
    row("destination-on", "/mixpanel", seg(True, {"Mixpanel": True}), ALLOW),
    row("destination-off", "/mixpanel", seg(True, {"Mixpanel": False}), OFF),
    row("all-off", "/mixpanel", seg(True, {"All": False}), OFF),
    # Empty options: on to Segment's libraries, off to a receiver that tests the entry's truth
    # (Python's `integrations.get("Mixpanel", True)`, PHP's array).
    row("destination-empty-options", "/mixpanel", seg(True, {"Mixpanel": {}}), INVALID),
    row("all-off-destination-empty-options", "/mixpanel", seg(True, {"All": False, "Mixpanel": {}}), INVALID),
    row("all-empty-options", "/mixpanel", seg(True, {"All": {}}), INVALID),
    row("all-off-destination-on", "/mixpanel", seg(True, {"All": False, "Mixpanel": True}), ALLOW),
    row("all-off-destination-options", "/mixpanel", seg(True, {"All": False, "Mixpanel": {"apiKey": "k"}}),
        ALLOW),
    row("another-destination-off", "/mixpanel", seg(True, {"Amplitude": False}), ALLOW),
    # Segment's Facade finds entries without case or punctuation; rudder-server's are exact.
    row("another-spelling-is-read-two-ways", "/mixpanel", seg(True, {"mixpanel": False, "all": False}),
        INVALID),
    row("mix_panel-is-read-two-ways", "/mixpanel", seg(True, {"Mixpanel": True, "mix_panel": False}),
        INVALID),
    row("proto-is-read-two-ways", "/mixpanel", seg(True, {"__proto__": {"All": False}}), INVALID),
    row("facade-reads-providers", "/mixpanel", seg(True, {"providers": {"Mixpanel": False}}), INVALID),
    row("facade-reads-options", "/mixpanel", seg(True, options={"all": False}), INVALID),
    row("facade-reads-context-all", "/mixpanel",
        encode(event(context={"all": False, "consent": {"categoryPreferences": {"Advertising": True}}})),
        INVALID),
    row("consent-first", "/mixpanel", seg(False, {"Mixpanel": True}), denied("Advertising")),
    row("integrations-never-stand-in-for-consent", "/mixpanel", seg(None, {"Mixpanel": True}), MISSING),
    row("consent-event-still-honours-integrations", "/mixpanel",
        encode(event(name="Consent Change", integrations={"Mixpanel": False})), OFF),
    row("string-false-is-read-two-ways", "/mixpanel", seg(True, {"Mixpanel": "false"}), INVALID),
    row("zero-is-read-two-ways", "/mixpanel", seg(True, {"All": 0}), INVALID),
    row("null-is-read-two-ways", "/mixpanel", seg(True, {"Mixpanel": None}), INVALID),
    row("destination-twice", "/mixpanel",
        seg(True, {"Mixpanel": True}).replace(b'"Mixpanel":true', b'"Mixpanel":false,"Mixpanel":true'), INVALID),
    row("integrations-not-an-object", "/mixpanel", seg(True, ["Mixpanel"]), INVALID),
    # Options that a JSON reference reader replaces by `All`'s `false` (Python's jsonref).
    row("ref-in-the-destinations-options", "/mixpanel",
        seg(True, {"All": False, "Mixpanel": {"$ref": "#/integrations/All"}}), INVALID),
    row("go-reads-Integrations", "/mixpanel",
        seg(True).replace(b'{"type"', b'{"Integrations":{"Mixpanel":false},"type"'), INVALID),
    # Go's and jsoniter's folding into a struct field, dlt's column names, paths (stream-json's
    # `pick`, lodash), Facade's obj-case path on `context`.
    row("go-folds-the-destination", "/mixpanel", seg(True, {"All": True, "M\u0130xpanel": False}), INVALID),
    row("dlt-spells-the-destination", "/mixpanel", seg(True, {"Mixpanel": True, "Mi+panel": False}), INVALID),
    row("the-destination-as-a-path", "/mixpanel", seg(True, {"Mixpanel": True, "Mixpanel.x": False}), INVALID),
    row("facade-reads-providers-all-in-one-key", "/mixpanel",
        encode(event(context={"providers.all": False, "consent": {"categoryPreferences": {"Advertising": True}}})),
        INVALID),
    # Flatteners and warehouse loaders: the same column as the field the filter read.
    row("flattened-integrations-key", "/mixpanel",
        seg(True, {"Mixpanel": True}).replace(b'{"type"', b'{"integrations_Mixpanel":false,"type"'), INVALID),
    # Segment's Facade holds Salesforce off unless the event turns it on, whatever `All` says.
    row("salesforce-is-off-unless-named", "/salesforce", seg(True), OFF),
    row("salesforce-all-on-is-not-enough", "/salesforce", seg(True, {"All": True}), OFF),
    row("salesforce-named-on", "/salesforce", seg(True, {"Salesforce": True}), ALLOW),
    row("salesforce-options", "/salesforce", seg(True, {"All": False, "Salesforce": {"x": 1}}), ALLOW),
    # Routes without a destination do not read `integrations` at all.
    row("no-destination-ignores-it", "/ads", seg(True, {"All": False}), ALLOW),
    row("no-destination-ignores-anything", "/ads", seg(True, "not an object"), ALLOW),
]


@pytest.mark.parametrize("path, body, headers, expect", INTEGRATIONS)
def test_integrations_on_a_route_with_a_destination(gate, upstream, path, body, headers, expect):
    resp = send(gate, upstream, path, body, headers, expect)
    if expect == OFF:
        assert resp.json()["destination"] == path.strip("/").capitalize(), resp


# ---- keys that flatteners, warehouse loaders and path readers read as the consent ------------------

CONSENTED = {"categoryPreferences": {"Advertising": True}}

PATH_READERS = [
    # flat, flatten_json, pandas' json_normalize: an empty key adds nothing to the column's name.
    row("empty-key", "/ads", encode(event(context={"consent": CONSENTED}, **{"": {"context": {"consent": {
        "categoryPreferences": {"Advertising": False}}}}})), INVALID),
    row("punctuation-key", "/ads", encode(event(context={"consent": CONSENTED, " ": {"consent": {}}})), INVALID),
    # Fields joined into one key, as flatteners and RudderStack's snake-casing loader write columns.
    row("joined-fields", "/ads", encode(event(context={"consent": CONSENTED},
                                              context_consent_categoryPreferences_Advertising=False)), INVALID),
    row("snake-cased-column", "/ads", encode(event(context={
        "consent": CONSENTED, "consent_category_preferences_advertising": False})), INVALID),
    # dlt writes `+` as `x`: `conte+t` is its `context` column.
    row("dlt-column", "/ads", encode(event(context={"consent": CONSENTED},
                                           **{"conte+t": {"consent": {"categoryPreferences": {
                                               "Advertising": False}}}})), INVALID),
    # A category as a path (stream-json's `pick`, lodash).
    row("category-as-a-path", "/ads", encode(event(context={"consent": {"categoryPreferences": {
        "Advertising": True, "Advertising.x": False}}})), INVALID),
    # A field split at a word into nested keys: RudderStack's warehouse loader snake-cases both
    # to `context_consent_category_preferences_advertising`, in any order.
    row("field-split-at-a-word", "/ads", encode(event(context={"consent": {
        **CONSENTED, "category": {"preferences": {"Advertising": False}}}})), INVALID),
    row("path-split-at-a-word", "/ads", encode(event(context={
        "consent": CONSENTED, "consentCategory": {"preferences": {"Advertising": False}}})), INVALID),
    row("word-start-holding-no-object", "/ads", encode(event(context={"consent": {
        **CONSENTED, "category": "ads"}})), ALLOW),
    # Keys that join nothing the decision reads are other keys.
    row("other-joined-keys", "/ads", encode(event(context={"consent": CONSENTED, "consent_version": 2},
                                                  event_id="e1")), ALLOW),
]


@pytest.mark.parametrize("path, body, headers, expect", PATH_READERS)
def test_keys_other_readers_take_for_the_consent(gate, upstream, path, body, headers, expect):
    send(gate, upstream, path, body, headers, expect)


# ---- keys that transliterating loaders write as a field ------------------------------------------
# Loaders that transliterate keys into Latin before naming columns (unidecode, python-slugify and
# NFKD with the marks dropped, as Airbyte and Fivetran name columns) write each look-alike as the
# column of the field beside it, and the later value wins: the stored row reads a refusal, another
# call or the destination off. Each row holds the look-alike and the field it is written as.

def column(key: str) -> set[str]:
    """The column names real transliterating loaders give `key`, compared by letters and digits."""
    import unicodedata

    from slugify import slugify
    from text_unidecode import unidecode as text_unidecode
    from unidecode import unidecode

    nfkd = "".join(c for c in unicodedata.normalize("NFKD", key) if not unicodedata.combining(c))
    # npm's slugify writes these ASCII characters as words (its charmap).
    words = {"&": "and", "|": "or", "<": "less", ">": "greater", "$": "dollar", "%": "percent"}
    npm_slugify = "".join(words.get(c, c) for c in unidecode(key))
    names = [unidecode(key), text_unidecode(key), slugify(key, separator="_"), nfkd, npm_slugify]
    return {"".join(c for c in n.lower() if c.isascii() and c.isalnum()) for n in names}


GRANTED = {"consent": CONSENTED}
DENIED = {"consent": {"categoryPreferences": {"Advertising": False}}}

TRANSLITERATED = [
    # (id, path, look-alike, the field it is written as, the body with the look-alike as `{key}`)
    ("fullwidth-context", "/ads", "ｃｏｎｔｅｘｔ", "context",
     lambda k: event(context=GRANTED, **{k: DENIED})),
    ("cyrillic-o-in-context", "/ads", "cоntext", "context", lambda k: event(context=GRANTED, **{k: DENIED})),
    ("cyrillic-a-in-a-category", "/ads", "Аdvertising", "Advertising",
     lambda k: event(context={"consent": {"categoryPreferences": {"Advertising": True, k: False}}})),
    ("greek-tau-in-type", "/ads", "τype", "type", lambda k: event(context=GRANTED, **{k: "identify"})),
    ("latin-extended-b-in-consent", "/ads", "con\u0219ent", "consent",
     lambda k: event(context={**GRANTED, k: DENIED["consent"]})),
    ("combining-mark-in-a-category", "/ads", "Adve\u0301rtising", "Advertising",
     lambda k: event(context={"consent": {"categoryPreferences": {"Advertising": True, k: False}}})),
    ("katakana-in-consent", "/ads", "conセnt", "consent", lambda k: event(context={**GRANTED, k: DENIED["consent"]})),
    ("latin-extended-additional-destination", "/mixpanel", "\u1e3eixpanel", "Mixpanel",
     lambda k: event({"Advertising": True, "Analytics": True}, integrations={"Mixpanel": True, k: False})),
    ("latin-extended-b-all", "/mixpanel", "\u01cdll", "All",
     lambda k: event({"Advertising": True, "Analytics": True}, integrations={"Mixpanel": True, k: False})),
    # python-slugify decodes HTML character references; npm's slugify writes `|` as `or`.
    ("character-reference-in-context", "/ads", "&#99;ontext", "context",
     lambda k: event(context=GRANTED, **{k: DENIED})),
    ("a-word-for-a-bar-in-a-field", "/ads", "categ|yPreferences", "categoryPreferences",
     lambda k: event(context={"consent": {"categoryPreferences": {"Advertising": True}, k: {"Advertising": False}}})),
    # Whole keys in other scripts: Bopomofo (unidecode's CONTEXT), squared abbreviations (NFKD's All).
    ("bopomofo-context", "/ads", "ㄘㄛㄋㄊㄜㄒㄊ", "context", lambda k: event(context=GRANTED, **{k: DENIED})),
    ("squared-all", "/mixpanel", "㎂㎕㎕", "All",
     lambda k: event({"Advertising": True, "Analytics": True}, integrations={"All": True, k: False})),
    ("joined-path-with-a-cyrillic-o", "/ads", "cоntext_consent_category_preferences_advertising",
     "context_consent_categoryPreferences_Advertising", lambda k: event(context=GRANTED, **{k: False})),
]


@pytest.mark.parametrize("path, key, field, build", [pytest.param(*r[1:], id=r[0]) for r in TRANSLITERATED])
def test_keys_transliterating_loaders_write_as_a_field(gate, upstream, path, key, field, build):
    key = json.loads(f'"{key}"')  # escapes written as escapes above, for legibility
    assert key != field and column(field) & column(key), (key, column(key))
    send(gate, upstream, path, encode(build(key)), JSON, INVALID)
    upstream.reset()
    send(gate, upstream, path, encode(build("extra")), JSON, ALLOW)


def singer_column(key: str) -> str:
    """The Singer SDK's column for a top-level key whose flattened name reaches its length limit
    (`singer_sdk.helpers._flattening.flatten_key`: camelize, drop lower-case letters, lower), then
    its SQL sinks' leading digit as a letter (`SQLSink.conform_name`'s `replace_leading_digit`)."""
    import re

    import inflection

    abbreviated = re.sub(r"[a-z]", "", inflection.camelize(key)).lower()
    key = abbreviated if len(abbreviated) > 1 else key
    if key[:1].isdigit():
        key = "abcdefghij"[int(key[0])] + key[1:]
    return key


SINGER = [
    # (id, path, look-alike, the field it is written as, the body with the look-alike as `{key}`)
    ("abbreviated-context", "/ads", "C" + "x" * 230 + "ONTEXT", "context",
     lambda k: event(context=GRANTED, **{k: DENIED})),
    ("abbreviated-type", "/ads", "T" + "x" * 260 + "YPE", "type",
     lambda k: event(context=GRANTED, **{k: "identify"})),
    ("leading-digit-integrations", "/mixpanel", "8ntegrations", "integrations",
     lambda k: event({"Advertising": True, "Analytics": True}, **{k: {"Mixpanel": False}})),
]


@pytest.mark.parametrize("path, key, field, build", [pytest.param(*r[1:], id=r[0]) for r in SINGER])
def test_keys_the_singer_sdk_writes_as_a_field(gate, upstream, path, key, field, build):
    assert singer_column(key) == field.lower(), singer_column(key)
    send(gate, upstream, path, encode(build(key)), JSON, INVALID)
    upstream.reset()
    send(gate, upstream, path, encode(build("extra")), JSON, ALLOW)


def test_keys_in_scripts_far_from_latin_and_the_same_answer_are_forwarded(gate, upstream):
    for body in [
        # The same answer under both keys is one reading.
        event(context={"consent": {"categoryPreferences": {"Advertising": True, "Аdvertising": True}}}),
        # Keys written wholly in another script are names in it; look-alikes elsewhere are data.
        event(context={**GRANTED, "ページ": {"広告": False}}, **{"広告": 1}),
        event(context=GRANTED, properties={"ｃｏｎｔｅｘｔ": DENIED, "τype": "identify"}),
    ]:
        upstream.reset()
        send(gate, upstream, "/ads", encode(body), JSON, ALLOW)


def batch(items: list[bytes], **top) -> bytes:
    tail = b"".join(b"," + json.dumps(k).encode() + b":" + encode(v) for k, v in top.items())
    return b'{"batch":[' + b",".join(items) + b"]" + tail + b"}"


def test_a_batch_is_filtered_by_integrations_item_by_item_and_counted(gate, upstream):
    def item(mid, integrations=None):
        return seg(True, integrations, messageId=mid)

    body = batch([item("i-1"), item("i-2", {"Mixpanel": True}), item("i-3", {"Mixpanel": False}),
                  item("i-4", {"All": True})], integrations={"All": False})
    before = stats.counters(gate)
    rid = accesslog.new_id("integrations")
    resp = clients.http1(gate.port, "POST", "/mixpanel/v1/batch", body, accesslog.tag(JSON, rid))
    assert resp.status == 200 and resp.header("x-consent-gate-dropped") == "2", resp
    (req,) = upstream.wait_for_requests(1)
    # i-1 takes the batch's All: false; i-3 turns Mixpanel off. i-4's own All: true wins over the
    # batch's, read merged or whole.
    assert [i["messageId"] for i in json.loads(req.body)["batch"]] == ["i-2", "i-4"]
    after = stats.counters(gate)
    key = "consent_gate.events_dropped.FILTERED_BY_INTEGRATIONS"
    assert after[key] == before[key] + 2
    entry = accesslog.wait_for(gate, rid)
    assert entry.decision == "filter"
    assert entry.fields["reason"] == "FILTERED_BY_INTEGRATIONS"
    assert entry.fields["destination"] == "Mixpanel"

    # Every item off: the batch is refused, and says why.
    upstream.reset()
    resp = clients.http1(gate.port, "POST", "/mixpanel/v1/batch",
                         batch([item("j-1"), item("j-2")], integrations={"Mixpanel": False}), JSON)
    body = assert_denied(resp, upstream, 403, "FILTERED_BY_INTEGRATIONS")
    assert body["destination"] == "Mixpanel" and body["dropped"] == 2, body


# ---- RudderStack's consentManagement --------------------------------------------------------------

DENIED_3 = ["foo-1", "foo-2", "foo-3"]

RUDDERSTACK = [
    row("not-denied", "/ads", rs({"provider": "oneTrust", "resolutionStrategy": "and",
                                  "allowedConsentIds": ["Advertising"], "deniedConsentIds": ["C0004"]}), ALLOW),
    row("denied", "/ads", rs({"provider": "oneTrust", "resolutionStrategy": "and",
                              "allowedConsentIds": [], "deniedConsentIds": ["Advertising"]}), denied("Advertising")),
    # rudder-server's allow-list release: an allowed list that lists IDs decides alone; earlier
    # releases read the denied IDs alone. An event must pass both.
    row("an-allowed-list-without-the-id", "/ads", rs({"allowedConsentIds": ["C0001"], "deniedConsentIds": []}),
        denied("Advertising")),
    row("an-allowed-list-without-the-id-nothing-denied", "/ads",
        rs({"allowedConsentIds": ["C0001"], "deniedConsentIds": ["C0002"]}), denied("Advertising")),
    row("an-id-in-neither-list-is-not-denied", "/ads", rs({"allowedConsentIds": [], "deniedConsentIds": ["C0002"]}),
        ALLOW),
    # rudder-server trims white space of any script around an ID.
    row("a-denied-id-with-unicode-white-space", "/ads", rs({"deniedConsentIds": ["Advertising\u00a0"]}),
        denied("Advertising")),
    # flatten_json writes a list's items as `deniedConsentIds_0`.
    row("a-denied-id-as-a-flattened-item", "/ads", rs({"deniedConsentIds": [], "deniedConsentIds_0": "Advertising"}),
        INVALID),
    # rudder-server compares IDs and `provider` exactly; a Java receiver that binds them to an
    # enum takes other spellings for a constant (Gson its name, Jackson's case-insensitive enums
    # any case) and digits for the constant at that place (Jackson): the stricter reading counts.
    row("an-id-in-another-case-denies-too", "/ads", rs({"deniedConsentIds": ["advertising"]}),
        denied("Advertising")),
    row("an-id-as-a-constant-name-denies-too", "/ads", rs({"deniedConsentIds": ["ADVERTISING"]}),
        denied("Advertising")),
    row("an-id-of-digits", "/ads", rs({"deniedConsentIds": ["0"]}), INVALID),
    # Jackson trims what is not above U+0020 first, and takes decimal digits of any script.
    row("an-id-of-digits-trimmed", "/ads", rs({"deniedConsentIds": ["\t7"]}), INVALID),
    row("an-id-of-other-digits", "/ads", rs({"deniedConsentIds": ["0\u0660"]}), INVALID),
    row("provider-of-digits-trimmed", "/multi", rs({"provider": " 3", "resolutionStrategy": "or",
                                                    "deniedConsentIds": ["Analytics"]}), INVALID),
    # IDs in other scripts are other IDs.
    row("an-id-in-another-script", "/ads", rs({"deniedConsentIds": ["Реклама", "広告Cookie"]}), ALLOW),
    row("another-id", "/ads", rs({"deniedConsentIds": ["Advertising2", "C0004"]}), ALLOW),
    row("provider-custom-as-a-constant-name", "/multi", rs({"provider": "CUSTOM", "resolutionStrategy": "or",
                                                            "deniedConsentIds": ["Analytics"]}), INVALID),
    row("provider-of-digits", "/multi", rs({"provider": "3", "resolutionStrategy": "or",
                                            "deniedConsentIds": ["Analytics"]}), INVALID),
    row("provider-one-trust-as-a-constant-name", "/multi", rs({"provider": "ONE_TRUST", "resolutionStrategy": "or",
                                                               "deniedConsentIds": ["Analytics"]}), denied("Analytics")),
    row("and-one-of-two-denied", "/multi", rs({"provider": "ketch", "resolutionStrategy": "and",
                                               "deniedConsentIds": ["Analytics"]}), denied("Analytics")),
    row("or-one-of-two-denied", "/multi", rs({"provider": "ketch", "resolutionStrategy": "or",
                                              "deniedConsentIds": ["Analytics"]}), ALLOW),
    row("or-both-denied", "/multi", rs({"provider": "ketch", "resolutionStrategy": "or",
                                        "deniedConsentIds": ["Analytics", "Advertising"]}),
        denied("Advertising", "Analytics")),
    # rudder-server reads the event's strategy only for a provider other than none, "" or
    # oneTrust; the older OneTrust setting drops an event that denies any of its IDs.
    row("or-without-provider-is-and", "/multi", rs({"resolutionStrategy": "or", "deniedConsentIds": ["Advertising"]}),
        denied("Advertising")),
    row("or-from-onetrust-is-and", "/multi", rs({"provider": "oneTrust", "resolutionStrategy": "or",
                                                 "deniedConsentIds": ["Advertising"]}), denied("Advertising")),
    # Segment's consent events pass regardless of consent; rudder-server exempts none.
    row("consent-change-is-not-exempt", "/ads", rs({"provider": "oneTrust", "resolutionStrategy": "and",
                                                    "deniedConsentIds": ["Advertising"]}, name="Consent Change"),
        denied("Advertising")),
    row("custom-takes-the-route-match-any", "/multi-any",
        rs({"provider": "custom", "resolutionStrategy": "and", "deniedConsentIds": ["Analytics"]}), ALLOW),
    row("custom-takes-the-route-match-all", "/multi",
        rs({"provider": "custom", "resolutionStrategy": "or", "deniedConsentIds": ["Analytics"]}),
        denied("Analytics")),
    row("allowed-ids-as-an-object", "/ads",
        rs({"allowedConsentIds": {"Advertising": "Marketing"}, "deniedConsentIds": []}), ALLOW),
    row("allowed-ids-as-an-object-without-the-id", "/ads",
        rs({"allowedConsentIds": {"C0001": "Necessary"}, "deniedConsentIds": []}), denied("Advertising")),
    row("no-consent-management", "/ads", encode(event()), MISSING),
    row("no-deny-list-but-allowed", "/ads", rs({"provider": "custom", "allowedConsentIds": ["Advertising"]}), ALLOW),
    row("no-deny-list", "/ads", rs({"provider": "custom", "allowedConsentIds": []}), MISSING),
    row("segment-shape-is-not-read", "/ads", encode(event({"Advertising": True})), MISSING),
    row("deny-list-not-a-list", "/ads", rs({"deniedConsentIds": "Advertising"}), INVALID),
    row("number-in-deny-list", "/ads", rs({"deniedConsentIds": ["C0004", 7]}), INVALID),
    row("provider-not-a-string", "/ads", rs({"provider": 1, "deniedConsentIds": []}), INVALID),
    row("go-reads-DeniedConsentIDs", "/ads",
        rs({"DeniedConsentIDs": ["Advertising"], "deniedConsentIds": []}), INVALID),
    # jsoniter (strings.ToLower), Java's equalsIgnoreCase and .NET fold İ and ı onto i.
    row("jsoniter-reads-deniedConsent-dotted-I-ds", "/ads",
        rs({"deniedConsent\u0130ds": ["Advertising"], "deniedConsentIds": []}), INVALID),
    row("java-reads-den-dotless-i-edConsentIds", "/ads",
        rs({"den\u0131edConsentIds": ["Advertising"], "deniedConsentIds": []}), INVALID),
    row("id-with-nul", "/ads", rs({"deniedConsentIds": ["Advertising\u0000x"]}), INVALID),
    # Salesforce is off unless named to Segment's Facade only: rudder-server has no such default.
    row("salesforce-in-rudderstacks-shape", "/salesforce", rs({"deniedConsentIds": []}, integrations={"All": True}),
        ALLOW),
]


@pytest.mark.parametrize("path, body, headers, expect", RUDDERSTACK)
def test_rudderstack_consent(envoys, upstream, path, body, headers, expect):
    send(envoys.get("rudderstack"), upstream, path, body, headers, expect)


# iubenda's purposes are the numbers 1 to 5: PHP's `in_array` (loose) reads "05", "5.0" or " 5" as
# "5", Perl's `==` "5abc" as 5. Route /iub requires purpose 5 (plugin config "iubenda").
@pytest.mark.parametrize("id, expect", [("5", "denied"), ("05", "denied"), ("5.0", "denied"), (" 5", "denied"),
                                        ("5e0", "denied"), ("5abc", "denied"), ("0.5e0000001", "denied"),
                                        ("4.99999999999999999", "denied"), ("3", ALLOW), ("50", ALLOW),
                                        ("C0004", ALLOW),
                                        # Other forms of numbers: Jackson binds "04" to place 4,
                                        # JavaScript's `==` reads "0x5" as 5.
                                        ("04", INVALID), ("0x5", INVALID),
                                        # rudder-server trims white space of any script.
                                        ("\u00a05", "denied"),
                                        # Java's Integer.decode reads "#05" as 5, Perl's oct "x5".
                                        ("#05", INVALID), ("x5", INVALID)])
def test_a_numeric_id_a_loose_comparison_reads_as_the_routes(envoys, upstream, id, expect):
    body = rs({"provider": "iubenda", "deniedConsentIds": [id]})
    send(envoys.get("iubenda"), upstream, "/iub/v1/track", body, JSON, denied("5") if expect == "denied" else expect)


def test_iubendas_consented_purposes_pass(envoys, upstream):
    """The RudderStack JS SDK's iubenda plugin lists the purposes consented to, digits, in
    `allowedConsentIds`, which decides nothing."""
    body = rs({"provider": "iubenda", "allowedConsentIds": ["1", "2", "3", "4", "5"], "deniedConsentIds": []})
    send(envoys.get("iubenda"), upstream, "/iub/v1/track", body, JSON, ALLOW)


def test_a_batch_level_consent_management_denial_reaches_items(envoys, upstream):
    """rudder-server's gateway drops a batch's context, Jitsu merges it into each item (the
    item's own keys winning), lodash's `merge` all the way down (lists element by element, so an
    item's empty list keeps the batch's IDs): an item kept must be allowed by every reading."""
    envoy = envoys.get("rudderstack")
    own = encode(event(messageId="own", context={"consentManagement": {"deniedConsentIds": []}}))
    bare = encode(event(messageId="bare"))
    body = batch([own, bare], context={"consentManagement": {"deniedConsentIds": ["Advertising"]}})
    resp = clients.http1(envoy.port, "POST", "/ads/v1/batch", body, JSON)
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT")
    # A batch-level list that denies nothing the route needs: the item with its own consent
    # passes, the one without is missing consent to the gateway.
    body = batch([own, bare], context={"consentManagement": {"deniedConsentIds": ["Analytics"]}})
    resp = clients.http1(envoy.port, "POST", "/ads/v1/batch", body, JSON)
    assert resp.status == 200 and resp.header("x-consent-gate-dropped") == "1", resp
    (req,) = upstream.wait_for_requests(1)
    assert [i["messageId"] for i in json.loads(req.body)["batch"]] == ["own"]
    # Under `auto`, the merge gives an item with Segment's shape the batch's other one: both.
    upstream.reset()
    seg_item = encode(event({"Advertising": True}, messageId="seg"))
    body = batch([seg_item], context={"consentManagement": {"deniedConsentIds": []}})
    resp = clients.http1(envoys.get("auto").port, "POST", "/ads/v1/batch", body, JSON)
    assert_denied(resp, upstream, 400, "INVALID_EVENT")



def test_a_batch_items_empty_consent_takes_the_batchs_preferences_when_merged_deeply(envoys, upstream):
    """`consent: {}` states no preferences, so `on_missing_consent: allow` lets an item with it
    pass; but a receiver that merges the batch's context into the item all the way down
    (lodash's `merge`) reads the batch's preferences there, and they refuse."""
    envoy = envoys.get("missing_allow")
    empty = encode(event(messageId="empty", context={"consent": {}}))
    refusing = batch([empty], context={"consent": {"categoryPreferences": {"Advertising": False}}})
    resp = clients.http1(envoy.port, "POST", "/ads/v1/batch", refusing, JSON)
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT")
    consenting = batch([empty], context={"consent": {"categoryPreferences": {"Advertising": True}}})
    resp = clients.http1(envoy.port, "POST", "/ads/v1/batch", consenting, JSON)
    assert resp.status == 200 and resp.header("x-consent-gate-dropped") is None, resp
    (req,) = upstream.wait_for_requests(1)
    assert req.body == consenting

BOTH = encode(event({"Advertising": True}, context={
    "consent": {"categoryPreferences": {"Advertising": True}},
    "consentManagement": {"deniedConsentIds": []}}))

AUTO = [
    row("segment-shape", "/ads", encode(event({"Advertising": True})), ALLOW),
    row("segment-shape-refused", "/ads", encode(event({"Advertising": False})), denied("Advertising")),
    row("rudderstack-shape", "/ads", rs({"deniedConsentIds": []}), ALLOW),
    row("rudderstack-shape-refused", "/ads", rs({"deniedConsentIds": ["Advertising"]}), denied("Advertising")),
    row("neither", "/ads", encode(event()), MISSING),
    row("both-is-ambiguous", "/ads", BOTH, INVALID),
]


@pytest.mark.parametrize("path, body, headers, expect", AUTO)
def test_auto_reads_either_shape_and_refuses_both(envoys, upstream, path, body, headers, expect):
    send(envoys.get("auto"), upstream, path, body, headers, expect)


def both_shapes(advertising: bool, denied: list[str]) -> bytes:
    return encode(event(context={"consent": {"categoryPreferences": {"Advertising": advertising}},
                                 "consentManagement": {"deniedConsentIds": denied}}))


# Under a single format, the other shape's own decision must let the event go too: rudder-server
# takes Segment's endpoints and reads only consentManagement.
SINGLE_FORMAT_OTHER_SHAPE = [
    ("default", both_shapes(True, []), ALLOW),
    ("default", both_shapes(True, ["Advertising"]), INVALID),
    ("rudderstack", both_shapes(True, []), ALLOW),
    ("rudderstack", both_shapes(False, []), INVALID),
    # A key some reader takes for the other shape's is a second reading of it: Go's
    # encoding/json reads the first two into rudder-server's consentManagement, a snake-casing
    # loader the third into its column.
    *[("default", both_shapes(True, ["Advertising"]).replace(b'"consentManagement"', key), INVALID)
      for key in (b'"ConsentManagement"', b'"con\\u017fentManagement"', b'"consent_management"')],
    ("rudderstack", both_shapes(False, []).replace(b'"consent"', b'"Consent"'), INVALID),
]


# `consent` + `management…` is `consentManagement…` to a flattener that snake-cases its columns
# (flatten_json, then inflection's `underscore`), and `resolution` holding `{"strategy": …}` is
# `resolutionStrategy`: each wrote the other shape's field, or the format's own, beside the one
# the filter read. On /multi (Advertising and Analytics): with Ketch's `or`, denying one of them
# lets the event go, with `and` it does not.
BOTH_TRUE = {"Advertising": True, "Analytics": True}
KETCH_OR = {"deniedConsentIds": ["Advertising"], "provider": "ketch", "resolutionStrategy": "or"}
PATHS_THROUGH_NEIGHBOURS = [
    ("default", event(context={"consent": {"categoryPreferences": BOTH_TRUE,
                                           "management": {"deniedConsentIds": ["Advertising", "Analytics"]}}})),
    ("default", event(context={"consent": {"categoryPreferences": BOTH_TRUE,
                                           "management_denied_consent_ids": ["Advertising", "Analytics"]}})),
    ("default", event(context={"consentManagement": KETCH_OR,
                               "consent": {"categoryPreferences": BOTH_TRUE,
                                           "management": {"resolutionStrategy": "and"}}})),
    ("rudderstack", event(context={"consentManagement": KETCH_OR,
                                   "consent": {"management": {"resolutionStrategy": "and"}}})),
    ("auto", event(context={"consent": {"categoryPreferences": BOTH_TRUE,
                                        "management": {"deniedConsentIds": ["Advertising", "Analytics"]}}})),
    ("rudderstack", event(context={"consentManagement": {**KETCH_OR, "resolution": {"strategy": "and"}}})),
    ("default", event(context={"consent": {"categoryPreferences": BOTH_TRUE},
                               "consentManagement": {**KETCH_OR, "resolution": {"strategy": "and"}}})),
    ("default", {"batch": [event(BOTH_TRUE)],
                 "context": {"consent": {"categoryPreferences": BOTH_TRUE,
                                         "management": {"deniedConsentIds": ["Advertising", "Analytics"]}}}}),
]


# To the same loader, a key ending where a word of a category's name ends, holding the rest, is
# that category's column: `ad` holding `{"storage": false}` is `ad_storage`, `Ads` holding
# `{"Personalization": false}` `ads_personalization`.
GCM_TRUE = {"ad_storage": True, "ad_user_data": True}
CATEGORY_SPLITS = [
    ("/gcm", event(context={"consent": {"categoryPreferences": {**GCM_TRUE, "ad": {"storage": False}}}})),
    ("/gcm", event(context={"consent": {"categoryPreferences": {**GCM_TRUE, "ad_user": {"data": False}}}})),
    ("/gcm", event(context={"consent": {"categoryPreferences": GCM_TRUE,
                                        "categoryPreferences_ad": {"storage": False}}})),
    ("/gcm", event(context={"consent": {"categoryPreferences": GCM_TRUE},
                            "consentCategoryPreferencesAd": {"storage": False}})),
    ("/ads-personalization", event(context={"consent": {"categoryPreferences": {
        "AdsPersonalization": True, "Ads": {"Personalization": False}}}})),
    ("/gcm", {"batch": [event(GCM_TRUE)],
              "context": {"consent": {"categoryPreferences": {**GCM_TRUE, "ad": {"storage": False}}}}}),
]


@pytest.mark.parametrize("prefix, body", CATEGORY_SPLITS)
def test_a_key_holding_the_rest_of_a_categorys_name_is_refused(envoys, upstream, prefix, body):
    path = prefix + ("/v1/batch" if "batch" in body else "/v1/track")
    send(envoys.get("category_words"), upstream, path, encode(body), JSON, INVALID)


def test_categories_with_words_apart_pass(envoys, upstream):
    send(envoys.get("category_words"), upstream, "/gcm/v1/track", encode(event(GCM_TRUE)), JSON, ALLOW)


# json-iterator/go decodes a struct of up to ten fields by a hash of each key, never its text, and
# takes the last: to a struct of the categories or of `integrations` entries, a key with a name's
# hash (tests/support/jsoniter_keys.json, "names"; read so by json-iterator/go 1.1.12) is that name.
JSONITER_NAMES = json.loads((Path(__file__).parents[1] / "support" / "jsoniter_keys.json").read_text())["names"]


def jsoniter_name_rows():
    folded, exact = JSONITER_NAMES["folded"], JSONITER_NAMES["exact"]
    gcm = ("category_words", "/gcm/v1/track")
    yield pytest.param(*gcm, event(context={"consent": {"categoryPreferences": {
        **GCM_TRUE, folded["ad_storage"]: False}}}), id="folded/ad_storage")
    yield pytest.param(*gcm, event(context={"consent": {"categoryPreferences": {
        **GCM_TRUE, folded["ad_user_data"]: False}}}), id="folded/ad_user_data")
    yield pytest.param("default", "/ads/v1/track", event(context={"consent": {"categoryPreferences": {
        "Advertising": True, exact["Advertising"]: False}}}), id="exact/Advertising")
    yield pytest.param("default", "/ads/v1/batch", {"batch": [event(context={"consent": {"categoryPreferences": {
        "Advertising": True, exact["Advertising"]: False}}})]}, id="exact/Advertising-in-a-batch")
    for mode, keys in (("folded", folded), ("exact", exact)):
        yield pytest.param("default", "/mixpanel/v1/track", event(
            {"Advertising": True, "Analytics": True}, integrations={"Mixpanel": True, keys["Mixpanel"]: False}),
            id=f"{mode}/Mixpanel")
        yield pytest.param("default", "/mixpanel/v1/track", event(
            {"Advertising": True, "Analytics": True}, integrations={keys["All"]: False}), id=f"{mode}/All")


@pytest.mark.parametrize("config, path, body", list(jsoniter_name_rows()))
def test_a_key_with_a_category_or_entry_names_jsoniter_hash_is_refused(envoys, upstream, config, path, body):
    send(envoys.get(config), upstream, path, encode(body), JSON, INVALID)


@pytest.mark.parametrize("config, body", PATHS_THROUGH_NEIGHBOURS)
def test_paths_to_consent_managements_fields_from_its_neighbours_are_refused(envoys, upstream, config, body):
    path = "/multi/v1/batch" if "batch" in body else "/multi/v1/track"
    send(envoys.get(config), upstream, path, encode(body), JSON, INVALID)


@pytest.mark.parametrize("config, body, expect", SINGLE_FORMAT_OTHER_SHAPE)
def test_a_single_format_refuses_what_the_other_shape_refuses(envoys, upstream, config, body, expect):
    envoy = envoys.get("rudderstack") if config == "rudderstack" else envoys.get("default")
    send(envoy, upstream, "/ads", body, JSON, expect)


def test_segment_format_ignores_the_rudderstack_shape(gate, upstream):
    send(gate, upstream, "/ads", BOTH, JSON, ALLOW)


# on_missing_consent: allow lets through events that carry no consent; not events whose consent
# the filter cannot read (the other shape, or a refusal a JavaScript receiver inherits through
# `__proto__` when it copies the object).
MISSING_ALLOWED = [
    row("no-consent-passes", "/ads", encode(event()), ALLOW),
    row("rudderstack-shape-under-segment-format", "/ads",
        rs({"deniedConsentIds": ["Advertising"]}), MISSING),
    row("look-alike-of-the-rudderstack-shape", "/ads",
        rs({"deniedConsentIds": ["Advertising"]}).replace(b"consentManagement", b"ConsentManagement"),
        INVALID),
    row("proto-in-context", "/ads",
        encode(event(context={"__proto__": {"consent": {"categoryPreferences": {"Advertising": False}}}})),
        INVALID),
    row("proto-in-category-preferences", "/ads",
        encode(event(context={"consent": {"categoryPreferences": {
            "Advertising": True, "__proto__": {"Advertising": False}}}})),
        INVALID),
    row("proto-at-the-top", "/ads",
        encode(event(__proto__={"context": {"consent": {"categoryPreferences": {"Advertising": False}}}})),
        INVALID),
]


@pytest.mark.parametrize("path, body, headers, expect", MISSING_ALLOWED)
def test_missing_consent_allowed_only_when_there_is_none(envoys, upstream, path, body, headers, expect):
    send(envoys.get("missing_allow"), upstream, path, body, headers, expect)


# ---- Global Privacy Control -------------------------------------------------------------------------

BOTH_CONSENTED = encode(event({"Advertising": True, "Analytics": True}))

GLOBAL_PRIVACY_CONTROL = [
    row("no-signal", "/gpc", BOTH_CONSENTED, ALLOW),
    row("signal-withdraws-advertising", "/gpc", BOTH_CONSENTED, denied("Advertising"), GPC),
    row("only-1-counts", "/gpc", BOTH_CONSENTED, ALLOW, {**JSON, "sec-gpc": "true"}),
    row("0-is-no-signal", "/gpc", BOTH_CONSENTED, ALLOW, {**JSON, "sec-gpc": "0"}),
    row("10-is-no-signal", "/gpc", BOTH_CONSENTED, ALLOW, {**JSON, "sec-gpc": "10"}),
    # CGI, WSGI, PHP and Rack read `Sec_GPC` as `HTTP_SEC_GPC`, as they read `Sec-GPC`.
    row("underscore-spelling-counts", "/gpc", BOTH_CONSENTED, denied("Advertising"),
        {**JSON, "sec_gpc": "1"}),
    row("underscore-spelling-beside-a-0", "/gpc", BOTH_CONSENTED, denied("Advertising"),
        {**JSON, "sec-gpc": "0", "sec_gpc": "1"}),
    # PHP turns the `.` of a server's `HTTP_SEC.GPC` (Caddy, php -S) into `_`.
    row("dot-spelling-counts", "/gpc", BOTH_CONSENTED, denied("Advertising"),
        {**JSON, "sec.gpc": "1"}),
    # lighttpd turns every character of a name but letters and digits into `_`.
    row("any-punctuation-counts", "/gpc", BOTH_CONSENTED, denied("Advertising"),
        {**JSON, "sec~gpc": "1"}),
    row("route-without-gpc-denies", "/multi", BOTH_CONSENTED, ALLOW, GPC),
    row("consent-event-still-passes", "/gpc", encode(event(name="Consent Change")), ALLOW, GPC),
]


@pytest.mark.parametrize("path, body, headers, expect", GLOBAL_PRIVACY_CONTROL)
def test_global_privacy_control(gate, upstream, path, body, headers, expect):
    # An allowed request reaches the destination with its Sec-GPC header: never stripped.
    send(gate, upstream, path, body, headers, expect)


def test_two_gpc_lines_one_saying_1_withdraw(gate, upstream):
    head = (b"POST /gpc HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
            b"sec-gpc: 0\r\nsec-gpc: 1\r\ncontent-length: %d\r\n\r\n" % len(BOTH_CONSENTED))
    with clients.RawHttp1(gate.port) as conn:
        conn.send(head + BOTH_CONSENTED)
        resp = conn.read_response()
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT", ["Advertising"])


@pytest.mark.parametrize("value", [b"\xa01", b"1\x85", b"\xc2\xa01", b"\xe3\x80\x801"])
def test_gpc_with_what_readers_trim_beyond_ascii_withdraws(gate, upstream, value):
    """Envoy passes bytes beyond ASCII in a header value through; Python's `strip` and
    JavaScript's `trim` take a no-break space (Latin-1 or UTF-8) or an ideographic space off and
    read 1."""
    head = (b"POST /gpc HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
            b"sec-gpc: " + value + b"\r\ncontent-length: %d\r\n\r\n" % len(BOTH_CONSENTED))
    with clients.RawHttp1(gate.port) as conn:
        conn.send(head + BOTH_CONSENTED)
        resp = conn.read_response()
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT", ["Advertising"])


@pytest.mark.parametrize("value", ["1, 0", "0,1",
                                   # PHP's `== 1`, JavaScript's `Number`/`== 1`, `parseInt`.
                                   "01", "1.0", "+1", "1e0", "1.", "0x1", "1abc", "1;q=1",
                                   # Rounded to the nearest double.
                                   "0.99999999999999999999", "100000000000000000001e-20",
                                   # `_` between digits (Python's int, Go's ParseInt, Ruby's
                                   # to_i), a hexadecimal float (Go's ParseFloat).
                                   "0_1", "0.1_0e1", "0x_1", "0x.8p1",
                                   # A hexadecimal float Go rounds to 1.
                                   "0x.fffffffffffffffp0"])
def test_a_gpc_line_listing_1_withdraws(gate, upstream, value):
    resp = clients.http1(gate.port, "POST", "/gpc", BOTH_CONSENTED, {**JSON, "sec-gpc": value})
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT", ["Advertising"])


@pytest.mark.parametrize("value", [" 1", "1 ", "\t1"])
def test_gpc_with_white_space_over_http2_withdraws(gate, upstream, value):
    """Envoy passes an HTTP/2 value's white space through; HTTP/1 receivers trim it and read 1."""
    resp = clients.http2(gate.port, "POST", "/gpc", BOTH_CONSENTED, {**JSON, "sec-gpc": value},
                         validate_headers=False)
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT", ["Advertising"])


def test_a_routes_rule_carries_destination_and_gpc(envoys, upstream):
    envoy = envoys.get("sources_rules")
    send(envoy, upstream, "/any/v1/track", seg(True), JSON, ALLOW)
    upstream.reset()
    send(envoy, upstream, "/any/v1/track", seg(True, {"Mixpanel": False}), JSON, OFF)
    send(envoy, upstream, "/any/v1/track", seg(True), GPC, denied("Advertising"))
    send(envoy, upstream, "/any/v1/track", rs({"deniedConsentIds": ["Advertising"]}), JSON, denied("Advertising"))


# ---- a real RudderStack client ----------------------------------------------------------------------

WRITE_KEY = "wk_consent_gate_rudder"


def cm(denied_ids, **more) -> dict:
    return {"consentManagement": {"deniedConsentIds": denied_ids, **more}}


# (call, kwargs, reaches the destination). The `rudderstack` Envoy gates `/` (the SDK posts to
# /v1/batch) by Analytics.
RUDDER_CALLS = [
    ("track", dict(event="Order Completed", properties={"revenue": 42.5},
                   context=cm(["C0004"], provider="oneTrust", resolutionStrategy="and",
                              allowedConsentIds=["Analytics"])), True),
    ("track", dict(event="Order Completed", context=cm(["Analytics"], provider="oneTrust",
                                                       resolutionStrategy="and")), False),
    ("identify", dict(traits={"plan": "pro"}, context=cm([], provider="custom")), True),
    ("page", dict(name="Home", context=cm(["Analytics"], provider="custom")), False),
    ("track", dict(event="No Consent"), False),
    ("screen", dict(name="Cart", context=cm(["Advertising"], provider="ketch", resolutionStrategy="or")), True),
    ("group", dict(group_id="g-1", traits={"name": "ACME"},
                   context=cm([], allowedConsentIds={"Analytics": "Analytics"})), True),
    ("track", dict(event="Bad Consent", context={"consentManagement": {"deniedConsentIds": "Analytics"}}), False),
]


@pytest.mark.parametrize("gzip", [False, True], ids=["gzip-off", "gzip-on"])
def test_real_rudderstack_client_upstream_gets_exactly_the_consented_events(envoys, upstream, capsys, gzip):
    """All of RUDDER_CALLS in one batch (the upstream gets the consented ones, the client a 200),
    then only the refused ones (the client gets a 403, once: RudderStack's client does not retry
    a 4xx other than 429)."""
    from rudderstack.analytics import Client
    from rudderstack.analytics.version import VERSION

    envoy = envoys.get("rudderstack")
    errors: list[tuple[int, list[str]]] = []

    def on_error(exc, batch):
        errors.append((getattr(exc, "status", 0), [m["messageId"] for m in batch]))

    prefix = f"rs-{'gz' if gzip else 'plain'}"
    sent, expected, refused = {}, [], []

    def drive(calls, label):
        client = Client(WRITE_KEY, host=f"http://127.0.0.1:{envoy.port}", gzip=gzip,
                        upload_size=len(calls), upload_interval=0.2, max_retries=0, timeout=5,
                        on_error=on_error)
        try:
            for n, (method, kwargs, consented) in enumerate(calls):
                mid = f"{prefix}-{label}-{n}"
                queued, msg = getattr(client, method)(user_id="rs-user", **kwargs, message_id=mid)
                assert queued, msg
                sent[mid] = json.loads(json.dumps(msg, default=str))
                (expected if consented else refused).append(mid)
            client.flush()
        finally:
            client.shutdown()

    drive(RUDDER_CALLS, "mixed")
    drive([c for c in RUDDER_CALLS if not c[2]], "refused")
    time.sleep(SETTLE_SECONDS)

    received = []
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    for req in upstream.requests:
        assert (req.method, req.path) == ("POST", "/v1/batch"), req
        assert req.header("authorization") == auth, req.header_lines
        assert req.header_values("content-encoding") == (["gzip"] if gzip else []), req.header_lines
        doc = json.loads(decompress("gzip" if gzip else None, req.body))
        for item in doc["batch"]:
            assert item["messageId"] in sent, item
            received.append(item["messageId"])
    with capsys.disabled():
        print(f"\nrudder-sdk-python {VERSION} gzip={'on' if gzip else 'off'}: sent {len(sent)} events "
              f"in 2 batches; expected {len(expected)}; upstream received {len(received)} in "
              f"{len(upstream.requests)} requests; client refusals: {errors}")
    assert received == expected, f"expected {expected}, received {received}"
    assert [status for status, _ in errors] == [403], errors
    assert sorted(errors[0][1]) == sorted(m for m in refused if "-refused-" in m), errors


def test_a_correct_gpc_route_logs_no_error(gate, upstream):
    """The dynamic module reads `gpc_denies` as the list it is before trying other types: Envoy
    logs an error for every metadata getter used on a value of another type."""
    send(gate, upstream, "/gpc", BOTH_CONSENTED, JSON, ALLOW)
    assert "key gpc_denies is not" not in gate.stderr_text()
