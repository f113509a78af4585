"""What an actor logs goes where its node's log goes, whatever the start method.

A forked actor inherits its node's logging configuration; one started by
forkserver or spawn rebuilds it from its boot record (mpactors._core._logconf).
Each test runs a node in a subprocess, configured as an application would.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import LONG_TIMEOUT

pytestmark = pytest.mark.timeout(120)

METHODS = ("fork", "forkserver", "spawn")

# argv: start method, log file ("-": stderr). The actor is a Logger's bound
# method (pickled by reference), so no test code has to be importable there.
_NODE = r"""
import logging, sys
import mpactors
target = sys.argv[2]
kw = {"stream": sys.stderr} if target == "-" else {"filename": target}
logging.basicConfig(level=logging.INFO, format="APP %(levelname)s %(name)s [%(process)d] %(message)s", **kw)
with mpactors.Node(start_method=sys.argv[1]):
    logging.getLogger("mpactors.app").info("node %d up", __import__("os").getpid())
    pid, ref = mpactors.spawn_monitor(logging.getLogger("mpactors.app").error, "actor says %s", "hello")
    down = mpactors.receive(mpactors.Down, timeout=%(timeout)r)
    assert down.reason == "normal", down
    # below the configured level: dropped in the actor as in the node
    pid, ref = mpactors.spawn_monitor(logging.getLogger("mpactors.app").debug, "too detailed")
    assert mpactors.receive(mpactors.Down, timeout=%(timeout)r).reason == "normal"
""".replace("%(timeout)r", repr(LONG_TIMEOUT))


def _run(method: str, target: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _NODE, method, target], cwd=str(cwd), capture_output=True,
                          text=True, timeout=LONG_TIMEOUT * 2)


def _check(log: str) -> None:
    lines = log.splitlines()
    node_line = next(x for x in lines if "node " in x and " up" in x)
    node_os_pid = node_line.split("[")[1].split("]")[0]
    actor_lines = [x for x in lines if x.endswith("actor says hello")]
    assert len(actor_lines) == 1, log
    # the node's format, written by the actor process (another OS pid)
    assert actor_lines[0].startswith("APP ERROR mpactors.app [")
    assert f"[{node_os_pid}]" not in actor_lines[0]
    assert "too detailed" not in log


@pytest.mark.parametrize("method", METHODS)
def test_an_actor_logs_to_its_nodes_stderr_in_its_format(method: str, tmp_path: Path) -> None:
    done = _run(method, "-", tmp_path)
    assert done.returncode == 0, done.stderr
    _check(done.stderr)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("method", METHODS)
def test_an_actor_logs_to_its_nodes_log_file(method: str, tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    done = _run(method, str(log), tmp_path)
    assert done.returncode == 0, done.stderr
    _check(log.read_text())
