"""The router pipe: how a local process addresses a message to another node.

Every local process (actor or the node's main process) writes its remote
sends into one pipe of its node, framed like a mailbox (``mailbox.py``); the
distribution layer's event loop reads them and hands each body, unchanged,
to the connection for that node. The core defines the record, the
distribution layer carries it; the body is the frame body of
:mod:`mpactors.dist._wire`::

    field      size       meaning
    kind       1 (B)      MSG (to a pid) or NAMED (to a registered name)
    n          2 (<H)     length of the node name
    node       n          destination node, utf-8
    body       rest       MSG:   <I id><I creation> + pickled message
                          NAMED: <H k> name (utf-8, k bytes) + pickled message
"""
from __future__ import annotations

import struct
from typing import Any

from ..pid import Pid

__all__ = ["MSG", "NAMED", "ROUTE", "MSG_HDR", "NAME_HDR", "route_frame", "route_head"]

MSG, NAMED = 1, 2
ROUTE = struct.Struct("<BH")
MSG_HDR = struct.Struct("<II")
NAME_HDR = struct.Struct("<H")


def route_frame(dest: Any, payload: bytes) -> bytes:
    """What a local process writes into its node's router pipe to reach ``dest``.

    ``dest`` is a remote :class:`Pid` or ``(name, node)``; ``payload`` the
    pickled message.
    """
    return route_head(dest) + payload


def route_head(dest: Any) -> bytes:
    """The record's head (everything before the pickled message): ``MailboxWriter.put(payload, head=...)``.

    The writer copies head and message into its ring one after the other: a
    large message is not joined to its head first.
    """
    if type(dest) is Pid:
        node = dest.node.encode()
        return ROUTE.pack(MSG, len(node)) + node + MSG_HDR.pack(dest.id, dest.creation)
    name, where = dest
    node, key = where.encode(), name.encode()
    return ROUTE.pack(NAMED, len(node)) + node + NAME_HDR.pack(len(key)) + key
