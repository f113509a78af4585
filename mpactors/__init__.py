"""mpactors: Erlang's distribution model in Python.

A node is an OS process; every actor is a child OS process of its node with a
mailbox; named nodes that share a cookie form a peer-to-peer cluster.

    import mpactors

    with mpactors.Node("a"):
        pid = mpactors.spawn(lambda: mpactors.send(parent, mpactors.receive()))
"""
from __future__ import annotations

import logging

from .errors import AlreadyStarted as AlreadyStarted
from .errors import BadArg as BadArg
from .errors import CookieError as CookieError
from .errors import EpmdError as EpmdError
from .errors import MpactorsError as MpactorsError
from .errors import NodeError as NodeError
from .errors import NoProc as NoProc
from .errors import NotAlive as NotAlive
from .errors import ProcessExit as ProcessExit
from .errors import RemoteError as RemoteError
from .errors import Timeout as Timeout
from .messages import Crash as Crash
from .messages import Down as Down
from .messages import ExitSignal as ExitSignal
from .messages import NodeDown as NodeDown
from .messages import NodeUp as NodeUp
from .messages import Trace as Trace
from .genserver import GenServer as GenServer
from .node import Node as Node
from .pattern import ANY as ANY
from .pid import Pid as Pid
from .pid import Ref as Ref
from .pid import TimerRef as TimerRef
from .pid import parse_pid as parse_pid
from .primitives import demonitor as demonitor
from .primitives import disconnect_node as disconnect_node
from .primitives import cancel_timer as cancel_timer
from .primitives import exit as exit  # noqa: A004 - Erlang's name
from .primitives import flush as flush
from .primitives import get_cookie as get_cookie
from .primitives import link as link
from .primitives import make_ref as make_ref
from .primitives import monitor as monitor
from .primitives import monitor_node as monitor_node
from .primitives import monitor_nodes as monitor_nodes
from .primitives import node as node
from .primitives import nodes as nodes
from .primitives import ping as ping
from .primitives import process_info as process_info
from .primitives import processes as processes
from .primitives import read_timer as read_timer
from .primitives import receive as receive
from .primitives import register as register
from .primitives import registered as registered
from .primitives import self as self
from .primitives import send as send
from .primitives import send_after as send_after
from .primitives import send_interval as send_interval
from .primitives import set_cookie as set_cookie
from .primitives import spawn as spawn
from .primitives import spawn_link as spawn_link
from .primitives import spawn_monitor as spawn_monitor
from .primitives import trap_exit as trap_exit
from .primitives import unlink as unlink
from .primitives import unregister as unregister
from .primitives import whereis as whereis
from .supervisor import ChildSpec as ChildSpec
from .supervisor import Supervisor as Supervisor
from .tls import TLS as TLS

__version__ = "0.1.0"

__all__ = [
    "ANY", "AlreadyStarted", "BadArg", "ChildSpec", "CookieError", "Crash", "Down", "EpmdError", "ExitSignal", "GenServer",
    "MpactorsError", "Node", "NodeDown", "NodeError", "NodeUp", "NoProc", "NotAlive", "Pid",
    "ProcessExit", "Ref", "RemoteError", "TLS", "Timeout", "TimerRef", "Trace", "__version__", "demonitor", "global_registry", "introspect", "pg", "rpc",
    "disconnect_node", "exit", "flush", "get_cookie", "link", "make_ref", "monitor",
    "monitor_node", "monitor_nodes", "node", "nodes", "parse_pid", "ping",
    "process_info", "processes", "receive", "register", "registered", "self", "send",
    "set_cookie", "spawn", "spawn_link", "spawn_monitor", "Supervisor", "trap_exit", "unlink",
    "unregister", "whereis", "send_after", "send_interval", "cancel_timer", "read_timer",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())

from . import rpc as rpc  # noqa: E402 - needs the names above
from . import introspect as introspect  # noqa: E402
from . import global_registry as global_registry  # noqa: E402
from . import pg as pg  # noqa: E402


def __getattr__(name: str) -> object:
    """``mpactors.aio`` on first use: asyncio is imported only by programs that use it."""
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module 'mpactors' has no attribute {name!r}")
