"""What the simulator remembers of each /v5 request: enough to assert on, never a secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotator.simulator.keys import rfc3339

if TYPE_CHECKING:
    from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestLogEntry:
    time: datetime  # the simulator's clock (with skew) when the request arrived
    method: str
    path: str  # without the query string (which may carry a cursor, never a secret anyway)
    http_status: int  # 0 when no reply was sent (hang, lost response)
    ret_code: int | None  # None for non-JSON replies (5xx faults, hangs)
    key_fp: str | None  # fingerprint of X-BAPI-API-KEY, never the key itself
    fault: str | None = None  # the fault kind that shaped this reply, if any

    def to_json(self) -> dict[str, object]:
        return {
            "time": rfc3339(self.time),
            "method": self.method,
            "path": self.path,
            "httpStatus": self.http_status,
            "retCode": self.ret_code,
            "keyFp": self.key_fp,
            "fault": self.fault,
        }
