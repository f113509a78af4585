"""The frames on an established node-to-node connection.

Every ``send_bytes`` on a connection (``multiprocessing.connection``'s own
``!i`` length prefix, then the batch) carries one or more frames, each
``<B kind><I length>`` followed by ``length`` bytes of body::

    kind      value  body
    MSG       1      <I id><I creation> + pickled message      (to a pid)
    NAMED     2      <H n> name (utf-8, n bytes) + pickled msg (to a registered name)
    CTRL      3      pickled tuple, first item the verb (see dist._control):
                     link, unlink, exit, monitor, demonitor, down, trace,
                     spawn, info, reply, peers
    TICK      4      empty                                     (keeps an idle link alive)

MSG and NAMED bodies are written by the sending process itself into its
node's router pipe (:mod:`mpactors._core._route`) and forwarded unchanged.
A creation of 0 in a MSG frame means "this incarnation" (a pid typed as text).
A frame longer than ``MAX_FRAME`` ends the connection.
"""
from __future__ import annotations

import struct

from .. import _codec
from .._core._route import MSG, MSG_HDR, NAME_HDR, NAMED, ROUTE

__all__ = ["MSG", "NAMED", "CTRL", "TICK", "FRAME", "MSG_HDR", "NAME_HDR", "ROUTE", "LEN", "MAX_FRAME"]

CTRL, TICK = 3, 4
FRAME = struct.Struct("<BI")
LEN = struct.Struct("!i")  # multiprocessing.connection's own length prefix
MAX_FRAME = _codec.MAX_MESSAGE + 64
