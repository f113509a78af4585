"""The Erlang Port Mapper Daemon wire protocol: pure encode/decode, no I/O.

Used by :mod:`mpactors.epmd.client` (the ``erl_epmd`` side) and
:mod:`mpactors.epmd.daemon` (the ``epmd`` side). The layouts follow ERTS's
"Distribution Protocol" chapter and ``erts/epmd/src/epmd_srv.c``, so Erlang's
own ``epmd`` and ``epmd -names`` interoperate with ours. All integers are
big-endian.

Every *request* travels in a frame: a 2-byte length, then that many bytes::

    | 2   | Len     |
    | Len | Request |

Replies are not framed. Except after ALIVE2, the daemon closes the connection
once it has replied.

ALIVE2_REQ (register a node; the connection then stays open, and the
registration lives exactly as long as it does)::

    | 1   | 2      | 1        | 1        | 2          | 2         | 2     | Nlen     | 2     | Elen  |
    | 120 | PortNo | NodeType | Protocol | HighestVsn | LowestVsn | Nlen  | NodeName | Elen  | Extra |

    NodeType 77 = normal node, 72 = hidden node; Protocol 0 = TCP/IPv4.

ALIVE2_X_RESP (answer to an ALIVE2_REQ with HighestVsn >= 6; Result 0 = ok)::

    | 1   | 1      | 4        |
    | 118 | Result | Creation |

ALIVE2_RESP (the old answer, to HighestVsn < 6)::

    | 1   | 1      | 2        |
    | 121 | Result | Creation |

PORT_PLEASE2_REQ (look a node up by name)::

    | 1   | N        |
    | 122 | NodeName |

PORT2_RESP: Result 0 and the registered node's data, or a nonzero Result
alone (not registered)::

    | 1   | 1      | 2      | 1        | 1        | 2          | 2         | 2    | Nlen     | 2    | Elen  |
    | 119 | Result | PortNo | NodeType | Protocol | HighestVsn | LowestVsn | Nlen | NodeName | Elen | Extra |

NAMES_REQ (list registered nodes); the reply is the daemon's own port, then
one text line per node, until the daemon closes::

    | 1   |          | 4          | ...                               |
    | 110 |    ->    | EPMDPortNo | "name NAME at port PORT\\n" * n   |

KILL_REQ (stop the daemon); the reply is ``OK`` (stopping) or ``NO``
(refused)::

    | 1   |          | 2            |
    | 107 |    ->    | "OK" or "NO" |

Version numbers. mpactors nodes speak mpactors' own distribution protocol,
not Erlang's, but they register with HighestVsn 6 / LowestVsn 5, the range a
modern Erlang node announces: Erlang's ``epmd`` only answers with the 4-byte
creation of ALIVE2_X_RESP to HighestVsn >= 6, and tools that read the table
expect these values. ``Extra`` carries :data:`MPACTORS_EXTRA` so a lookup
can tell an mpactors node from an Erlang one.

Node names are the part of ``name@host`` before the ``@``, UTF-8 encoded,
1..255 characters, without NUL. Decoders raise :class:`ProtocolError` (a
``ValueError``) on malformed input.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Tuple, Union

__all__ = [
    "ProtocolError",
    "NodeInfo",
    "Alive2Req",
    "PortPlease2Req",
    "NamesReq",
    "KillReq",
    "Request",
    "Alive2Resp",
    "ALIVE2_REQ",
    "ALIVE2_RESP",
    "ALIVE2_X_RESP",
    "PORT_PLEASE2_REQ",
    "PORT2_RESP",
    "NAMES_REQ",
    "KILL_REQ",
    "NODE_TYPE_NORMAL",
    "NODE_TYPE_HIDDEN",
    "PROTOCOL_TCP_IPV4",
    "HIGHEST_VERSION",
    "LOWEST_VERSION",
    "MPACTORS_EXTRA",
    "MAX_REQUEST_SIZE",
    "MAX_NAME_SIZE",
    "frame",
    "node_name",
    "encode_alive2_req",
    "encode_port_please2_req",
    "encode_names_req",
    "encode_kill_req",
    "decode_request",
    "encode_alive2_resp",
    "decode_alive2_resp",
    "encode_port2_resp",
    "decode_port2_resp",
    "encode_names_resp",
    "decode_names_resp",
    "encode_kill_resp",
    "decode_kill_resp",
]

ALIVE2_REQ = 120
ALIVE2_RESP = 121
ALIVE2_X_RESP = 118
PORT_PLEASE2_REQ = 122
PORT2_RESP = 119
NAMES_REQ = 110
KILL_REQ = 107

NODE_TYPE_NORMAL = 77
NODE_TYPE_HIDDEN = 72
PROTOCOL_TCP_IPV4 = 0
HIGHEST_VERSION = 6
LOWEST_VERSION = 5
#: The ``Extra`` field mpactors nodes register with.
MPACTORS_EXTRA = b"mpactors"

#: Largest request body accepted (Erlang's epmd: 1024-byte input buffer).
MAX_REQUEST_SIZE = 4096
#: Longest node name, in characters (epmd_srv.c: at most 255 UTF-8 characters).
MAX_NAME_SIZE = 255
_MAX_NAME_BYTES = 4 * MAX_NAME_SIZE

_ALIVE2_HEAD = struct.Struct(">BHBBHHH")  # code port type proto high low nlen
_PORT2_HEAD = struct.Struct(">BBHBBHHH")  # code result port type proto high low nlen
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_NAMES_LINE = re.compile(rb"name (.+) at port (\d{1,5})")


class ProtocolError(ValueError):
    """Bytes that are not a well-formed EPMD packet (truncated, oversized, bad field)."""


class NodeInfo(NamedTuple):
    """One node's entry in the port mapper: what ALIVE2_REQ sends and PORT2_RESP returns."""

    name: str
    port: int
    node_type: int = NODE_TYPE_NORMAL
    protocol: int = PROTOCOL_TCP_IPV4
    highest_version: int = HIGHEST_VERSION
    lowest_version: int = LOWEST_VERSION
    extra: bytes = MPACTORS_EXTRA

    @property
    def hidden(self) -> bool:
        """True for a hidden node (NodeType 72)."""
        return self.node_type == NODE_TYPE_HIDDEN


