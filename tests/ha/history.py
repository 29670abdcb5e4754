"""A history checker for multi-actor runs: did any actor, stale or concurrent, touch a live key?

Inputs, all gathered after the run from outside the processes under test:
- the simulator's key event log (`GET /_sim/events`): every create and delete, in true order,
  with the host's wall time;
- Vault's consumer record history: each KV v2 version's `created_time` and the key id it held
  (read from the version, or, for versions destroyed after revocation, from the state record's
  `active`/`previous` refs that name the consumer version);
- the hand-off log: a command hook appends one JSON line per run (wall time, key fingerprint,
  rotation id, the daemon's pid), never the secret;
- the notifications a webhook receiver got, and the failures the state record's versions carry;
- the daemons' own protocol log events that excuse a second create in one rotation.

Rules (each returns a violation naming the evidence; `check()` returns them all):
1. no key is deleted on Bybit while Vault's consumer record points at it;
2. every hand-off delivers a key that is live (created, not yet deleted) at that moment, and the
   last hand-off delivers the key the consumer record ends on;
3. one create per rotation id (the `rotator:<rotation id>:<key name>` note); a second create is
   allowed only after the first key was deleted, was never a consumer's key, and a daemon logged
   the protocol's own path for it (`orphan.deleted`: a lost reply, or an actor that died between
   create and the Vault write, swept no sooner than a lease can change hands; or a verify failure
   the simulator caused with an injected fault);
4. no false failure: no failure notification (nothing failed on purpose in these runs), no
   duplicate `rotation_completed`, no failure recorded in the state record.
"""

from __future__ import annotations

import itertools
import json
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import hvac
from rotator.model import fingerprint
from rotator.state import parse_note

