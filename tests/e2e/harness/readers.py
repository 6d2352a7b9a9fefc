"""Readers: how different real receivers interpret a request body the filter forwarded.

A differential test hands every forwarded body to all of them and asserts they agree. Each reader
returns the same shape, for the categories asked about:

    {"kind": "batch" | "event",
     "error": None | "<decode error text>",
     "items": [{"type": str | None, "event": str | None, "messageId": str | None,
                "consent": None                  # no consent object
                         | "no_preferences"      # consent without categoryPreferences
                         | {"<category>": bool}  # True only for JSON true
               }, ...]}

Each item also has "rudder" — RudderStack's `context.consentManagement` as rudder-server reads it:
None (absent), "unusable" (not an object, a field of another type, or neither a
`deniedConsentIds` nor an `allowedConsentIds` that lists an ID: what rudder-server ignores) or
{"denied": {"<category>": bool}, "allowed": None | {"<category>": bool}, "provider": str,
"strategy": str} — IDs as rudder-server's allow-list release reads them too (trimmed of white
space; `allowedConsentIds` an array of strings or an object keyed by ID, "allowed" None when it
lists no ID) — and
"integrations": None, or when a destination is given {"item": entries | None, "batch": entries |
None}, entries being [the destination's, All's], each None (absent), "true", "false", "object" or
"other". A batch item has only its own `consentManagement`: rudder-server's gateway stores each item
alone, without the batch's context.

A single event has exactly one item. A `null` value reads as absent. In a batch, an item with no
`context.consent` of its own uses the batch's top-level one (Segment's merge rule). Category keys
are exact in every reader. "error" is set when the body does not fit the Segment shapes (invalid
JSON; `context`, `consent`, `categoryPreferences` or an item not an object; `batch` not a list;
`type`, `event`, `messageId` not a string; a category value not a boolean) — what Go's Unmarshal
reports an error for — and the rest of the body is still read. Error texts differ between readers,
and so may the items of a body with an error: the Python readers read a value of the wrong type as
absent, Go allocates it first (`"type": 1` reads as "", `"consent": []` as "no_preferences").

- read_last_wins: Python's `json.loads` (a later duplicate key wins), exact key names, a body with
  a top-level `batch` key is a batch.
- read_first_wins: the same, but the first duplicate key wins.
- read_go: tests/oracle/go, Go's encoding/json into Segment structs: key names fold case and
  Unicode (`Context`, `con\\u017fent`), a later duplicate wins and repeated objects merge, and the
  endpoint decides the kind (`.../batch`, `.../b` and `.../import` are batches, `.../track`,
  `.../t`, ... single events; at any other path a `batch` key, in any case, makes a batch).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Iterable, Sequence

TESTS = Path(__file__).resolve().parents[2]
GO_SOURCE = TESTS / "oracle" / "go"
# The compiled oracle lives under the git-ignored cargo target directory (`make clean` removes it).
GO_CACHE = TESTS.parent / "target" / "oracle-go"

ENCODINGS = ("", "identity", "gzip", "x-gzip", "deflate")
JSON_TYPES = {str: "a string", dict: "an object", list: "an array"}


def decompress(body: bytes, content_encoding: str | None) -> bytes:
    """`body` decoded per its content-encoding: gzip (every member) or deflate (zlib)."""
    encoding = _encoding(content_encoding)
    if not body or encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    return zlib.decompress(body)


def read_last_wins(path: str, body: bytes, categories: Sequence[str],
                   content_encoding: str | None = None, destination: str | None = None) -> dict:
    """A Python receiver: `json.loads`, the last of duplicate keys wins, the body (not `path`)
    decides the kind."""
    return _read_python(body, categories, content_encoding, first_wins=False, destination=destination)


def read_first_wins(path: str, body: bytes, categories: Sequence[str],
                    content_encoding: str | None = None, destination: str | None = None) -> dict:
    """As read_last_wins, but the first of duplicate keys wins."""
    return _read_python(body, categories, content_encoding, first_wins=True, destination=destination)


def read_go(requests: Iterable[Sequence]) -> list[dict]:
    """The Go oracle's reading of each request, a (path, body, categories), (path, body,
    categories, content_encoding) or (..., content_encoding, destination) tuple, in order. The
    oracle decompresses itself."""
    lines = []
    for request in requests:
        path, body, categories, *rest = request
        encoding = _encoding(rest[0] if rest else None)
        destination = rest[1] if len(rest) > 1 else None
        lines.append(json.dumps({
            "path": path,
            "body_b64": base64.b64encode(bytes(body)).decode("ascii"),
            "categories": list(categories),
            "content_encoding": encoding,
            "destination": destination or "",
        }))
    if not lines:
        return []
    proc = subprocess.run([str(build_go_oracle())], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Go oracle exited with {proc.returncode}: {proc.stderr.strip()}")
    outputs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if len(outputs) != len(lines):
        raise RuntimeError(f"Go oracle answered {len(outputs)} of {len(lines)} requests")
    return outputs


def read_all(path: str, body: bytes, categories: Sequence[str],
             content_encoding: str | None = None, destination: str | None = None) -> dict[str, dict]:
    """Every reader's reading of one request, by reader name."""
    return {
        "last_wins": read_last_wins(path, body, categories, content_encoding, destination),
        "first_wins": read_first_wins(path, body, categories, content_encoding, destination),
        "go": read_go([(path, body, categories, content_encoding, destination)])[0],
    }


