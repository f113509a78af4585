"""Cookies and hostile input at a node's listening port (SPEC "Node to node", "Guarantees", "Cookie").

A wrong cookie, a client that says nothing, and garbage bytes each get one
logged line naming the peer ("Connection attempt from <address> rejected"),
and service to everyone else goes on. Cookies come from ``MPACTORS_COOKIE`` or
``cookie=``; ``~/.mpactors.cookie`` is never touched.
"""
from __future__ import annotations

import os
import pickle
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest
from nodes import NodeProc, cluster, cookie, echo, local_node, run_node, unique_name  # noqa: F401 - fixtures
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

import mpactors
from mpactors import ANY, NodeError, epmd
from mpactors.dist import PROTOCOL_VERSION

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("cluster")]

REJECTED = r"Connection attempt from {address} rejected"


def listen_address(node: NodeProc) -> tuple:
    port = epmd.port_please(node.alive_name)
    assert port is not None
    return ("127.0.0.1", port)


def rejected(address: str) -> str:
    return REJECTED.format(address=re.escape(address))


def assert_serves(node: NodeProc) -> None:
    """``node`` still answers this (right-cookie) node: ping, a call and an actor round trip."""
    assert mpactors.ping(node.name) == "pong"
    assert node.call("mpactors.node()") == node.name
    pid = mpactors.spawn(echo, node=node.name)
    mpactors.send(pid, (mpactors.self(), "still served"))
    assert mpactors.receive(("echo", pid, ANY), timeout=SHORT_TIMEOUT)[2] == "still served"
    mpactors.send(pid, "stop")


# ---------------------------------------------------------------- cookies


def test_a_node_with_a_wrong_cookie_gets_pang_and_is_logged_while_others_keep_working() -> None:
    with run_node() as b, local_node():
        assert mpactors.ping(b.name) == "pong"  # a right-cookie peer, connected first
        with run_node(cookie="not-the-cluster-cookie", code=f"print('ping', mpactors.ping({b.name!r}))") as w:
            assert re.search(r"^ping pang$", w.stdout(), re.MULTILINE), w.stdout()
            b.wait_log(r"Connection attempt from 127\.0\.0\.1:\d+ rejected")
            assert mpactors.nodes() == [b.name]
            assert_serves(b)
            assert b.call("mpactors.nodes()") == [mpactors.node()]  # w never made it in
            assert w.name not in b.call("mpactors.nodes()")


