"""The node raises its soft descriptor limit itself (to the hard limit, capped) and logs it."""
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
