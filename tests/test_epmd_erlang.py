"""Interoperability with Erlang/OTP's own ``epmd`` (SPEC, "Port mapper").

(a) Erlang's ``epmd -names`` / ``-kill`` against our daemon, and
(b) our client against Erlang's daemon. Skipped when Erlang's ``epmd`` is not
installed (Debian/Ubuntu package ``erlang-nox`` or ``erlang-base``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

import pytest
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

from mpactors import epmd
from mpactors.errors import EpmdError

ROOT = Path(__file__).resolve().parent.parent
ERLANG_EPMD: Optional[str] = shutil.which("epmd")

pytestmark = pytest.mark.skipif(
    ERLANG_EPMD is None, reason="Erlang's epmd is not installed (apt-get install erlang-nox)"
)


def _erlang_epmd(*args: str, port: int, env_port: bool = False) -> subprocess.CompletedProcess:
    """Run Erlang's ``epmd`` as a command-line client of the port mapper on ``port``."""
    assert ERLANG_EPMD is not None
    env = dict(os.environ)
    if env_port:
        env["ERL_EPMD_PORT"] = str(port)
        argv = [ERLANG_EPMD, *args]
    else:
        argv = [ERLANG_EPMD, "-port", str(port), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=LONG_TIMEOUT, check=False)


def _wait_running(proc: subprocess.Popen, what: str) -> None:
    wait_until(lambda: proc.poll() is not None or epmd.is_running(timeout=SHORT_TIMEOUT), LONG_TIMEOUT, what=what)
    assert proc.poll() is None, f"{what} exited with {proc.returncode}"


@pytest.fixture
def our_daemon(epmd_port: int) -> Iterator[subprocess.Popen]:
    """Our port mapper on the private port, on loopback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpactors.epmd", "--port", str(epmd_port), "--host", "127.0.0.1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        _wait_running(proc, "our port mapper")
        yield proc
    finally:
        proc.kill()
        proc.wait(LONG_TIMEOUT)


@pytest.fixture
def erlang_daemon(epmd_port: int) -> Iterator[subprocess.Popen]:
    """Erlang's epmd in the foreground on the private port, on loopback only."""
    assert ERLANG_EPMD is not None
    proc = subprocess.Popen(
        [ERLANG_EPMD, "-port", str(epmd_port), "-address", "127.0.0.1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_running(proc, "Erlang's epmd")
        yield proc
    finally:
        proc.kill()
        proc.wait(LONG_TIMEOUT)


# ---------------------------------------------------------------- (a) Erlang tools, our daemon


@pytest.mark.parametrize("env_port", [False, True], ids=["-port", "ERL_EPMD_PORT"])
def test_erlang_epmd_names_lists_our_registrations(
    our_daemon: subprocess.Popen, epmd_port: int, env_port: bool
) -> None:
    with epmd.register("alpha@host", 1234), epmd.register("beta", 2345, hidden=True):
        result = _erlang_epmd("-names", port=epmd_port, env_port=env_port)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"epmd: up and running on port {epmd_port} with data:"
    assert sorted(lines[1:]) == ["name alpha at port 1234", "name beta at port 2345"]


def test_erlang_epmd_kill_stops_our_idle_daemon(our_daemon: subprocess.Popen, epmd_port: int) -> None:
    result = _erlang_epmd("-kill", port=epmd_port)
    assert result.returncode == 0, result.stderr
    assert "Killed" in result.stdout
    assert our_daemon.wait(SHORT_TIMEOUT) == 0


# ---------------------------------------------------------------- (b) our client, Erlang's daemon


def test_our_client_registers_and_looks_up_with_erlang_epmd(erlang_daemon: subprocess.Popen) -> None:
    with epmd.register("alpha@host", 1234) as reg, epmd.register("beta", 2345, hidden=True):
        assert reg.creation != 0
        assert epmd.port_please("alpha") == 1234
        assert epmd.port_please("nobody") is None
        info = epmd.lookup("beta")
        assert info is not None and info.hidden and info.port == 2345
        assert sorted(epmd.names()) == [("alpha", 1234), ("beta", 2345)]


def test_erlang_epmd_forgets_a_closed_registration_and_refuses_duplicates(erlang_daemon: subprocess.Popen) -> None:
    with epmd.register("dup", 1000):
        with pytest.raises(EpmdError, match="node name 'dup' is already in use on this host"):
            epmd.register("dup", 2000)
        assert epmd.kill() is False  # Erlang's epmd refuses while nodes are registered
    wait_until(lambda: epmd.port_please("dup") is None, what="'dup' to be unregistered")


def test_our_client_kills_an_idle_erlang_epmd(erlang_daemon: subprocess.Popen) -> None:
    assert epmd.kill() is True
    assert erlang_daemon.wait(SHORT_TIMEOUT) == 0
