"""`rotator run` caches its loggers (rotator/logs.py): configuring again, as a SIGHUP reload does,
keeps the cache and still reaches a logger cached before, through the new level and stream."""

from __future__ import annotations

import io
import json
import logging

import structlog
from rotator import logs


def test_a_reload_keeps_the_cache_and_reaches_cached_loggers() -> None:
    """Cached at start; a second configure (no cache_loggers) keeps caching; the cached logger
    writes to the new stream at the new level."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        first, second = io.StringIO(), io.StringIO()
        logs.configure("info", "json", stream=first, cache_loggers=True)
        assert structlog.get_config()["cache_logger_on_first_use"] is True
        log = structlog.get_logger("tests.caching")
        log.info("cache.first")
        logs.configure("warning", "json", stream=second)
        assert structlog.get_config()["cache_logger_on_first_use"] is True
        log.info("cache.dropped")
        log.warning("cache.second")
        assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == [
            "cache.first"
        ]
        assert [json.loads(line)["event"] for line in second.getvalue().splitlines()] == [
            "cache.second"
        ]
        logs.configure("info", "json", stream=second, cache_loggers=False)
        assert structlog.get_config()["cache_logger_on_first_use"] is False
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        structlog.reset_defaults()
