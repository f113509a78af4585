"""The port mapper daemon, run as a real subprocess, and the client against it.

Each test gets a private port (the ``epmd_port`` fixture) and a daemon bound to
127.0.0.1 that the fixture kills and waits for in ``finally``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List

import psutil
import pytest
from support import LONG_TIMEOUT, SHORT_TIMEOUT, all_gone, free_port, pid_alive, python_c, wait_until

from mpactors import epmd
from mpactors.epmd import protocol as p
from mpactors.epmd.daemon import is_loopback
from mpactors.errors import BadArg, EpmdError

ROOT = Path(__file__).resolve().parent.parent


class Daemon:
    """A port mapper subprocess and its log file."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


StartDaemon = Callable[..., Daemon]


@pytest.fixture
def start_daemon(epmd_port: int, tmp_path: Path) -> Iterator[StartDaemon]:
    """Start ``python -m mpactors.epmd`` on the private port; killed at the end."""
    started: List[subprocess.Popen] = []

    def start(*args: str) -> Daemon:
        log = tmp_path / f"epmd-{len(started)}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mpactors.epmd", "--port", str(epmd_port), "--host", "127.0.0.1", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=ROOT,
            )
        started.append(proc)
        wait_until(lambda: proc.poll() is not None or epmd.is_running(timeout=SHORT_TIMEOUT), LONG_TIMEOUT)
        assert proc.poll() is None, log.read_text()
        return Daemon(proc, epmd_port, log)

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()
            proc.wait(LONG_TIMEOUT)


@pytest.fixture
def daemon(start_daemon: StartDaemon) -> Daemon:
    return start_daemon()