_built: dict[Path, Path] = {}


def build_go_oracle(cache_dir: Path | None = None) -> Path:
    """The compiled oracle, built on first use into `cache_dir` (keyed by the sources' hash)."""
    cache_dir = Path(cache_dir or GO_CACHE)
    if cache_dir in _built:
        return _built[cache_dir]
    digest = hashlib.sha256()
    for name in ("go.mod", "main.go"):
        digest.update((GO_SOURCE / name).read_bytes())
    binary = cache_dir / f"oracle-{digest.hexdigest()[:16]}"
    if not binary.exists():
        go = shutil.which("go")
        if go is None:
            raise RuntimeError("the Go oracle needs the `go` toolchain: `make` installs golang-go "
                               "(or: apt-get install -y golang-go)")
        cache_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HOME=str(cache_dir), GOCACHE=str(cache_dir / "gocache"),
                   GOPATH=str(cache_dir / "gopath"), GOFLAGS="", GO111MODULE="on", GOPROXY="off",
                   GOTOOLCHAIN="local", CGO_ENABLED="0")
        partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
        proc = subprocess.run([go, "build", "-o", str(partial), "."], cwd=GO_SOURCE, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"go build of {GO_SOURCE} failed:\n{proc.stderr}")
        os.replace(partial, binary)  # atomic: concurrent builders all end with a whole binary
    _built[cache_dir] = binary
    return binary


def _encoding(content_encoding: str | None) -> str:
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported content-encoding {content_encoding!r}")
    return encoding


def _first_wins_object(pairs: list) -> dict:
    obj: dict = {}
    for key, value in pairs:
        obj.setdefault(key, value)
    return obj


def _read_python(body: bytes, categories: Sequence[str], content_encoding: str | None,
                 first_wins: bool, destination: str | None = None) -> dict:
    errors: list[str] = []
    _encoding(content_encoding)  # an unsupported one is the caller's mistake, not a read error
    try:
        data = json.loads(decompress(bytes(body), content_encoding),
                          object_pairs_hook=_first_wins_object if first_wins else None)
    except (ValueError, RecursionError, EOFError, OSError, zlib.error) as exc:
        # Nothing decoded: an empty event, as Go leaves its struct.
        return {"kind": "event", "error": f"{type(exc).__name__}: {exc}",
                "items": [_item({}, None, categories, errors, "body", destination)]}
    if isinstance(data, dict) and "batch" in data:
        kind = "batch"
        # The batch's consent is read once; items without their own use that reading.
        batch_context = _field(data, "context", dict, errors, "context")
        batch_consent = _consent(_field(batch_context, "consent", dict, errors, "context.consent"),
                                 categories, errors, "context.consent")
        batch_entries = _entries(data, destination, errors, "integrations") if destination else None
        batch = _field(data, "batch", list, errors, "batch") or []
        items = [_item(_as_object(entry, errors, f"batch[{i}]"), batch_consent, categories, errors,
                       f"batch[{i}]", destination, batch_entries, in_batch=True)
                 for i, entry in enumerate(batch)]
    else:
        kind = "event"
        items = [_item(_as_object(data, errors, "body"), None, categories, errors, "body", destination)]
    return {"kind": kind, "error": "; ".join(errors) or None, "items": items}


