"""EPMD packets: byte-exact vectors, round trips, and malformed input.

The vectors are written out by hand from the ERTS distribution protocol
tables (and epmd_srv.c), independently of the encoder.
"""

from __future__ import annotations

from typing import Callable

import pytest

from mpactors.epmd import protocol as p
from mpactors.epmd.protocol import NodeInfo, ProtocolError

# ALIVE2_REQ for node "a", port 1234 (0x04d2), normal, tcp, versions 6/5, no extra.
ALIVE2_A = bytes([120, 0x04, 0xD2, 77, 0, 0, 6, 0, 5, 0, 1]) + b"a" + bytes([0, 0])
# PORT2_RESP for hidden node "bob", port 5000 (0x1388), versions 6/5, extra "xy".
PORT2_BOB = bytes([119, 0, 0x13, 0x88, 72, 0, 0, 6, 0, 5, 0, 3]) + b"bob" + bytes([0, 2]) + b"xy"


def test_frame_prefixes_the_two_byte_big_endian_length() -> None:
    assert p.frame(b"n") == b"\x00\x01n"
    assert p.frame(b"x" * 300) == b"\x01\x2c" + b"x" * 300


def test_frame_refuses_empty_and_oversized_bodies() -> None:
    with pytest.raises(ProtocolError):
        p.frame(b"")
    with pytest.raises(ProtocolError):
        p.frame(b"x" * (p.MAX_REQUEST_SIZE + 1))


def test_alive2_req_encodes_byte_exact() -> None:
    info = NodeInfo("a", 1234, extra=b"")
    assert p.encode_alive2_req(info) == ALIVE2_A
    assert p.frame(p.encode_alive2_req(info))[:2] == bytes([0, len(ALIVE2_A)])


def test_alive2_req_round_trips_with_hidden_type_and_extra() -> None:
    info = NodeInfo("n\u00f6de", 65535, p.NODE_TYPE_HIDDEN, 0, 6, 5, b"mpactors")
    decoded = p.decode_request(p.encode_alive2_req(info))
    assert decoded == p.Alive2Req(info)
    assert decoded.node.hidden  # type: ignore[union-attr]


def test_simple_requests_encode_byte_exact_and_round_trip() -> None:
    assert p.encode_port_please2_req("bob") == b"\x7abob"
    assert p.encode_names_req() == b"\x6e"
    assert p.encode_kill_req() == b"\x6b"
    assert p.decode_request(b"\x7abob") == p.PortPlease2Req("bob")
    assert p.decode_request(b"\x7abob\x00") == p.PortPlease2Req("bob")  # old NUL-terminated form
    assert p.decode_request(b"\x6e") == p.NamesReq()
    assert p.decode_request(b"\x6b") == p.KillReq()


def test_alive2_replies_encode_byte_exact_and_round_trip() -> None:
    assert p.encode_alive2_resp(0, 0x01020304) == bytes([118, 0, 1, 2, 3, 4])
    assert p.encode_alive2_resp(1, 99, extended=False) == bytes([121, 1, 0, 99])
    assert p.decode_alive2_resp(bytes([118, 0, 1, 2, 3, 4])) == p.Alive2Resp(0, 0x01020304)
    assert p.decode_alive2_resp(bytes([121, 0, 0, 3])) == p.Alive2Resp(0, 3)


def test_an_incomplete_alive2_reply_asks_for_more() -> None:
    assert p.decode_alive2_resp(b"") is None
    assert p.decode_alive2_resp(bytes([118, 0, 1])) is None
    assert p.decode_alive2_resp(bytes([121, 0])) is None


def test_port2_resp_encodes_byte_exact_and_round_trips() -> None:
    info = NodeInfo("bob", 5000, p.NODE_TYPE_HIDDEN, 0, 6, 5, b"xy")
    assert p.encode_port2_resp(info) == PORT2_BOB
    assert p.decode_port2_resp(PORT2_BOB) == info


