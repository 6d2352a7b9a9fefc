"""The readers of harness.readers (no Envoy): they read ordinary Segment bodies alike, and they do
disagree on the bodies a differential test exists to catch."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from harness.readers import build_go_oracle, read_all, read_first_wins, read_go, read_last_wins

CATEGORIES = ["Advertising", "Analytics"]
ADS = {"Advertising": True, "Analytics": False}
NONE = {"Advertising": False, "Analytics": False}


def body(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def prefs(**values) -> dict:
    return {"consent": {"categoryPreferences": values}}


def item(type=None, event=None, message_id=None, consent=None, rudder=None, integrations=None) -> dict:
    return {"type": type, "event": event, "messageId": message_id, "consent": consent,
            "rudder": rudder, "integrations": integrations}


def one(kind: str, *items, error=None) -> dict:
    return {"kind": kind, "error": error, "items": list(items)}


TRACK = {"type": "track", "event": "Order Completed", "messageId": "m1",
         "context": prefs(Advertising=True, Analytics=False)}
BATCH = {
    "batch": [
        {"type": "track", "event": "A", "messageId": "b1"},  # the batch's consent
        {"type": "identify", "messageId": "b2", "context": {"consent": {}}},  # its own, empty
        {"type": "page", "messageId": "b3", "context": prefs(Advertising=False, Analytics=True)},
    ],
    "context": prefs(Advertising=True),
    "sentAt": "2024-01-01T00:00:00Z",
}

ORDINARY = {
    "track": ("/v1/track", body(TRACK), None,
              one("event", item("track", "Order Completed", "m1", ADS))),
    "no consent": ("/v1/identify", body({"type": "identify", "userId": "u"}), None,
                   one("event", item("identify"))),
    "consent without preferences": ("/v1/track", body({"type": "track", "context": {"consent": {}}}),
                                    None, one("event", item("track", consent="no_preferences"))),
    "empty preferences": ("/v1/track", body({"type": "track", "context": prefs()}), None,
                          one("event", item("track", consent=NONE))),
    "non-boolean values are not consent": (
        "/v1/track", body({"type": "track", "context": prefs(Advertising=None, Functional=False)}),
        None, one("event", item("track", consent=NONE))),
    "escaped names": ("/v1/track",
                      rb'{"type":"tr\u0061ck","context":{"consent":{"categoryPreferences":'
                      rb'{"Adv\u0065rtising":true}}}}',
                      None, one("event", item("track", consent=ADS))),
    "batch": ("/v1/batch", body(BATCH), None,
              one("batch", item("track", "A", "b1", ADS), item("identify", None, "b2", "no_preferences"),
                  item("page", None, "b3", {"Advertising": False, "Analytics": True}))),
    "empty batch": ("/v1/batch", body({"batch": []}), None, one("batch")),
    "gzip": ("/v1/track", gzip.compress(body(TRACK)), "gzip",
             one("event", item("track", "Order Completed", "m1", ADS))),
    "gzip, two members": ("/v1/batch", gzip.compress(body(BATCH)[:20]) + gzip.compress(body(BATCH)[20:]),
                          "x-gzip", None),
    "deflate": ("/v1/import", zlib.compress(body(BATCH)), "deflate", None),
}


@pytest.mark.parametrize("path, raw, encoding, expected", ORDINARY.values(), ids=ORDINARY.keys())
def test_ordinary_bodies_are_read_alike(path, raw, encoding, expected):
    readings = read_all(path, raw, CATEGORIES, encoding)
    if expected is None:  # the same reading as the uncompressed batch
        expected = read_last_wins("/v1/batch", body(BATCH), CATEGORIES)
        assert expected["kind"] == "batch" and len(expected["items"]) == 3
    assert readings == {"last_wins": expected, "first_wins": expected, "go": expected}


def test_go_folds_field_names_and_the_body_readers_do_not():
    raw = body({"type": "track",
                "context": prefs(Advertising=True),
                "Context": prefs(Advertising=False)})
    readings = read_all("/v1/track", raw, ["Advertising"])
    assert readings["last_wins"]["items"][0]["consent"] == {"Advertising": True}
    assert readings["first_wins"]["items"][0]["consent"] == {"Advertising": True}
    assert readings["go"]["items"][0]["consent"] == {"Advertising": False}


@pytest.mark.parametrize("raw", [
    rb'{"type":"track","context":{"con\u017fent":{"categoryPreferences":{"Advertising":true}}}}',
    '{"type":"track","context":{"con\u017fent":{"categoryPreferences":{"Advertising":true}}}}'
    .encode(),
], ids=["escaped", "utf-8"])
def test_go_reads_long_s_as_s(raw):
    readings = read_all("/v1/track", raw, ["Advertising"])
    assert readings["go"]["items"] == [item("track", consent={"Advertising": True})]
    assert readings["last_wins"]["items"] == [item("track")]
    assert readings["first_wins"]["items"] == [item("track")]


def test_duplicate_type_first_and_last():
    readings = read_all("/v1/track", b'{"type":"track","type":"identify"}', [])
    assert readings["first_wins"]["items"][0]["type"] == "track"
    assert readings["last_wins"]["items"][0]["type"] == "identify"
    assert readings["go"]["items"][0]["type"] == "identify"


def test_duplicate_category_first_and_last():
    raw = b'{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Advertising":false}}}}'
    readings = read_all("/v1/track", raw, ["Advertising"])
    assert readings["first_wins"]["items"][0]["consent"] == {"Advertising": True}
    assert readings["last_wins"]["items"][0]["consent"] == {"Advertising": False}
    assert readings["go"]["items"][0]["consent"] == {"Advertising": False}


def test_go_merges_a_repeated_object():
    # Go decodes the second `context` into the first: its consent survives an empty repeat.
    raw = body({"context": prefs(Advertising=True)})[:-1] + b',"context":{}}'
    readings = read_all("/v1/track", raw, ["Advertising"])
    assert readings["go"]["items"][0]["consent"] == {"Advertising": True}
    assert readings["first_wins"]["items"][0]["consent"] == {"Advertising": True}
    assert readings["last_wins"]["items"][0]["consent"] is None


def test_go_takes_the_kind_from_the_endpoint():
    batch = body({"batch": [{"type": "track", "context": prefs(Advertising=True)}]})
    readings = read_all("/v1/track", batch, ["Advertising"])
    assert readings["go"] == one("event", item())
    expected = one("batch", item("track", consent={"Advertising": True}))
    assert readings["last_wins"] == readings["first_wins"] == expected

    event = body({"type": "track", "context": prefs(Advertising=True)})
    readings = read_all("/v1/batch?write_key=x", event, ["Advertising"])
    assert readings["go"] == one("batch")
    expected = one("event", item("track", consent={"Advertising": True}))
    assert readings["last_wins"] == readings["first_wins"] == expected


@pytest.mark.parametrize("raw", [
    body({"type": "track", "context": prefs(Advertising=True, Functional="yes")}),
    b'{"type":"track"',
    b'{"type":"track"} {}',
    b"",
])
def test_every_reader_reports_an_unreadable_body(raw):
    readings = read_all("/v1/track", raw, ["Advertising"])
    assert all(reading["error"] for reading in readings.values()), readings
    assert readings["last_wins"]["items"] == readings["first_wins"]["items"] == readings["go"]["items"]


def test_only_json_true_consents():
    raw = body({"type": "track", "context": prefs(Advertising="true", Analytics=1)})
    for reading in read_all("/v1/track", raw, CATEGORIES).values():
        assert reading["error"]
        assert reading["items"] == [item("track", consent=NONE)]


def test_go_keeps_a_value_of_the_wrong_type():
    raw = body({"type": 1, "context": {"consent": []}})
    readings = read_all("/v1/track", raw, ["Advertising"])
    assert all(reading["error"] for reading in readings.values()), readings
    assert readings["go"]["items"] == [item("", consent="no_preferences")]
    assert readings["last_wins"]["items"] == readings["first_wins"]["items"] == [item()]


def test_batch_item_errors_do_not_hide_the_other_items():
    raw = b'{"batch":[5,{"type":"track"}],"context":{"consent":{"categoryPreferences":{}}}}'
    for reading in read_all("/v1/batch", raw, ["Advertising"]).values():
        assert reading["error"]
        assert reading["items"] == [item(consent={"Advertising": False}),
                                    item("track", consent={"Advertising": False})]


def test_read_go_answers_each_request_in_order():
    requests = [(f"/v1/track/{i}", body({"type": "track", "messageId": str(i)}), []) for i in range(50)]
    assert [r["items"][0]["messageId"] for r in read_go(requests)] == [str(i) for i in range(50)]
    assert read_go([]) == []


def test_an_unsupported_encoding_is_a_caller_error():
    with pytest.raises(ValueError, match="br"):
        read_first_wins("/v1/track", b"{}", [], "br")
    with pytest.raises(ValueError, match="br"):
        read_go([("/v1/track", b"{}", [], "br")])


def test_building_without_go_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="golang-go"):
        build_go_oracle(tmp_path / "cache")


def cm(**fields) -> dict:
    return {"consentManagement": fields}


def denied(advertising: bool, analytics: bool, provider: str = "", strategy: str = "",
           allowed: dict | None = None) -> dict:
    return {"denied": {"Advertising": advertising, "Analytics": analytics}, "allowed": allowed,
            "provider": provider, "strategy": strategy}


RUDDERSTACK = {
    "denied list": ({"type": "track", "context": cm(deniedConsentIds=["Analytics", "C9"], provider="ketch",
                                                     resolutionStrategy="or", allowedConsentIds={"C1": "x"})},
                    denied(False, True, "ketch", "or", {"Advertising": False, "Analytics": False})),
    "empty list": ({"type": "track", "context": cm(deniedConsentIds=[])}, denied(False, False)),
    # rudder-server's allow-list release: an allowed list that lists IDs decides.
    "no deny list": ({"type": "track", "context": cm(allowedConsentIds=[" Advertising"])},
                     denied(False, False, allowed={"Advertising": True, "Analytics": False})),
    "neither list": ({"type": "track", "context": cm(allowedConsentIds=[" "])}, "unusable"),
    "a denied ID trimmed": ({"type": "track", "context": cm(deniedConsentIds=["Analytics\u00a0"])},
                            denied(False, True)),
    "not an object": ({"type": "track", "context": {"consentManagement": ["Advertising"]}}, "unusable"),
    "a number in the list": ({"type": "track", "context": cm(deniedConsentIds=["Advertising", 7])}, "unusable"),
    "provider a number": ({"type": "track", "context": cm(deniedConsentIds=[], provider=1)}, "unusable"),
}


@pytest.mark.parametrize("message, expected", RUDDERSTACK.values(), ids=RUDDERSTACK.keys())
def test_rudderstack_consent_is_read_as_rudder_server_reads_it(message, expected):
    readings = read_all("/v1/track", body(message), CATEGORIES)
    for name, reading in readings.items():
        assert reading["items"][0]["rudder"] == expected, (name, reading)


def test_a_batch_item_has_only_its_own_consent_management():
    """rudder-server's gateway stores each item alone, without the batch's context."""
    batch = {"batch": [{"type": "track"}, {"type": "track", "context": cm(deniedConsentIds=[])}],
             "context": cm(deniedConsentIds=["Advertising"])}
    for name, reading in read_all("/v1/batch", body(batch), CATEGORIES).items():
        assert [i["rudder"] for i in reading["items"]] == [None, denied(False, False)], name


def test_go_folds_consent_management_keys():
    raw = rb'{"type":"track","context":{"consentManagement":{"deniedConsentIds":[],"DeniedConsentIDs":["Advertising"]}}}'
    readings = read_all("/v1/track", raw, CATEGORIES)
    assert readings["go"]["items"][0]["rudder"] == denied(True, False)
    assert readings["last_wins"]["items"][0]["rudder"] == denied(False, False)


def test_integrations_entries_item_and_batch():
    batch = {"batch": [{"type": "track", "integrations": {"Mixpanel": {"k": 1}, "All": False}},
                       {"type": "track"}],
             "integrations": {"Mixpanel": False, "mixpanel": True}}
    for name, reading in read_all("/v1/batch", body(batch), CATEGORIES, destination="Mixpanel").items():
        assert [i["integrations"] for i in reading["items"]] == [
            {"item": ["object", "false"], "batch": ["false", None]},
            {"item": None, "batch": ["false", None]},
        ], name
    single = {"type": "track", "integrations": {"All": "no"}}
    for name, reading in read_all("/v1/track", body(single), CATEGORIES, destination="Mixpanel").items():
        assert reading["items"][0]["integrations"] == {"item": [None, "other"], "batch": None}, name
    # Without a destination nothing of it is read.
    for name, reading in read_all("/v1/track", body(single), CATEGORIES).items():
        assert reading["items"][0]["integrations"] is None, name