@dataclass(frozen=True)
class Alive2Req:
    """Decoded ALIVE2_REQ: register ``node``."""

    node: NodeInfo


@dataclass(frozen=True)
class PortPlease2Req:
    """Decoded PORT_PLEASE2_REQ: look up ``name``."""

    name: str


@dataclass(frozen=True)
class NamesReq:
    """Decoded NAMES_REQ."""


@dataclass(frozen=True)
class KillReq:
    """Decoded KILL_REQ."""


Request = Union[Alive2Req, PortPlease2Req, NamesReq, KillReq]


class Alive2Resp(NamedTuple):
    """Decoded ALIVE2_X_RESP / ALIVE2_RESP: ``result`` 0 means registered."""

    result: int
    creation: int


# ---------------------------------------------------------------- helpers


def frame(body: bytes) -> bytes:
    """Prefix a request body with its 2-byte length."""
    if not 0 < len(body) <= MAX_REQUEST_SIZE:
        raise ProtocolError(f"request body of {len(body)} bytes is outside 1..{MAX_REQUEST_SIZE}")
    return _U16.pack(len(body)) + body


def node_name(node: str) -> str:
    """The part of ``name@host`` the port mapper knows (the whole string if no ``@``)."""
    return node.split("@", 1)[0]


def _encode_name(name: str) -> bytes:
    """UTF-8 bytes of a node name, checked as epmd_srv.c checks them."""
    _check_name(name)
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"node name {name!r} cannot be encoded as UTF-8") from None


def _check_name(name: str) -> None:
    if not 0 < len(name) <= MAX_NAME_SIZE:
        raise ProtocolError(f"node name must be 1..{MAX_NAME_SIZE} characters, not {len(name)}")
    if "\0" in name:
        raise ProtocolError("node name contains a NUL character")


def _decode_name(raw: bytes) -> str:
    if len(raw) > _MAX_NAME_BYTES:
        raise ProtocolError(f"node name of {len(raw)} bytes is too long")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"node name {raw[:80]!r} is not UTF-8") from None
    _check_name(name)
    return name