def test_this_node_with_a_wrong_cookie_gets_pang_and_the_target_logs_our_address(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_node() as b:
        monkeypatch.setenv("MPACTORS_COOKIE", "some-other-cookie")
        with local_node():
            assert mpactors.ping(b.name) == "pang"
            assert mpactors.nodes() == []
            assert mpactors.ping(b.name) == "pang"  # and again: nothing half-open was left
        text = b.wait_log(r"Connection attempt from (127\.0\.0\.1:\d+) rejected").group(0)
        assert "some-other-cookie" not in b.log_text() and "mpactors-test-cookie" not in b.log_text(), text


def test_set_cookie_for_one_node_lets_this_node_reach_a_node_with_another_cookie() -> None:
    with run_node(cookie="cookie-of-b") as b, run_node() as c, local_node():
        assert mpactors.ping(b.name) == "pang"
        mpactors.set_cookie("cookie-of-b", b.name)
        assert bytes(mpactors.get_cookie(b.name)) == b"cookie-of-b"
        assert bytes(mpactors.get_cookie()) == b"mpactors-test-cookie"  # the node's own is unchanged
        assert mpactors.ping(b.name) == "pong"
        assert_serves(b)
        assert mpactors.ping(c.name) == "pong"  # others still use the node's cookie
        assert_serves(c)


def test_set_cookie_changes_the_cookie_this_node_uses_for_everyone() -> None:
    with run_node(cookie="new-cluster-cookie") as b, local_node():
        assert mpactors.ping(b.name) == "pang"
        mpactors.set_cookie("new-cluster-cookie")
        assert bytes(mpactors.get_cookie()) == b"new-cluster-cookie"
        assert mpactors.ping(b.name) == "pong"


def test_a_node_accepts_a_peer_it_has_a_per_node_cookie_for() -> None:
    # b uses a special cookie towards us only: we connect with our own node cookie.
    with local_node() as a:
        code = f"mpactors.set_cookie('just-for-a', {a.name!r})"
        with run_node(cookie="cookie-of-b", code=code) as b:
            assert mpactors.ping(b.name) == "pang"
            mpactors.set_cookie("just-for-a")
            assert mpactors.ping(b.name) == "pong"
            assert b.call("mpactors.nodes()") == [a.name]


# ---------------------------------------------------------------- hostile clients


@pytest.fixture
def raw_clients() -> Iterator[List[socket.socket]]:
    socks: List[socket.socket] = []
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


def test_a_client_that_connects_and_sends_nothing_does_not_block_a_ping(
    raw_clients: List[socket.socket]
) -> None:
    # b gives a silent client 10 s (config.HANDSHAKE_TIMEOUT is read at each accept).
    # Ordering, not timing, shows that they blocked nothing: the ping is
    # answered while b still holds every silent connection open.
    with run_node(code="import mpactors.config\nmpactors.config.HANDSHAKE_TIMEOUT = 10.0") as b, local_node():
        for _ in range(10):
            raw_clients.append(socket.create_connection(listen_address(b), timeout=SHORT_TIMEOUT))
        assert mpactors.ping(b.name) == "pong"
        assert [still_open(s) for s in raw_clients] == [True] * 10, "the ping waited for the silent clients"
        assert_serves(b)

        # the silent ones are given up on with a logged line, not kept forever
        silent = raw_clients[0]
        address = "127.0.0.1:%d" % silent.getsockname()[1]
        silent.settimeout(LONG_TIMEOUT)
        assert silent.recv(100) == b""
        b.wait_log(rejected(address))


def still_open(sock: socket.socket) -> bool:
    """True while the other side has not closed ``sock`` (what it sent, a challenge, is read and dropped)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return False  # end of file
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # the length prefix reads as ~1.2 GB
        struct.pack("!i", 10) + b"HELLO\x00\xff\xfe\x01\x02",  # a frame, but not MPACTORS
        struct.pack("!i", 12) + b"MPACTORS999 ",  # another protocol version
        struct.pack("!i", -5),  # a negative length
        struct.pack("!i", 1 << 20) + os.urandom(1 << 16),  # oversized before authentication
        b"\x00\x00",  # half a length, then EOF
    ],
    ids=["http", "not-mpactors", "wrong-version", "negative-length", "oversized", "truncated"],
)
def test_garbage_bytes_to_the_listening_port_are_logged_and_the_node_keeps_working(
    raw_clients: List[socket.socket], payload: bytes
) -> None:
    with run_node() as b, local_node():
        sock = socket.create_connection(listen_address(b), timeout=SHORT_TIMEOUT)
        raw_clients.append(sock)
        address = "127.0.0.1:%d" % sock.getsockname()[1]
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the node may close on us mid-way: that is fine
        b.wait_log(rejected(address))
        assert b.proc.poll() is None
        assert_serves(b)


def test_an_unauthenticated_peer_never_gets_anything_unpickled(
    raw_clients: List[socket.socket], tmp_path: Path
) -> None:
    marker = str(tmp_path / "pwned")

    class Evil:
        def __reduce__(self) -> tuple:
            return (open, (marker, "w"))

    evil = pickle.dumps(Evil())
    with run_node() as b, local_node():
        sock = socket.create_connection(listen_address(b), timeout=SHORT_TIMEOUT)
        raw_clients.append(sock)
        address = "127.0.0.1:%d" % sock.getsockname()[1]
        for chunk in (b"MPACTORS%d evil@host" % PROTOCOL_VERSION, evil, evil):
            try:
                sock.sendall(struct.pack("!i", len(chunk)) + chunk)
            except OSError:
                break
        b.wait_log(rejected(address))
        assert not os.path.exists(marker)
        assert_serves(b)


# ---------------------------------------------------------------- names in use


def test_a_node_name_already_in_use_on_the_host_is_refused_with_a_clear_node_error() -> None:
    with run_node() as b:
        with pytest.raises(NodeError, match=rf"{re.escape(repr(b.name))} is already in use on this host"):
            mpactors.Node(b.alive_name).start()
        with local_node():  # the refused start left nothing behind in this process
            assert mpactors.ping(b.name) == "pong"
            assert_serves(b)


def test_a_second_process_cannot_take_a_running_nodes_name() -> None:
    with run_node() as b:
        code = f"import mpactors\nmpactors.Node({b.alive_name!r}).start()"
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=LONG_TIMEOUT, check=False
        )
        assert result.returncode != 0
        assert "NodeError" in result.stderr and "already in use on this host" in result.stderr
        assert epmd.port_please(b.alive_name) == listen_address(b)[1]  # b keeps its name


def test_a_name_is_free_again_once_its_node_is_gone() -> None:
    name = unique_name("reuse")
    with run_node(name) as first:
        first_name = first.name
    wait_until(lambda: epmd.port_please(name) is None, what=f"{name} to be unregistered")
    with local_node(), run_node(name) as second:
        assert second.name == first_name
        assert mpactors.ping(second.name) == "pong"
