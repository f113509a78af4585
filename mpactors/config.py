"""Environment variables, paths and named default timeouts (in seconds).

Every other module reads settings through here, so the names a user can set
are all in one place:

* ``MPACTORS_HOME`` - state directory (logs), default ``~/.mpactors``;
* ``MPACTORS_COOKIE`` - the cluster cookie, when no ``cookie=`` is given;
* ``MPACTORS_EPMD_PORT`` - the port mapper's TCP port, default 4369;
* ``MPACTORS_START_METHOD`` - default start method for actor processes;
* ``MPACTORS_TLS_CERT``, ``MPACTORS_TLS_KEY``, ``MPACTORS_TLS_CA``,
  ``MPACTORS_TLS_SERVER_NAME`` - TLS between nodes, when no ``tls=`` is given.
* ``MPACTORS_PORT_RANGE`` (``LO-HI``), ``MPACTORS_INTERFACE``, ``MPACTORS_DIST_PORT``,
  ``MPACTORS_SEEDS`` (comma separated) - where a node listens and whom it keeps
  connected to, when ``Node(...)`` is not given them (:mod:`mpactors.dist._listen`);
* ``MPACTORS_SHUTDOWN_TIMEOUT`` - seconds a graceful stop (SIGTERM,
  ``Node.stop()``) waits for supervisors before the rest is killed, default 10;
* ``MPACTORS_STACK_DUMP_SIGNAL`` - a signal name (``USR1``): on it, nodes and
  actors write every thread's Python stack to stderr (``faulthandler``); the
  pytest plugin :mod:`mpactors.testing` sets it to diagnose hung tests.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional

__all__ = [
    "EPMD_DEFAULT_PORT",
    "EPMD_TIMEOUT",
    "CONNECT_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "STOP_TIMEOUT",
    "KILL_TIMEOUT",
    "STOP_GRACE",
    "TERM_TIMEOUT",
    "CALL_TIMEOUT",
    "home",
    "log_dir",
    "epmd_port",
    "cookie_file",
    "env_cookie",
    "start_method",
    "env_tls",
    "stack_dump_signal",
    "SHUTDOWN_TIMEOUT",
    "shutdown_timeout",
    "env_deploy",
]

#: The port mapper's well-known port (Erlang's epmd uses the same).
EPMD_DEFAULT_PORT = 4369
#: Every wait on the port mapper (erl_epmd waits 10 s).
EPMD_TIMEOUT = 10.0
#: Opening a TCP connection to another node.
CONNECT_TIMEOUT = 5.0
#: The whole node-to-node handshake, authentication included.
HANDSHAKE_TIMEOUT = 5.0
#: How long ``Node.stop()`` waits for actors to end before killing them.
STOP_TIMEOUT = 1.0
#: How long ``Node.stop()`` waits for SIGKILLed actors to be reaped.
KILL_TIMEOUT = 2.0
#: Slack on top of those two before ``Node.stop()`` gives up on its kernel.
STOP_GRACE = 5.0
#: How long an actor told to exit by a signal has before it is SIGKILLed.
TERM_TIMEOUT = 1.0
#: Default timeout of synchronous calls (GenServer.call, process_info).
CALL_TIMEOUT = 5.0


def home() -> Path:
    """``$MPACTORS_HOME``, default ``~/.mpactors``."""
    return Path(os.environ.get("MPACTORS_HOME") or Path.home() / ".mpactors")


def log_dir() -> Path:
    """Where detached nodes write their logs."""
    return home() / "logs"


def epmd_port() -> int:
    """``$MPACTORS_EPMD_PORT``, default 4369."""
    return int(_env_number("MPACTORS_EPMD_PORT", EPMD_DEFAULT_PORT, int, "a port number",
                           lambda port: 0 < port < 65536, "in 1..65535"))


def _env_number(var: str, default: float, parse: Callable[[str], float], what: str,
                ok: Callable[[float], bool], rule: str) -> float:
    """``$var`` parsed with ``parse``; ``default`` when unset; ValueError naming ``var`` when bad."""
    value = os.environ.get(var)
    if not value:
        return default
    try:
        number = parse(value)
    except ValueError:
        raise ValueError(f"{var} must be {what}, not {value!r}") from None
    if not ok(number):
        raise ValueError(f"{var} must be {rule}, not {value}")
    return number


def cookie_file() -> Path:
    """``~/.mpactors.cookie``."""
    return Path.home() / ".mpactors.cookie"


def env_cookie() -> Optional[str]:
    """``$MPACTORS_COOKIE`` or None."""
    return os.environ.get("MPACTORS_COOKIE") or None


def start_method() -> Optional[str]:
    """``$MPACTORS_START_METHOD`` or None (the node picks its default)."""
    return os.environ.get("MPACTORS_START_METHOD") or None


def env_tls() -> Dict[str, Optional[str]]:
    """``$MPACTORS_TLS_CERT``, ``_KEY``, ``_CA``, ``_SERVER_NAME`` as ``cert``, ``key``, ``ca``, ``server_name`` (None when unset)."""
    return {k: os.environ.get(f"MPACTORS_TLS_{k.upper()}") or None for k in ("cert", "key", "ca", "server_name")}


def stack_dump_signal() -> Optional[str]:
    """``$MPACTORS_STACK_DUMP_SIGNAL`` (a name such as ``USR1``) or None."""
    return os.environ.get("MPACTORS_STACK_DUMP_SIGNAL") or None


#: Default of ``MPACTORS_SHUTDOWN_TIMEOUT``: a graceful stop's time before the rest is killed.
SHUTDOWN_TIMEOUT = 10.0


def shutdown_timeout() -> float:
    """``$MPACTORS_SHUTDOWN_TIMEOUT`` (seconds, >= 0), default :data:`SHUTDOWN_TIMEOUT`."""
    return _env_number("MPACTORS_SHUTDOWN_TIMEOUT", SHUTDOWN_TIMEOUT, float, "a number of seconds",
                       lambda seconds: seconds >= 0, ">= 0")


def env_deploy() -> Dict[str, Optional[str]]:
    """``$MPACTORS_PORT_RANGE``, ``_INTERFACE``, ``_DIST_PORT``, ``_SEEDS`` as ``port_range``, ``interface``, ``dist_port``, ``seeds`` (None when unset)."""
    return {k: os.environ.get(f"MPACTORS_{k.upper()}") or None for k in ("port_range", "interface", "dist_port", "seeds")}
