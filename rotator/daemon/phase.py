"""The daemon's phase, as /healthz, /readyz and /status report it."""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """Where the process is in its life; only RUNNING can be ready."""

    STARTING = "starting"  # waiting for Vault and Bybit: healthy, not ready
    RUNNING = "running"  # the scheduler runs the jobs
    STOPPING = "stopping"  # SIGTERM: the step in flight finishes, nothing new starts
