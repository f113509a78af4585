"""Mutual TLS between nodes on loopback (SPEC "Deployment across machines", the ``tls`` row).

Certificates come from the ``openssl`` command (``tests/tls_certs.py``, the
README's commands). The other node runs in a subprocess with the
``MPACTORS_TLS_*`` variables; this process is a node with ``tls=``. A relay
between the two shows what crosses the network.
"""
from __future__ import annotations

import logging
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from nodes import cluster, cookie, echo, local_node, run_node, unique_name  # noqa: F401 - fixtures
from support import LONG_TIMEOUT, SHORT_TIMEOUT, free_port, port_mapper, under, wait_until
from tls_certs import OPENSSL, SERVICE_NAME, make_certs, tls_env, tls_for

import mpactors
from mpactors import ANY, BadArg, NodeError, epmd, rpc

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("cluster"),
    pytest.mark.skipif(OPENSSL is None, reason="the openssl command is needed to make test certificates"),
]

REJECTED = r"Connection attempt from 127\.0\.0\.1:\d+ rejected: "


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("tls-certs"))


@pytest.fixture
def dist_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="mpactors.dist")
    return caplog


def wait_caplog(caplog: pytest.LogCaptureFixture, pattern: str) -> str:
    return wait_until(  # type: ignore[no-any-return]
        lambda: next((r.getMessage() for r in caplog.records if re.search(pattern, r.getMessage())), None),
        SHORT_TIMEOUT, what=f"{pattern!r} in this node's log",
    )


def round_trip(node_name: str) -> None:
    pid = mpactors.spawn(echo, node=node_name)
    assert pid.node == node_name
    mpactors.send(pid, (mpactors.self(), "over tls"))
    assert mpactors.receive(("echo", pid, ANY), timeout=SHORT_TIMEOUT)[2] == "over tls"
    mpactors.send(pid, "stop")


# ---------------------------------------------------------------- working clusters


def test_two_tls_nodes_ping_exchange_messages_spawn_remotely_and_call_functions(certs: Path) -> None:
    with run_node(env=tls_env(certs)) as b, local_node(tls=tls_for(certs)):
        assert mpactors.ping(b.name) == "pong"
        assert b.call("mpactors.node()") == b.name
        round_trip(b.name)
        assert under(rpc.call(b.name, "os:getppid"), b.os_pid)  # run by an actor of b
        big = os.urandom(256 * 1024)  # larger than a TLS record and a socket buffer
        assert b.call("len(data)", data=big) == len(big)
        assert b.call("mpactors.nodes()") == [mpactors.node()]


def test_tls_nodes_given_one_service_name_accept_each_other_whatever_their_addresses(certs: Path) -> None:
    env = tls_env(certs, cert="service", server_name=SERVICE_NAME)
    with run_node(env=env) as b, local_node(tls=tls_for(certs, cert="service", server_name=SERVICE_NAME)):
        assert mpactors.ping(b.name) == "pong"
        round_trip(b.name)


class Relay:
    """A TCP relay on loopback to ``target`` that records the bytes of each direction."""

    def __init__(self, target: Tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.to_server = bytearray()
        self.to_client = bytearray()
        self._stop = socket.socketpair()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, "accept")
        sel.register(self._stop[0], selectors.EVENT_READ, "stop")
        socks: List[socket.socket] = []
        try:
            while True:
                for key, _ in sel.select():
                    if key.data == "stop":
                        return
                    if key.data == "accept":
                        client, _ = self.listener.accept()
                        server = socket.create_connection(self.target)
                        socks += [client, server]
                        sel.register(client, selectors.EVENT_READ, (server, self.to_server))
                        sel.register(server, selectors.EVENT_READ, (client, self.to_client))
                        continue
                    other, record = key.data
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if data:
                            record += data
                            other.sendall(data)
                            continue
                        other.shutdown(socket.SHUT_WR)
                    except OSError:  # one side went away: the other follows
                        pass
                    sel.unregister(key.fileobj)
        finally:
            for s in socks:
                s.close()
            sel.close()

    def close(self) -> None:
        self._stop[1].send(b"x")
        self._thread.join(SHORT_TIMEOUT)
        self.listener.close()
        for s in self._stop:
            s.close()


