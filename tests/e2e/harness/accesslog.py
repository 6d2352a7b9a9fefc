"""The access log file of an e2e Envoy, parsed.

envoy/e2e.yaml's format ends with the request's `x-e2e-id` header and consent-gate's decision
record (README "Decision records"):

    [...] "POST /ads HTTP/1.1" 403 - consent_gate.FILTERED_BY_END_USER_CONSENT 232 157 0 route=ads
      upstream=- id=rec-1 record="decision=deny reason=FILTERED_BY_END_USER_CONSENT
      required=Advertising denied=Advertising events=1 dropped=1"

(one line). A test tags each request with a unique `x-e2e-id` (`tag()`) and finds its line with
`wait_for()`: Envoy writes the line when the stream ends and flushes the file every 100 ms.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from .envoy import Envoy

ID_HEADER = "x-e2e-id"

LINE = re.compile(
    r'^\[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" '
    r"(?P<status>\d+) (?P<flags>\S+) (?P<details>\S+) (?P<bytes_received>\d+) (?P<bytes_sent>\d+) "
    r"(?P<duration>\S+) route=(?P<route>\S+) upstream=(?P<upstream>\S+) id=(?P<id>\S+) "
    r'record="(?P<record>[^"]*)"$'
)


@dataclass(frozen=True)
class Entry:
    line: str
    method: str
    path: str
    status: int
    details: str  # %RESPONSE_CODE_DETAILS%
    route: str
    upstream: str
    id: str
    record: str  # %FILTER_STATE(wasm.consent_gate:PLAIN)%, "-" when unset

    def _pairs(self) -> dict[str, str]:
        if self.record == "-":
            return {}
        pairs = {}
        for part in self.record.split(" "):
            key, sep, value = part.partition("=")
            assert sep and key not in pairs, f"malformed decision record {self.record!r}"
            pairs[key] = value
        assert next(iter(pairs)) == "decision", f"the record must start with decision=: {self.record!r}"
        return pairs

    @property
    def decision(self) -> str:
        """The record's `decision` ("-" when the record is "-")."""
        return self._pairs().get("decision", "-")

    @property
    def fields(self) -> dict[str, str]:
        """The record's other `key=value` pairs ({} when the record is "-")."""
        return {k: v for k, v in self._pairs().items() if k != "decision"}


def parse(line: str) -> Entry:
    m = LINE.match(line)
    assert m, f"access log line does not match envoy/e2e.yaml's format: {line!r}"
    return Entry(
        line=line,
        method=m["method"],
        path=m["path"],
        status=int(m["status"]),
        details=m["details"],
        route=m["route"],
        upstream=m["upstream"],
        id=m["id"],
        record=m["record"],
    )


def entries(envoy: Envoy) -> list[Entry]:
    return [parse(line) for line in envoy.access_log_text().splitlines() if line]


def new_id(label: str = "req") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def tag(headers: dict[str, str] | None, request_id: str) -> dict[str, str]:
    """`headers` plus the `x-e2e-id` header the access log prints."""
    return {**(headers or {}), ID_HEADER: request_id}


def wait_for(envoy: Envoy, request_id: str, timeout: float = 5.0) -> Entry:
    """The one access-log line of the request tagged `request_id` (waits for Envoy's flush)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in entries(envoy) if e.id == request_id]
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    assert len(found) == 1, (
        f"expected one access-log line for {request_id}, found {len(found)}: {found!r}\n"
        f"log tail:\n{envoy.access_log_text()[-2000:]}"
    )
    return found[0]


def wait_for_all(envoy: Envoy, request_ids: list[str], timeout: float = 5.0) -> dict[str, Entry]:
    deadline = time.monotonic() + timeout
    return {rid: wait_for(envoy, rid, max(0.0, deadline - time.monotonic())) for rid in request_ids}
