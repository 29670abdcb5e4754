"""The simulator's key event log: every key create and delete, in order, for history checkers.

A multi-replica test asks afterwards "was key K alive at instant T?" and "who deleted it, and
when?". The request log cannot answer (it never holds key ids); this log does, with a global
sequence number (the true order, taken under the simulator's lock), the simulator's clock (what
Bybit would say) and the host's wall time (to line up with Vault's `created_time` and with files
other processes wrote). Key ids are public identifiers here, as in `/_sim/state`; no secret is kept.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from rotator.simulator.keys import rfc3339


class KeyEventKind(enum.StrEnum):
    CREATED = "created"
    DELETED = "deleted"


class Actor(enum.StrEnum):
    """Who caused the event."""

    SEED = "seed"  # seeded (`add_key`, a seed file): as if made earlier in the web UI
    MASTER = "master"  # create-sub-api, or delete-sub-api by a master key with `apikey`
    SELF = "self"  # delete-sub-api signed by the sub key itself


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyEvent:
    seq: int  # 1, 2, 3, ... in the order the simulator applied the events
    kind: KeyEventKind
    time: datetime  # the simulator's clock (with skew)
    wall_time: datetime  # the host's wall clock, microseconds
    api_key: str
    key_fp: str
    uid: int
    note: str
    by: Actor

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "kind": self.kind.value,
            "time": rfc3339(self.time),
            "wallTime": self.wall_time.isoformat(),
            "apiKey": self.api_key,
            "keyFp": self.key_fp,
            "uid": self.uid,
            "note": self.note,
            "by": self.by.value,
        }


def wall_now() -> datetime:
    """The host's wall time: the log's link to other processes, never the simulated time."""
    return datetime.now(UTC)