@pytest.fixture
def second_port_mapper(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Another port mapper, made this process's (so it can point a node's name at a relay)."""
    with port_mapper(free_port()) as port:
        yield port


def test_the_stream_starts_with_a_tls_record_and_no_payload_or_cookie_crosses_in_clear(
    certs: Path, cookie: str, second_port_mapper: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "PAYLOAD-IN-CLEAR-" * 8
    with run_node(env=tls_env(certs)) as b:
        real_port = epmd.port_please(b.alive_name)
        assert real_port is not None
        relay = Relay(("127.0.0.1", real_port))
        # This process looks b up in a port mapper of its own, where b's name points at the relay.
        monkeypatch.setenv("MPACTORS_EPMD_PORT", str(second_port_mapper))
        fake = epmd.register(b.alive_name, relay.port)
        try:
            with local_node(tls=tls_for(certs)):
                assert mpactors.ping(b.name) == "pong"
                assert b.call("len(msg)", msg=secret) == len(secret)
                round_trip(b.name)
        finally:
            fake.close()
            relay.close()
    sent, received = bytes(relay.to_server), bytes(relay.to_client)
    assert sent[:2] == b"\x16\x03" and received[:2] == b"\x16\x03", (sent[:8], received[:8])
    assert len(sent) > 1000 and len(received) > 1000  # the traffic went through the relay
    for clear in (b"PAYLOAD-IN-CLEAR", b"MPACTORS", cookie.encode(), b"harness", b"over tls", b"echo"):
        assert clear not in sent and clear not in received, clear


# ---------------------------------------------------------------- refusals


REFUSALS = {
    # case: (b's certificate, our certificate, our CA, what b logs, what we log)
    "our certificate from another CA": (
        "node", "stranger", "ca", "unknown CA: the certificate is not signed by our CA",
        "our certificate refused|refused our certificate"),
    "b's certificate from a CA we do not trust": (
        "node", "node", "other-ca", "the peer refused our certificate: unknown CA", "unknown CA"),
    "b's certificate for another host": (
        "wronghost", "node", "ca", r"the peer refused our certificate \(wrong host\?\)",
        "wrong host: Hostname mismatch, certificate is not valid for"),
    "b's certificate expired": (
        "expired", "node", "ca", "the peer refused our certificate: certificate expired", "certificate expired"),
    "our certificate expired": ("node", "expired", "ca", "certificate expired",
                                "our certificate refused|certificate expired"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_certificate_is_refused_with_the_reason_logged_on_both_sides(
    certs: Path, dist_log: pytest.LogCaptureFixture, case: str
) -> None:
    b_cert, our_cert, our_ca, b_says, we_say = REFUSALS[case]
    with run_node(env=tls_env(certs, cert=b_cert)) as b, local_node(tls=tls_for(certs, our_cert, our_ca)):
        started = time.monotonic()
        assert mpactors.ping(b.name) == "pang"
        assert time.monotonic() - started < SHORT_TIMEOUT
        b.wait_log(REJECTED + "TLS handshake failed: " + b_says)
        wait_caplog(dist_log, rf"cannot connect to {re.escape(b.name)}: .*({we_say})")
        assert mpactors.nodes() == []


def test_a_plain_node_meeting_a_tls_node_is_refused_both_ways_with_the_reason(
    certs: Path, dist_log: pytest.LogCaptureFixture
) -> None:
    with run_node(env=tls_env(certs)) as tls_b, run_node() as plain_c, local_node():
        assert mpactors.ping(tls_b.name) == "pang"  # we are plain, b is TLS
        tls_b.wait_log(REJECTED + "a node without TLS: this node requires TLS")
        wait_caplog(dist_log, rf"cannot connect to {re.escape(tls_b.name)}: .*this node requires TLS")
        assert mpactors.ping(plain_c.name) == "pong"  # and plain nodes still meet
    with run_node() as plain_b, local_node(tls=tls_for(certs)):
        assert mpactors.ping(plain_b.name) == "pang"  # we are TLS, b is plain
        plain_b.wait_log(REJECTED + "the peer speaks TLS and this node does not")
        wait_caplog(dist_log, rf"cannot connect to {re.escape(plain_b.name)}: .*a node without TLS\?")


def test_a_peer_that_stops_mid_handshake_does_not_block_a_real_nodes_ping(certs: Path) -> None:
    # b gives a handshake 10 s. Ordering, not timing, shows that the stalled
    # handshake blocked nothing: the ping and a round trip are done while the
    # stalled connection is still waiting (not rejected yet in b's log).
    rejected = REJECTED + r"TLS handshake failed: TLS handshake not finished within 10 s"
    with run_node(env=tls_env(certs), code="mpactors.config.HANDSHAKE_TIMEOUT = 10.0") as b:
        port = epmd.port_please(b.alive_name)
        assert port is not None
        stalled = socket.create_connection(("127.0.0.1", port))
        try:
            stalled.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then silence
            with local_node(tls=tls_for(certs)):
                assert mpactors.ping(b.name) == "pong"
                round_trip(b.name)
                assert not re.search(rejected, b.log_text()), "the ping waited for the stalled handshake"
            b.wait_log(rejected, timeout=LONG_TIMEOUT)
        finally:
            stalled.close()


# ---------------------------------------------------------------- files and settings


def test_a_private_key_that_group_or_others_may_read_is_refused(certs: Path, tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    shutil.copy(certs / "node.key", key)
    os.chmod(key, 0o640)
    node = mpactors.Node(unique_name(), tls=mpactors.TLS(certs / "node.pem", key, certs / "ca.pem"))
    with pytest.raises(NodeError, match=rf"TLS private key {re.escape(str(key))} must be accessible by owner only "
                                        r"\(mode 0640\); run chmod 400"):
        node.start()
    assert not node.alive
    assert unique_name() not in epmd.names()  # nothing was registered


def test_unusable_tls_files_and_settings_are_refused_with_a_clear_error(certs: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NodeError, match="cannot load TLS certificate"):
        mpactors.Node(unique_name(), tls=mpactors.TLS(certs / "ca.key", certs / "node.key", certs / "ca.pem")).start()
    with pytest.raises(NodeError, match="TLS private key .* cannot be examined"):
        mpactors.Node(unique_name(), tls=mpactors.TLS(certs / "node.pem", tmp_path / "none", certs / "ca.pem")).start()
    with pytest.raises(NodeError, match="cannot load TLS CA file"):
        mpactors.Node(unique_name(), tls=mpactors.TLS(certs / "node.pem", certs / "node.key", tmp_path)).start()
    with pytest.raises(BadArg, match="`certfile` must be a file path"):
        mpactors.TLS(3, "k", "c")  # type: ignore[arg-type]
    with pytest.raises(BadArg, match="`server_name` must be a host name"):
        mpactors.TLS("c", "k", "ca", server_name="two words")
    with pytest.raises(BadArg, match="`tls` needs a named node"):
        mpactors.Node(tls=tls_for(certs))
    with pytest.raises(BadArg, match="`tls` must be a mpactors.TLS"):
        mpactors.Node("x", tls=("c", "k", "ca"))  # type: ignore[arg-type]
    monkeypatch.setenv("MPACTORS_TLS_CERT", str(certs / "node.pem"))
    with pytest.raises(BadArg, match="MPACTORS_TLS_KEY, MPACTORS_TLS_CA not set"):
        mpactors.TLS.from_env()


def test_tls_settings_are_a_frozen_value_and_come_from_the_environment(
    certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = tls_for(certs, server_name="svc")
    assert tls == tls_for(certs, server_name="svc") and hash(tls) == hash(tls_for(certs, server_name="svc"))
    with pytest.raises(AttributeError):
        tls.cafile = "x"  # type: ignore[misc]
    assert mpactors.TLS.from_env() is None
    for key, value in tls_env(certs, server_name="svc").items():
        monkeypatch.setenv(key, value)
    assert mpactors.TLS.from_env() == tls


def test_sighup_rereads_the_certificate_so_a_renewed_one_is_used_without_a_restart(
    certs: Path, tmp_path: Path, dist_log: pytest.LogCaptureFixture
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(certs / "expired.pem", live / "node.pem")
    shutil.copy(certs / "expired.key", live / "node.key")
    shutil.copy(certs / "ca.pem", live / "ca.pem")
    with run_node(env=tls_env(live)) as b, local_node(tls=tls_for(certs)):
        assert mpactors.ping(b.name) == "pang"  # b still shows its expired certificate
        wait_caplog(dist_log, "certificate expired")
        for name in ("node.pem", "node.key"):  # renew: write new files, rename over the old ones
            shutil.copy(certs / name, live / f"{name}.new")
            os.replace(live / f"{name}.new", live / name)
        os.kill(b.os_pid, signal.SIGHUP)
        b.wait_log("SIGHUP: TLS certificate, key and CA reloaded")
        assert mpactors.ping(b.name) == "pong"
        round_trip(b.name)


def test_the_command_line_joins_a_tls_cluster_and_says_why_a_plain_ping_fails(certs: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    flags = ["--tls-cert", str(certs / "node.pem"), "--tls-key", str(certs / "node.key"),
             "--tls-ca", str(certs / "ca.pem")]
    with run_node(env=tls_env(certs)) as b:
        cmd = [sys.executable, "-m", "mpactors", "ping", b.name]
        ok = subprocess.run(cmd + flags, env=env, capture_output=True, text=True, timeout=60)
        assert (ok.returncode, ok.stdout) == (0, "pong\n"), ok.stderr
        plain = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert (plain.returncode, plain.stdout) == (1, "pang\n")
        assert f"cannot connect to {b.name}: {b.name} refused the connection: this node requires TLS" in plain.stderr
        tls_env_only = dict(env, **tls_env(certs))
        rpc_out = subprocess.run([sys.executable, "-m", "mpactors", "rpc", b.name, "os:getppid"], env=tls_env_only,
                                 capture_output=True, text=True, timeout=60)
        assert rpc_out.returncode == 0, rpc_out.stderr
        assert under(int(rpc_out.stdout.strip()), b.os_pid), rpc_out.stdout  # run by an actor of b
