"""The one exception an endpoint or a pipeline check raises: a Bybit business error.

Its own module because both the pipeline (`core.py`) and the endpoints (`endpoints.py`) raise it
and `core.py` imports `endpoints.py`.
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]


class BybitError(Exception):
    """A business error: HTTP 200, `retCode` != 0, `result: {}`."""

    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(f"{ret_code} {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


__all__ = ["BybitError", "JsonObject"]