def test_port2_resp_not_found_is_a_nonzero_result_alone() -> None:
    assert p.encode_port2_resp(None) == bytes([119, 1])
    assert p.decode_port2_resp(bytes([119, 1])) is None


def test_names_reply_encodes_byte_exact_and_round_trips() -> None:
    data = p.encode_names_resp(4369, [("a", 1234), ("b c", 7)])
    assert data == b"\x00\x00\x11\x11name a at port 1234\nname b c at port 7\n"
    assert p.decode_names_resp(data) == (4369, [("a", 1234), ("b c", 7)])
    assert p.decode_names_resp(b"\x00\x00\x11\x11") == (4369, [])


def test_kill_reply_is_ok_or_no() -> None:
    assert p.encode_kill_resp() == b"OK"
    assert p.encode_kill_resp(False) == b"NO"
    assert p.decode_kill_resp(b"OK") is True
    assert p.decode_kill_resp(b"NO") is False


def test_node_name_is_the_part_before_the_at_sign() -> None:
    assert p.node_name("a@host.example") == "a"
    assert p.node_name("a") == "a"


@pytest.mark.parametrize(
    "body",
    [
        b"",  # empty
        b"\x01",  # unknown code
        b"\xff" * 10,  # garbage
        ALIVE2_A[:8],  # truncated header
        ALIVE2_A[:-1],  # truncated Elen
        ALIVE2_A + b"!",  # extra byte not covered by Elen
        bytes([120, 0, 1, 77, 0, 0, 6, 0, 5, 0, 0, 0, 0]),  # empty name
        bytes([120, 0, 1, 77, 0, 0, 6, 0, 5, 0, 9]) + b"a" + bytes([0, 0]),  # Nlen past the end
        bytes([120, 0, 1, 77, 0, 0, 6, 0, 5, 0, 2]) + b"\xff\xfe" + bytes([0, 0]),  # not UTF-8
        bytes([120, 0, 1, 77, 0, 0, 6, 0, 5, 0, 2]) + b"a\x00" + bytes([0, 0]),  # NUL in name
        b"\x7a",  # PORT_PLEASE2 without a name
        b"\x6eX",  # NAMES with trailing bytes
        b"\x6b" * 2,  # KILL with trailing bytes
        b"\x6e" * (p.MAX_REQUEST_SIZE + 1),  # oversized
    ],
)
def test_malformed_requests_raise_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        p.decode_request(body)


@pytest.mark.parametrize(
    "decode, data",
    [
        (p.decode_alive2_resp, b"\x00\x00\x00\x00"),
        (p.decode_alive2_resp, bytes([118, 0, 1, 2, 3, 4, 5])),
        (p.decode_port2_resp, b""),
        (p.decode_port2_resp, bytes([42, 0])),
        (p.decode_port2_resp, PORT2_BOB[:-1]),
        (p.decode_port2_resp, PORT2_BOB[:6]),
        (p.decode_names_resp, b"\x00\x00"),
        (p.decode_names_resp, b"\x00\x00\x11\x11garbage\n"),
        (p.decode_names_resp, b"\x00\x00\x11\x11name a at port 12"),
        (p.decode_kill_resp, b""),
        (p.decode_kill_resp, b"YES"),
    ],
)
def test_malformed_replies_raise_protocol_error(decode: Callable[[bytes], object], data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(data)


@pytest.mark.parametrize(
    "info",
    [
        NodeInfo("", 1),
        NodeInfo("x" * 256, 1),
        NodeInfo("a\x00b", 1),
        NodeInfo("a", 70000),
        NodeInfo("a", 1, node_type=300),
        NodeInfo("a", 1, extra=b"x" * 70000),
    ],
)
def test_encoders_refuse_fields_that_do_not_fit(info: NodeInfo) -> None:
    with pytest.raises(ProtocolError):
        p.encode_alive2_req(info)


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)
