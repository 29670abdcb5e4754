"""structlog configuration: JSON when not on a TTY (systemd, Kubernetes), readable on a TTY.

Two guards keep secrets out of logs: `Secret` renders as "[redacted]", and `redact` below replaces
the value of any secret-looking field and any known secret value (and full key id) found inside
any string, including exception messages and tracebacks: every format renders an exception to
plain text first (no frame locals, ever), then redacts, then renders the line. stdlib loggers
(apscheduler, httpx, hvac) go through the same processors.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

from rotator.model import REDACTED, SECRET_REGISTRY
from rotator.secret_fields import SECRET_FIELDS as _SECRET_FIELDS


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return SECRET_REGISTRY.scrub(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if str(k).lower() in _SECRET_FIELDS else _scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if value is None or isinstance(value, bool | int | float) or hasattr(value, "__structlog__"):
        return value
    # Any other object is rendered by its repr (as both renderers would), then scrubbed: an
    # exception or a record passed as a field must not carry a secret past the redactor.
    return SECRET_REGISTRY.scrub(repr(value))


def redact(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: mask secret-named fields and every known secret value anywhere in the event."""
    for key in list(event_dict):
        if key.lower() in _SECRET_FIELDS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


Format = Literal["auto", "json", "console"]


def configure(
    level: str = "info",
    fmt: Format = "auto",
    stream: Any = None,
    *,
    cache_loggers: bool | None = None,
) -> None:
    """Configure structlog and the stdlib root logger once, at program start.

    Level, format and stream live in the stdlib handler, so configuring again (a SIGHUP reload)
    reaches every logger, cached or not. `cache_loggers=True` (`rotator run`) lets each logger
    assemble itself once instead of at every call: safe in a process that configures only here
    and never swaps structlog's processors afterwards (nothing in the product does: progress goes
    to an observer, rotator/progress.py). A process that runs many commands and captures logs
    (the test suite: `capture_logs`, `reset_defaults`) must not cache, which is why it is not
    the default. None keeps the current setting.
    """
    out = stream if stream is not None else sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    # Tracebacks become plain text *before* `redact`, in both formats, so the redactor sees them.
    # The console renderer never formats an exception itself: its default (rich) prints the
    # locals of every frame, and a frame of the engine holds the keys it works on.
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    final: list[Any] = [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=(
            structlog.get_config()["cache_logger_on_first_use"]
            if cache_loggers is None
            else cache_loggers
        ),
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Request lines carry URLs; our URLs hold no secrets, but they are noise at INFO.
    for noisy in ("httpx", "httpcore", "hvac", "urllib3", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
