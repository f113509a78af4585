"""Nodes refuse peers they cannot talk to, with a clear reason, before any message.

The handshake carries the protocol version (in the first bytes), the pickle
protocol and the Python version (in the hello). A node of the next protocol
version, or with another pickle protocol, is simulated by patching those
values in a node subprocess; a peer on another Python minor version by
patching the version it announces (the real thing, Python 3.9 against 3.13,
is in ``test_mixed_versions.py``).
"""
from __future__ import annotations

import pytest
from nodes import (  # noqa: F401 - cluster and cookie are fixtures
    cluster,
    cookie,
    echo,
    local_node,
    run_node,
)
from support import SHORT_TIMEOUT

import mpactors
from mpactors.dist import PROTOCOL_VERSION

pytestmark = pytest.mark.usefixtures("cluster")

NEXT_PROTOCOL = f"""
import mpactors.dist._handshake
mpactors.dist._handshake.PROTOCOL_VERSION = {PROTOCOL_VERSION + 1}
mpactors.dist._handshake.MAGIC = b"MPACTORS{PROTOCOL_VERSION + 1} "
"""


def test_a_node_of_the_next_protocol_version_is_refused_with_a_clear_message_on_both_sides() -> None:
    with local_node() as a:
        dial_us = NEXT_PROTOCOL + f"import logging\nlogging.getLogger('t').info('ping: %s', mpactors.ping({a.name!r}))\n"
        with run_node(code=dial_us) as b:
            # b dialled us: we refused it before authentication, saying why, and b logged our reason
            b.wait_log("ping: pang")
            b.wait_log(rf"cannot connect to {a.name}: .*refused the connection: protocol version mismatch: "
                       rf"peer speaks MPACTORS{PROTOCOL_VERSION + 1}, we speak MPACTORS{PROTOCOL_VERSION}")
            # and the other way: b refuses our dial the same way
            assert mpactors.ping(b.name) == "pang"
            b.wait_log(rf"rejected: protocol version mismatch: peer speaks MPACTORS{PROTOCOL_VERSION}, "
                       rf"we speak MPACTORS{PROTOCOL_VERSION + 1}")
            assert not mpactors.nodes()


def test_a_node_writing_another_pickle_protocol_is_refused_naming_both_protocols() -> None:
    code = "from mpactors.dist import _compat\n_compat.LOCAL['pickle'] = 99\n"
    with local_node(), run_node(code=code) as b:
        assert mpactors.ping(b.name) == "pang"
        b.wait_log(r"rejected: pickle protocol mismatch: "
                   r"Python [\d.]+ writes protocol \d, this node \(Python [\d.]+\) protocol 99")
        assert not mpactors.nodes()


def test_code_sent_by_value_to_another_python_minor_version_is_refused_at_the_caller() -> None:
    code = "from mpactors.dist import _compat\n_compat.LOCAL['python'] = [3, 99, 0]\n"
    with local_node(), run_node(code=code) as b:
        assert mpactors.ping(b.name) == "pong"
        with pytest.raises(mpactors.BadArg, match=rf"cannot send code by value to {b.name}: it runs Python 3\.99\.0"):
            mpactors.spawn(lambda: None, node=b.name)
        with pytest.raises(mpactors.BadArg, match="bytecode differs between Python minor versions"):
            mpactors.rpc.call(b.name, lambda: 1, timeout=SHORT_TIMEOUT)
        pid = mpactors.spawn(echo, node=b.name)  # importable: by reference, fine
        mpactors.send(pid, (mpactors.self(), "hi"))
        assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("echo", pid, "hi")
        assert mpactors.rpc.call(b.name, "mpactors:node", timeout=SHORT_TIMEOUT) == b.name
        mpactors.exit(pid, "kill")


def test_code_sent_by_value_to_the_same_python_minor_version_still_works() -> None:
    with local_node(), run_node(importable=False) as b:
        assert mpactors.rpc.call(b.name, lambda: 6 * 7, timeout=SHORT_TIMEOUT) == 42
