"""A local Bybit V5 API-key service: a real HTTP server faithful to the reference, on a clock
the caller controls, with fault injection. Product code (used by `rotator simulate`, the demo and
the tests); the core never imports it. See docs/simulator.md."""

from rotator.simulator.core import BybitError, HttpReply, HttpRequest, SeededKey, Simulator
from rotator.simulator.faults import Fault, FaultKind, Faults
from rotator.simulator.keys import KeyStatus, KeyView
from rotator.simulator.options import SimulatorOptions
from rotator.simulator.requestlog import RequestLogEntry
from rotator.simulator.server import SimulatorServer

__all__ = [
    "BybitError",
    "Fault",
    "FaultKind",
    "Faults",
    "HttpReply",
    "HttpRequest",
    "KeyStatus",
    "KeyView",
    "RequestLogEntry",
    "SeededKey",
    "Simulator",
    "SimulatorOptions",
    "SimulatorServer",
]
