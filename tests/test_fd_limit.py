"""Descriptors: the node raises its soft limit itself (to the hard limit, capped) and logs it; a forked
actor costs the node two descriptors (the control socket doubles as the exit sentinel)."""
from __future__ import annotations

import resource
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

_NODE = """
import logging, resource, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
import mpactors
with mpactors.Node():
    print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], flush=True)
"""

_CAP = """
import resource, sys
from mpactors._core import _procs
print(*_procs.raise_fd_limit(cap=int(sys.argv[1])), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _run(code: str, soft: int, *args: str) -> subprocess.CompletedProcess:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=50,
                          preexec_fn=lower, check=False)


def _hard() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)


@pytest.mark.skipif(_hard() <= 256, reason="the hard descriptor limit is too low to raise anything")
def test_a_node_raises_its_soft_limit_to_the_hard_limit_and_logs_it() -> None:
    proc = _run(_NODE, 256)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[0]) == _hard()
    assert f"raised the soft descriptor limit from 256 to {_hard()}" in proc.stderr


@pytest.mark.skipif(_hard() <= 300, reason="the hard descriptor limit is too low to raise anything")
def test_the_raise_is_capped_and_never_lowers() -> None:
    proc = _run(_CAP, 256, "300")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["256", "300", "300"]
    proc = _run(_CAP, 280, "100")  # a cap below the soft limit: left alone
    assert proc.stdout.split() == ["280", "280", "280"]


# -- two descriptors per actor ------------------------------------------------------------
@pytest.mark.skipif(sys.platform != "linux", reason="counts /proc/self/fd")
def test_a_forked_actor_costs_its_node_two_descriptors() -> None:
    from mpactors.bench._local import fds_per_actor

    # fork whatever MPACTORS_START_METHOD says: the two-descriptor layout is fork's
    assert fds_per_actor(20, "fork") == 2.0  # its mailbox's write end and its control socket


def test_a_process_that_closed_the_shared_sentinel_but_runs_on_is_killed_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import signal
    import time

    from mpactors._core import _procs

    monkeypatch.setattr(_procs, "_EXIT_GRACE", 0.2)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        time.sleep(30)
        os._exit(0)
    status = _procs._wait_or_kill(pid)  # noqa: SLF001
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL  # killed, not waited for until it exits


def test_a_process_that_exits_is_reaped_by_the_shared_sentinel_wait() -> None:
    import os

    from mpactors._core import _procs

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(7)
    assert os.waitstatus_to_exitcode(_procs._wait_or_kill(pid)) == 7  # noqa: SLF001