FAILURE_KINDS = frozenset(
    {"rotation_failing", "key_escalated", "vault_unreachable", "bybit_unreachable"}
)
EXCUSING_EVENTS = frozenset({"orphan.deleted"})


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyEvent:
    seq: int
    kind: str  # created | deleted
    wall: datetime
    api_key: str
    uid: int
    note: str
    by: str

    @property
    def key_fp(self) -> str:
        return fingerprint(self.api_key)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KeyEvent:
        return cls(
            seq=raw["seq"],
            kind=raw["kind"],
            wall=datetime.fromisoformat(raw["wallTime"]),
            api_key=raw["apiKey"],
            uid=raw["uid"],
            note=raw["note"],
            by=raw["by"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerVersion:
    version: int
    created: datetime
    api_key: str | None  # None: destroyed and named by no state ref (the checker says so)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOff:
    at: datetime
    key_fp: str
    rotation_id: str
    pid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    key_name: str
    sub_uid: int
    events: list[KeyEvent]
    consumer: list[ConsumerVersion]
    handoffs: list[HandOff] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    state_failures: list[str] = field(default_factory=list)  # "v7: <last_error>"
    protocol_events: list[dict[str, Any]] = field(default_factory=list)  # daemon log lines
    completed_rotations: int = 0
    injected_faults: frozenset[str] = frozenset()  # fault kinds the simulator applied
    # A successor may sweep a dead actor's orphan only after the lease changed hands: the key then
    # lived at least lease_duration - renew_deadline. A faster "orphan" deletion is a concurrent
    # actor deleting a key another one is storing, unless a lost reply was injected.
    orphan_min_age: timedelta = timedelta(0)

    # ---------------------------------------------------------------- views
    def key_events(self) -> list[KeyEvent]:
        return [e for e in self.events if e.uid == self.sub_uid]

    def consumer_key_at(self, when: datetime) -> str | None:
        """The key id the consumer record held at wall time `when` (None before the first)."""
        times = [v.created for v in self.consumer]
        i = bisect_right(times, when)
        return self.consumer[i - 1].api_key if i else None

    def lifetime(self, key_fp: str) -> tuple[KeyEvent | None, KeyEvent | None]:
        created = deleted = None
        for e in self.key_events():
            if e.key_fp == key_fp and e.kind == "created" and created is None:
                created = e
            elif e.key_fp == key_fp and e.kind == "deleted" and deleted is None:
                deleted = e
        return created, deleted

    def describe(self) -> str:
        """The whole history as text, for a failing assertion's message."""
        rows: list[tuple[datetime, str]] = [
            (e.wall, f"#{e.seq} bybit {e.kind} {e.key_fp} note={e.note!r} by={e.by}")
            for e in self.key_events()
        ]
        rows += [
            (v.created, f"vault consumer v{v.version} -> {_fp(v.api_key)}") for v in self.consumer
        ]
        rows += [
            (h.at, f"hand-off {h.key_fp} rotation={h.rotation_id} pid={h.pid}")
            for h in self.handoffs
        ]
        lines = [f"{t.isoformat()} {text}" for t, text in sorted(rows, key=lambda r: r[0])]
        lines += [f"notification {n.get('kind')} {n.get('subject')}" for n in self.notifications]
        lines += [f"state failure {f}" for f in self.state_failures]
        return "\n".join(lines)


def _fp(key: str | None) -> str:
    return fingerprint(key) if key else "?"


# -------------------------------------------------------------------- the rules
def check(history: History) -> list[str]:
    return [
        *deleted_while_consumer(history),
        *handoffs_of_dead_keys(history),
        *creates_per_rotation(history),
        *false_failures(history),
    ]


def deleted_while_consumer(history: History) -> list[str]:
    out = [
        f"consumer v{v.version}: cannot tell which key it held (destroyed, no state ref names it)"
        for v in history.consumer
        if v.api_key is None
    ]
    for e in history.key_events():
        if e.kind != "deleted":
            continue
        if history.consumer_key_at(e.wall) == e.api_key:
            out.append(
                f"key {e.key_fp} deleted on Bybit (#{e.seq}, by {e.by}, {e.wall.isoformat()}) "
                "while Vault's consumer record pointed at it"
            )
    return out


def handoffs_of_dead_keys(history: History) -> list[str]:
    out = []
    for h in history.handoffs:
        created, deleted = history.lifetime(h.key_fp)
        if created is None or created.wall > h.at:
            out.append(f"hand-off at {h.at.isoformat()} (pid {h.pid}) of {h.key_fp}: not created")
        elif deleted is not None and deleted.wall <= h.at:
            out.append(
                f"hand-off at {h.at.isoformat()} (pid {h.pid}) delivered {h.key_fp}, deleted on "
                f"Bybit at {deleted.wall.isoformat()} (#{deleted.seq})"
            )
    if history.handoffs and history.consumer:
        last, final = history.handoffs[-1], history.consumer[-1].api_key
        if final is not None and last.key_fp != fingerprint(final):
            out.append(
                f"the last hand-off (pid {last.pid}) delivered {last.key_fp}, but the consumer "
                f"record ends on {fingerprint(final)}: the bot holds a stale key"
            )
    return out


def creates_per_rotation(history: History) -> list[str]:
    by_rotation: dict[str, list[KeyEvent]] = {}
    for e in history.key_events():
        tag = parse_note(e.note)
        if e.kind == "created" and tag is not None and tag.key_name == history.key_name:
            by_rotation.setdefault(tag.rotation_id, []).append(e)
    consumer_keys = {v.api_key for v in history.consumer}
    excused = {
        ev.get("key_fp") for ev in history.protocol_events if ev.get("event") in EXCUSING_EVENTS
    }
    if "tamper_permissions" in history.injected_faults:
        excused |= {e.key_fp for e in history.key_events()}
    out = []
    for rotation_id, creates in by_rotation.items():
        for earlier, later in itertools.pairwise(creates):
            _, deleted = history.lifetime(earlier.key_fp)
            why = None
            if deleted is None or deleted.seq > later.seq:
                why = "the first key was still live when the next was created (a concurrent actor)"
            elif earlier.api_key in consumer_keys:
                why = "the first key had been promoted to the consumer record"
            elif earlier.key_fp not in excused:
                why = "no daemon logged the protocol's lost-reply or verify-failure path for it"
            elif (
                deleted.wall - earlier.wall < history.orphan_min_age
                and "lose_response" not in history.injected_faults
            ):
                why = (
                    f"swept as an orphan {(deleted.wall - earlier.wall).total_seconds():.3f}s "
                    f"after its create, sooner than a lease can change hands "
                    f"({history.orphan_min_age.total_seconds()}s): its creator was still acting"
                )
            if why:
                out.append(
                    f"rotation {rotation_id}: {len(creates)} creates (#{earlier.seq} "
                    f"{earlier.key_fp}, #{later.seq} {later.key_fp}): {why}"
                )
    return out


def false_failures(history: History) -> list[str]:
    out = [
        f"false notification {n.get('kind')} for {n.get('subject')}: {n.get('text', '')[:120]}"
        for n in history.notifications
        if n.get("kind") in FAILURE_KINDS
    ]
    completed = [
        n
        for n in history.notifications
        if n.get("kind") == "rotation_completed" and n.get("subject") == history.key_name
    ]
    if len(completed) > history.completed_rotations:
        out.append(
            f"{len(completed)} rotation_completed notifications for "
            f"{history.completed_rotations} completed rotations (duplicates)"
        )
    out += [f"false failure recorded in the state record: {f}" for f in history.state_failures]
    return out


# -------------------------------------------------------------------- gathering
def sim_events(sim_url: str) -> list[KeyEvent]:
    raw = httpx.get(f"{sim_url}/_sim/events", timeout=10).json()["events"]
    return [KeyEvent.from_json(e) for e in raw]


def sim_faults_applied(sim_url: str) -> frozenset[str]:
    log = httpx.get(f"{sim_url}/_sim/requests", timeout=10).json()["requests"]
    return frozenset(e["fault"] for e in log if e.get("fault"))


def _versions(client: hvac.Client, path: str) -> dict[int, dict[str, Any]]:
    try:
        meta = client.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")
    except hvac.exceptions.InvalidPath:
        return {}
    return {int(v): info for v, info in meta["data"]["versions"].items()}


def _read(client: hvac.Client, path: str, version: int) -> dict[str, Any] | None:
    try:
        resp = client.secrets.kv.v2.read_secret_version(
            path=path, version=version, mount_point="secret", raise_on_deleted_version=False
        )
    except hvac.exceptions.InvalidPath:
        return None
    data = resp.get("data", {}).get("data")
    return data if isinstance(data, dict) else None


def vault_history(
    client: hvac.Client, prefix: str, key_name: str
) -> tuple[list[ConsumerVersion], list[str], int]:
    """Consumer versions, the failures state versions recorded, and completed rotations.

    Destroyed state versions (those that held a pending secret) are skipped: they sit between a
    plan and a promotion, never at a completion, so the count stays right."""
    state_path = f"{prefix}/state/{key_name}"
    refs: dict[int, str] = {}
    failures: list[str] = []
    completed = 0
    in_flight = False
    for version in sorted(_versions(client, state_path)):
        data = _read(client, state_path, version)
        if data is None:
            continue
        if data.get("rotation") is None and in_flight:
            completed += 1  # every completion, the initial one included (it is notified too)
        in_flight = data.get("rotation") is not None
        for ref in (data.get("active"), data.get("previous")):
            if isinstance(ref, dict) and ref.get("consumer_version") is not None:
                refs[int(ref["consumer_version"])] = ref["key_id"]
        rotation = data.get("rotation") or {}
        if rotation.get("last_error") or rotation.get("failures"):
            failures.append(f"v{version}: {rotation.get('last_error')}")
    consumer_path = f"{prefix}/keys/{key_name}"
    consumer = []
    for version, info in sorted(_versions(client, consumer_path).items()):
        data = _read(client, consumer_path, version)
        api_key = data.get("api_key") if data else None
        consumer.append(
            ConsumerVersion(
                version=version,
                created=datetime.fromisoformat(info["created_time"]),
                api_key=api_key or refs.get(version),
            )
        )
    return consumer, failures, completed


def handoff_log(path: Path) -> list[HandOff]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        raw = json.loads(line)
        out.append(
            HandOff(
                at=datetime.fromisoformat(raw["at"]),
                key_fp=raw["key_fp"],
                rotation_id=raw.get("rotation_id", ""),
                pid=int(raw["pid"]),
            )
        )
    return sorted(out, key=lambda h: h.at)


# The hand-off log of tests/ha, as a command hook: when, which key (fingerprint only), which
# rotation, which daemon. Never the secret, nor the key id.
HANDOFF_HOOK = """\
printf '{"at": "%s", "key_fp": "%s", "rotation_id": "%s", "pid": %s}\\n' \\
  "$(date -u +%Y-%m-%dT%H:%M:%S.%N+00:00)" "$ROTATOR_KEY_FP" "$ROTATOR_ROTATION_ID" "$PPID" >> "$1"
"""