def _wait_closed_by_peer(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes (fails after SHORT_TIMEOUT)."""
    sock.settimeout(SHORT_TIMEOUT)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def _peer_name(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


# ---------------------------------------------------------------- service


def test_a_registered_node_is_found_by_port_please_lookup_and_names(daemon: Daemon) -> None:
    with epmd.register("alpha@somehost", 1234) as reg, epmd.register("beta", 2345, hidden=True):
        assert reg.name == "alpha"
        assert reg.creation != 0
        assert epmd.port_please("alpha") == 1234
        assert epmd.port_please("alpha@somehost") == 1234
        assert epmd.port_please("nobody") is None
        info = epmd.lookup("beta")
        assert info is not None and info.hidden and info.extra == p.MPACTORS_EXTRA
        assert sorted(epmd.names()) == [("alpha", 1234), ("beta", 2345)]


def test_the_registration_dies_with_its_connection(daemon: Daemon) -> None:
    reg = epmd.register("short", 1111)
    assert ("short", 1111) in epmd.names()
    reg.close()
    assert reg.closed
    wait_until(lambda: epmd.port_please("short") is None, what="'short' to be unregistered")
    with epmd.register("short", 1112):  # the name is free again
        assert epmd.port_please("short") == 1112


def test_a_registrant_killed_with_sigkill_is_forgotten_at_once(daemon: Daemon) -> None:
    code = "import sys; from mpactors import epmd; r = epmd.register('victim', 4000); sys.stdin.read()"
    proc = python_c(code, stdin=subprocess.PIPE, cwd=ROOT)
    try:
        wait_until(lambda: ("victim", 4000) in epmd.names(), LONG_TIMEOUT, what="'victim' to register")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(SHORT_TIMEOUT)
        wait_until(lambda: ("victim", 4000) not in epmd.names(), 1.0, what="'victim' to be forgotten")
    finally:
        proc.kill()
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(LONG_TIMEOUT)


def test_a_name_already_registered_is_refused(daemon: Daemon) -> None:
    with epmd.register("taken", 1000):
        with pytest.raises(EpmdError, match="node name 'taken' is already in use on this host"):
            epmd.register("taken", 2000)
        assert epmd.port_please("taken") == 1000
    wait_until(lambda: "refused to register node 'taken'" in daemon.log_text())


def test_creation_numbers_grow_by_one_and_are_never_zero(daemon: Daemon) -> None:
    with epmd.register("c1", 1) as r1, epmd.register("c2", 2) as r2:
        assert r1.creation != 0 and r2.creation != 0
        assert r2.creation == r1.creation % 0xFFFFFFFF + 1


def test_an_old_client_gets_alive2_resp_with_a_small_creation(daemon: Daemon) -> None:
    body = p.encode_alive2_req(p.NodeInfo("old", 1000, highest_version=5, lowest_version=5))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=SHORT_TIMEOUT) as sock:
        sock.sendall(p.frame(body))
        data = b""
        while len(data) < 4:
            data += sock.recv(4 - len(data))
        reply = p.decode_alive2_resp(data)
        assert reply is not None and reply.result == 0 and 1 <= reply.creation <= 3
        assert data[0] == p.ALIVE2_RESP
        assert epmd.port_please("old") == 1000


def test_bytes_sent_on_a_registration_unregister_it(daemon: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=SHORT_TIMEOUT) as sock:
        sock.sendall(p.frame(p.encode_alive2_req(p.NodeInfo("chatty", 1000))))
        wait_until(lambda: epmd.port_please("chatty") == 1000)
        sock.sendall(b"more")
        wait_until(lambda: epmd.port_please("chatty") is None)


def test_names_lists_what_erlang_tools_parse(daemon: Daemon) -> None:
    address = ("127.0.0.1", daemon.port)
    with epmd.register("n", 7), socket.create_connection(address, timeout=SHORT_TIMEOUT) as sock:
        sock.sendall(p.frame(p.encode_names_req()))
        data = _wait_closed_by_peer(sock)
    assert data == daemon.port.to_bytes(4, "big") + b"name n at port 7\n"


def test_the_process_title_names_the_port(daemon: Daemon) -> None:
    pytest.importorskip("setproctitle")
    title = f"mpactors epmd port {daemon.port}"
    wait_until(lambda: " ".join(psutil.Process(daemon.proc.pid).cmdline()).strip() == title)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "payload, half_close",
    [
        (p.frame(b"\x01abcd"), False),  # unknown request code
        (p.frame(b"\x78garbage"), False),  # malformed ALIVE2_REQ
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),  # garbage: length 0x4745 is oversized
        (b"\xff\xff" + b"x" * 100, False),  # oversized length
        (b"\x00\x00", False),  # empty request
        (b"\x00\x10partial", True),  # a request cut short by a close
    ],
    ids=["unknown-code", "bad-alive2", "http", "oversized", "empty", "partial"],
)
def test_bad_input_is_logged_and_closed_and_service_goes_on(daemon: Daemon, payload: bytes, half_close: bool) -> None:
    with epmd.register("survivor", 999):
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=SHORT_TIMEOUT) as sock:
            peer = _peer_name(sock)
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            assert _wait_closed_by_peer(sock) == b""
        wait_until(lambda: peer in daemon.log_text(), what=f"a log line naming {peer}")
        assert epmd.names() == [("survivor", 999)]
        assert daemon.proc.poll() is None


def test_a_silent_client_is_dropped_after_the_idle_timeout_but_a_registration_stays(
    start_daemon: StartDaemon,
) -> None:
    daemon = start_daemon("--idle-timeout", "0.5")
    with epmd.register("patient", 1), socket.create_connection(("127.0.0.1", daemon.port)) as silent:
        peer = _peer_name(silent)
        assert epmd.names() == [("patient", 1)]  # served while the silent client waits
        assert _wait_closed_by_peer(silent) == b""
        assert f"{peer} sent no whole request" in daemon.log_text()
        assert epmd.names() == [("patient", 1)]


def test_non_loopback_addresses_may_not_register() -> None:
    for address in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(address), address
    for address in ("10.0.0.1", "192.168.1.5", "::ffff:10.0.0.1", "fe80::1%eth0", "not-an-ip"):
        assert not is_loopback(address), address


# ---------------------------------------------------------------- kill


def test_kill_stops_an_idle_daemon(daemon: Daemon) -> None:
    assert epmd.kill() is True
    assert daemon.proc.wait(SHORT_TIMEOUT) == 0
    assert not epmd.is_running(timeout=SHORT_TIMEOUT)


def test_kill_is_refused_while_a_node_is_registered(daemon: Daemon) -> None:
    with epmd.register("busy", 1):
        assert epmd.kill() is False
        assert epmd.port_please("busy") == 1
    wait_until(lambda: not epmd.names())
    assert epmd.kill() is True
    assert daemon.proc.wait(SHORT_TIMEOUT) == 0


def test_relaxed_command_check_lets_kill_stop_a_busy_daemon(start_daemon: StartDaemon) -> None:
    daemon = start_daemon("--relaxed-command-check")
    with epmd.register("busy", 1) as reg:
        assert epmd.kill() is True
        assert daemon.proc.wait(SHORT_TIMEOUT) == 0
        reg_sock = socket.socket(fileno=os.dup(reg.fileno()))
        with reg_sock:
            assert _wait_closed_by_peer(reg_sock) == b""  # the node can notice


def test_sigterm_stops_the_daemon_cleanly(daemon: Daemon) -> None:
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(SHORT_TIMEOUT) == 0
    assert "stopping on signal" in daemon.log_text()


def test_a_second_daemon_on_a_taken_port_exits_with_one_clear_line(daemon: Daemon) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mpactors.epmd", "--port", str(daemon.port), "--host", "127.0.0.1"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=LONG_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1
    assert f"127.0.0.1:{daemon.port} is already in use" in result.stderr
    assert epmd.is_running()


# ---------------------------------------------------------------- ensure_running


def _daemon_pids(port: int) -> List[int]:
    """OS pids of live port mapper processes for ``port``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        text = " ".join(cmdline)
        if text.strip() == f"mpactors epmd port {port}" or ("mpactors.epmd" in cmdline and str(port) in cmdline):
            found.append(proc.pid)
    return found


def _stop_detached(port: int, pids: List[int]) -> None:
    """Stop detached daemons: KILL_REQ first, SIGKILL what is left."""
    try:
        epmd.kill(port=port, timeout=SHORT_TIMEOUT)
    except EpmdError:
        pass
    try:
        wait_until(lambda: all_gone(pids), SHORT_TIMEOUT)
    except AssertionError:
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_ensure_running_starts_a_detached_daemon_once(
    epmd_port: int, mpactors_home: str, request: pytest.FixtureRequest
) -> None:
    pid = epmd.ensure_running(bind_host="127.0.0.1", timeout=LONG_TIMEOUT)
    assert pid is not None
    request.node.mpactors_pids = [pid]
    try:
        assert epmd.is_running()
        assert os.getsid(pid) == pid  # a session of its own: no terminal signals
        assert (Path(mpactors_home) / "logs" / "epmd.log").exists()
        assert epmd.ensure_running(timeout=LONG_TIMEOUT) is None
        assert _daemon_pids(epmd_port) == [pid]
    finally:
        _stop_detached(epmd_port, [pid])
    assert not pid_alive(pid)


def test_concurrent_ensure_running_calls_leave_one_daemon(
    epmd_port: int, mpactors_home: str, request: pytest.FixtureRequest
) -> None:
    code = "from mpactors import epmd; print(epmd.ensure_running(bind_host='127.0.0.1', timeout=30.0))"
    procs = [python_c(code, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    pids: List[int] = []
    try:
        outputs = [proc.communicate(timeout=LONG_TIMEOUT)[0].strip() for proc in procs]
        assert all(proc.returncode == 0 for proc in procs), outputs
        pids = [int(out) for out in outputs if out != "None"]
        assert pids, outputs
        assert epmd.is_running()
        survivors = wait_until(lambda: _daemon_pids(epmd_port) if len(_daemon_pids(epmd_port)) == 1 else None)
        pids = sorted(set(pids) | set(survivors))
        request.node.mpactors_pids = pids
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(LONG_TIMEOUT)
        _stop_detached(epmd_port, pids or _daemon_pids(epmd_port))


# ---------------------------------------------------------------- client errors


@contextmanager
def _fake_port_mapper(reply: bytes) -> Iterator[int]:
    """A one-shot server on loopback that answers any request with ``reply``."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(SHORT_TIMEOUT)

    def answer() -> None:
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(SHORT_TIMEOUT)
                conn.recv(4096)
                conn.sendall(reply)
        except OSError:
            pass  # the test is over (or never connected)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        thread.join(SHORT_TIMEOUT)


def test_nothing_listening_is_an_epmd_error_naming_host_and_port() -> None:
    port = free_port()
    with pytest.raises(EpmdError, match=f"127.0.0.1:{port}"):
        epmd.names(port=port)
    assert not epmd.is_running(port=port)


@pytest.mark.parametrize(
    "call",
    [
        lambda port: epmd.names(port=port),
        lambda port: epmd.port_please("a", port=port),
        lambda port: epmd.kill(port=port),
        lambda port: epmd.register("a", 1, port=port),
    ],
    ids=["names", "port_please", "kill", "register"],
)
def test_garbage_from_the_port_mapper_is_an_epmd_error(call: Callable[[int], object]) -> None:
    with _fake_port_mapper(b"\x01garbage, not epmd") as port, pytest.raises(EpmdError, match=f"127.0.0.1:{port}"):
        call(port)


def test_a_port_mapper_that_never_answers_times_out_with_an_epmd_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:  # listens, never accepts
        port = server.getsockname()[1]
        with pytest.raises(EpmdError, match=f"127.0.0.1:{port} did not answer within 0.2 s"):
            epmd.names(port=port, timeout=0.2)


def test_an_invalid_node_name_is_bad_arg(daemon: Daemon) -> None:
    with pytest.raises(BadArg):
        epmd.register("", 1)
    with pytest.raises(BadArg):
        epmd.register("a", 70000)