def _check_u16(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ProtocolError(f"{what} must fit in 2 bytes, not {value!r}")


def _check_u8(value: int, what: str) -> None:
    if not 0 <= value <= 0xFF:
        raise ProtocolError(f"{what} must fit in 1 byte, not {value!r}")


def _encode_node_tail(info: NodeInfo) -> Tuple[bytes, bytes]:
    """Checked ``(name, extra)`` bytes of ``info`` (shared by ALIVE2_REQ and PORT2_RESP)."""
    _check_u16(info.port, "port")
    _check_u8(info.node_type, "node type")
    _check_u8(info.protocol, "protocol")
    _check_u16(info.highest_version, "highest version")
    _check_u16(info.lowest_version, "lowest version")
    _check_u16(len(info.extra), "extra length")
    return _encode_name(info.name), bytes(info.extra)


def _decode_node_tail(data: bytes, offset: int, nlen: int, what: str) -> Tuple[str, bytes]:
    """Read ``NodeName | Elen | Extra`` at ``offset``; nothing may follow."""
    end = offset + nlen
    if len(data) < end + 2:
        raise ProtocolError(f"{what} truncated in the node name")
    name = _decode_name(data[offset:end])
    (elen,) = _U16.unpack_from(data, end)
    extra = data[end + 2 :]
    if len(extra) != elen:
        raise ProtocolError(f"{what} extra field is {len(extra)} bytes, Elen says {elen}")
    return name, extra


# ---------------------------------------------------------------- requests


def encode_alive2_req(info: NodeInfo) -> bytes:
    """ALIVE2_REQ body for ``info`` (frame it with :func:`frame`)."""
    name, extra = _encode_node_tail(info)
    head = _ALIVE2_HEAD.pack(
        ALIVE2_REQ, info.port, info.node_type, info.protocol, info.highest_version, info.lowest_version, len(name)
    )
    return head + name + _U16.pack(len(extra)) + extra


def encode_port_please2_req(name: str) -> bytes:
    """PORT_PLEASE2_REQ body for node ``name``."""
    return bytes([PORT_PLEASE2_REQ]) + _encode_name(name)


def encode_names_req() -> bytes:
    """NAMES_REQ body."""
    return bytes([NAMES_REQ])


def encode_kill_req() -> bytes:
    """KILL_REQ body."""
    return bytes([KILL_REQ])


def decode_request(body: bytes) -> Request:
    """Decode one request body (the bytes after the 2-byte length)."""
    if not body:
        raise ProtocolError("empty request")
    if len(body) > MAX_REQUEST_SIZE:
        raise ProtocolError(f"request of {len(body)} bytes exceeds {MAX_REQUEST_SIZE}")
    code = body[0]
    if code == ALIVE2_REQ:
        return Alive2Req(_decode_alive2_req(body))
    if code == PORT_PLEASE2_REQ:
        # Old Erlang clients NUL-terminate the name; epmd_srv.c skips it too.
        raw = body[1:-1] if body.endswith(b"\0") else body[1:]
        return PortPlease2Req(_decode_name(raw))
    if code in (NAMES_REQ, KILL_REQ):
        if len(body) != 1:
            raise ProtocolError(f"request {code} carries {len(body) - 1} unexpected bytes")
        return NamesReq() if code == NAMES_REQ else KillReq()
    raise ProtocolError(f"unknown request code {code}")


def _decode_alive2_req(body: bytes) -> NodeInfo:
    if len(body) < _ALIVE2_HEAD.size + 1 + 2:
        raise ProtocolError(f"ALIVE2_REQ of {len(body)} bytes is too short")
    _, port, node_type, protocol, high, low, nlen = _ALIVE2_HEAD.unpack_from(body)
    name, extra = _decode_node_tail(body, _ALIVE2_HEAD.size, nlen, "ALIVE2_REQ")
    return NodeInfo(name, port, node_type, protocol, high, low, extra)


# ---------------------------------------------------------------- replies


def encode_alive2_resp(result: int, creation: int, *, extended: bool = True) -> bytes:
    """ALIVE2_X_RESP (4-byte creation) or, with ``extended=False``, ALIVE2_RESP (2-byte)."""
    _check_u8(result, "result")
    if extended:
        if not 0 <= creation <= 0xFFFFFFFF:
            raise ProtocolError(f"creation must fit in 4 bytes, not {creation!r}")
        return bytes([ALIVE2_X_RESP, result]) + _U32.pack(creation)
    _check_u16(creation, "creation")
    return bytes([ALIVE2_RESP, result]) + _U16.pack(creation)


def decode_alive2_resp(data: bytes) -> Optional[Alive2Resp]:
    """Decode an ALIVE2_X_RESP or ALIVE2_RESP; None while ``data`` is still incomplete.

    The registering connection stays open, so the reply cannot be read to
    end-of-file; the caller feeds what it has until this returns a value.
    """
    if not data:
        return None
    if data[0] == ALIVE2_X_RESP:
        size, unpack = 6, _U32.unpack_from
    elif data[0] == ALIVE2_RESP:
        size, unpack = 4, _U16.unpack_from
    else:
        raise ProtocolError(f"expected ALIVE2_X_RESP ({ALIVE2_X_RESP}) or ALIVE2_RESP, got code {data[0]}")
    if len(data) < size:
        return None
    if len(data) > size:
        raise ProtocolError(f"{len(data) - size} unexpected bytes after the ALIVE2 reply")
    return Alive2Resp(data[1], unpack(data, 2)[0])


def encode_port2_resp(info: Optional[NodeInfo], *, result: int = 1) -> bytes:
    """PORT2_RESP: the node's data, or (``info`` None) just the nonzero ``result``."""
    if info is None:
        _check_u8(result, "result")
        if result == 0:
            raise ProtocolError("a not-found PORT2_RESP needs a nonzero result")
        return bytes([PORT2_RESP, result])
    name, extra = _encode_node_tail(info)
    head = _PORT2_HEAD.pack(
        PORT2_RESP, 0, info.port, info.node_type, info.protocol, info.highest_version, info.lowest_version, len(name)
    )
    return head + name + _U16.pack(len(extra)) + extra


def decode_port2_resp(data: bytes) -> Optional[NodeInfo]:
    """Decode a complete PORT2_RESP; None when the node is not registered."""
    if len(data) < 2:
        raise ProtocolError(f"PORT2_RESP of {len(data)} bytes is too short")
    if data[0] != PORT2_RESP:
        raise ProtocolError(f"expected PORT2_RESP ({PORT2_RESP}), got code {data[0]}")
    if data[1] != 0:
        return None
    if len(data) < _PORT2_HEAD.size + 1 + 2:
        raise ProtocolError(f"PORT2_RESP of {len(data)} bytes is too short")
    _, _, port, node_type, protocol, high, low, nlen = _PORT2_HEAD.unpack_from(data)
    name, extra = _decode_node_tail(data, _PORT2_HEAD.size, nlen, "PORT2_RESP")
    return NodeInfo(name, port, node_type, protocol, high, low, extra)


def encode_names_resp(epmd_port: int, nodes: List[Tuple[str, int]]) -> bytes:
    """NAMES reply: the daemon's port, then ``name NAME at port PORT`` lines."""
    lines = b"".join(b"name %s at port %d\n" % (_encode_name(name), port) for name, port in nodes)
    return _U32.pack(epmd_port) + lines


def decode_names_resp(data: bytes) -> Tuple[int, List[Tuple[str, int]]]:
    """Decode a complete NAMES reply into ``(epmd_port, [(name, port), ...])``."""
    if len(data) < 4:
        raise ProtocolError(f"NAMES reply of {len(data)} bytes is too short")
    (epmd_port,) = _U32.unpack_from(data)
    text = data[4:]
    if text and not text.endswith(b"\n"):
        raise ProtocolError("NAMES reply ends in the middle of a line")
    nodes = []
    for line in text.splitlines():
        match = _NAMES_LINE.fullmatch(line)
        if match is None:
            raise ProtocolError(f"malformed NAMES line {line[:80]!r}")
        nodes.append((_decode_name(match.group(1)), int(match.group(2))))
    return epmd_port, nodes


def encode_kill_resp(ok: bool = True) -> bytes:
    """KILL reply: ``OK`` when the daemon stops, ``NO`` when it refuses."""
    return b"OK" if ok else b"NO"


def decode_kill_resp(data: bytes) -> bool:
    """True for ``OK``, False for ``NO``."""
    if data == b"OK":
        return True
    if data == b"NO":
        return False
    raise ProtocolError(f"expected 'OK' or 'NO' in reply to KILL_REQ, got {data[:80]!r}")
