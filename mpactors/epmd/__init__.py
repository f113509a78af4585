"""The port mapper (epmd): a per-host phone book from node names to ports.

This package is the client API (see :mod:`mpactors.epmd.client`);
:mod:`mpactors.epmd.protocol` is the wire format and
:mod:`mpactors.epmd.daemon` the daemon, which ``python -m mpactors.epmd``
runs in the foreground.
"""

from __future__ import annotations

from .client import Registration as Registration
from .client import ensure_running as ensure_running
from .client import is_running as is_running
from .client import kill as kill
from .client import lookup as lookup
from .client import names as names
from .client import port_please as port_please
from .client import register as register
from .protocol import NodeInfo as NodeInfo
from .protocol import ProtocolError as ProtocolError

__all__ = [
    "Registration",
    "NodeInfo",
    "ProtocolError",
    "register",
    "port_please",
    "lookup",
    "names",
    "kill",
    "is_running",
    "ensure_running",
]
