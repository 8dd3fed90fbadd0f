"""The Bybit-compatible server behind ``bybitmon serve``.

* :mod:`.sources`: where frames come from (a simulated market or a file) and the true book;
* :mod:`.faults`: the fault kinds, the plan grammar and the sans-I/O wire corruption;
* :mod:`.budget`: caps on connections and unsent bytes, the snapshot resend rate limit;
* :mod:`.injector`: drop/stall/reject/inject and fault plans on a running server;
* :mod:`.rest`: the REST endpoints of instrument discovery (instruments-info, tickers), sans-I/O;
* :mod:`.session`: one connection's protocol rules, sans-I/O (acks, limits, refusals, pong);
* :mod:`.app`: the websockets glue (handshake, fan-out, housekeeping) and ``run_serve``.
"""

from .app import BybitServer
from .run import banner, fault_summary, run_serve
from .budget import Budget
from .faults import FAULT_KINDS, INJECT_KINDS, FaultKind, FaultPlan
from .session import Outcome, Session
from .sources import FileSource, SimulatedSource

__all__ = [
    "BybitServer",
    "Budget",
    "run_serve",
    "banner",
    "fault_summary",
    "FaultKind",
    "FaultPlan",
    "FAULT_KINDS",
    "INJECT_KINDS",
    "Session",
    "Outcome",
    "SimulatedSource",
    "FileSource",
]