def _as_object(value, errors: list[str], where: str) -> dict:
    """A message as an object; null reads as an empty one, anything else too but is an error."""
    if isinstance(value, dict):
        return value
    if value is not None:
        errors.append(f"{where}: not an object")
    return {}


def _field(obj: dict | None, key: str, kind: type, errors: list[str], where: str):
    """obj[key] if it has the expected JSON type; None (read as absent) if missing or null."""
    value = None if obj is None else obj.get(key)
    if value is None or isinstance(value, kind):
        return value
    errors.append(f"{where}: not {JSON_TYPES[kind]}")
    return None


def _item(message: dict, batch_consent, categories: Sequence[str], errors: list[str],
          where: str, destination: str | None = None, batch_entries=None,
          in_batch: bool = False) -> dict:
    item = {key: _field(message, key, str, errors, f"{where}.{key}")
            for key in ("type", "event", "messageId")}
    context = _field(message, "context", dict, errors, f"{where}.context")
    consent = _field(context, "consent", dict, errors, f"{where}.context.consent")
    if consent is None:  # Segment's merge: the batch's consent, a copy per item
        item["consent"] = dict(batch_consent) if isinstance(batch_consent, dict) else batch_consent
    else:
        item["consent"] = _consent(consent, categories, errors, f"{where}.context.consent")
    item["rudder"] = _rudder(context if isinstance(context, dict) else None, categories)
    item["integrations"] = None
    if destination:
        item["integrations"] = {"item": _entries(message, destination, errors, f"{where}.integrations"),
                                "batch": batch_entries if in_batch else None}
    return item


def _rudder(context: dict | None, categories: Sequence[str]):
    """context.consentManagement as rudder-server reads it (see the module docstring)."""
    cm = None if context is None else context.get("consentManagement")
    if cm is None:
        return None
    if not isinstance(cm, dict):
        return "unusable"
    raw_allowed = cm.get("allowedConsentIds")
    ids = raw_allowed if isinstance(raw_allowed, (list, dict)) else []
    allowed = [a.strip() for a in ids if isinstance(a, str) and a.strip()]
    denied = cm.get("deniedConsentIds")
    if denied is None and allowed:
        denied = []
    # Go reads a null list item as "" and a null string as "".
    if not isinstance(denied, list) or not all(d is None or isinstance(d, str) for d in denied):
        return "unusable"
    texts = {}
    for key in ("provider", "resolutionStrategy"):
        value = cm.get(key)
        if value is not None and not isinstance(value, str):
            return "unusable"
        texts[key] = value or ""
    trimmed = [d.strip() for d in denied if isinstance(d, str)]
    return {"denied": {c: c in denied or c in trimmed for c in categories},
            "allowed": {c: c in allowed for c in categories} if allowed else None,
            "provider": texts["provider"], "strategy": texts["resolutionStrategy"]}


def _kind(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "object" if isinstance(value, dict) else "other"


def _entries(obj: dict, destination: str, errors: list[str], where: str):
    """[the destination's entry, All's] in obj["integrations"] (None when it has none)."""
    integrations = _field(obj, "integrations", dict, errors, where)
    if integrations is None:
        return None
    return [_kind(integrations.get(destination)), _kind(integrations.get("All"))]


def _consent(consent: dict | None, categories: Sequence[str], errors: list[str], where: str):
    """The reading of a consent object: None, "no_preferences" or {category: is JSON true}."""
    if consent is None:
        return None
    prefs = _field(consent, "categoryPreferences", dict, errors, f"{where}.categoryPreferences")
    if prefs is None:
        return "no_preferences"
    if any(value is not None and not isinstance(value, bool) for value in prefs.values()):
        errors.append(f"{where}.categoryPreferences: a value is not a boolean")
    return {name: prefs.get(name) is True for name in categories}
