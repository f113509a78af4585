"""Shared test helpers: timeouts scaled by the environment, condition waits,
subprocess runners. No bare sleeps: wait for a condition with a deadline.

If a test using SHORT_TIMEOUT starts to fail randomly on a slow machine, use
LONG_TIMEOUT instead (or raise MPACTORS_TEST_TIMEOUT_SCALE).
"""
from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Iterator, List, Optional

_SCALE = float(os.environ.get("MPACTORS_TEST_TIMEOUT_SCALE", "1"))
SHORT_TIMEOUT = 5.0 * _SCALE
LONG_TIMEOUT = 30.0 * _SCALE


def wait_until(
    condition: Callable[[], Any], timeout: float = SHORT_TIMEOUT, interval: float = 0.01, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition!r}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port that nothing uses right now, below the ephemeral range.

    A port the OS hands out for ``bind(0)`` could be handed out again, to a
    node's listener or an outgoing connection, before a port mapper binds
    it; ports under 32768 are never picked that way on Linux.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port between 20000 and 32000")


def python_c(code: str, *args: str, env: Optional[dict] = None, **kw: Any) -> subprocess.Popen:
    """Start ``python -c code`` as a subprocess (caller must kill and wait it)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.Popen([sys.executable, "-c", code, *args], env=full_env, **kw)


def ancestors(os_pid: int) -> list:
    """The OS pids of ``os_pid``'s parent, its parent's parent, ... (an actor's node is
    its parent under fork and spawn, its grandparent under forkserver)."""
    import psutil

    return [p.pid for p in psutil.Process(os_pid).parents()]


def under(os_pid: int, root: int) -> bool:
    """True if ``os_pid`` is ``root`` or one of its descendants.

    An actor's parent is its node under fork and spawn, the node's fork
    server under forkserver: ``under(actor's ppid, node)`` holds for all three,
    and not for the node's own parent.
    """
    return os_pid == root or root in ancestors(os_pid)


def pid_alive(os_pid: int) -> bool:
    """True while ``os_pid`` exists and is not a zombie."""
    import psutil

    try:
        return psutil.Process(os_pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def all_gone(os_pids: List[int]) -> bool:
    """True when none of ``os_pids`` is alive."""
    return not any(pid_alive(p) for p in os_pids)


@contextlib.contextmanager
def port_mapper(port: int) -> Iterator[int]:
    """Run our port mapper daemon on loopback ``port`` for the duration; yields the port."""
    from mpactors import epmd as epmd_client

    proc = subprocess.Popen(
        [sys.executable, "-m", "mpactors.epmd", "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # A process start: a loaded machine takes seconds to start Python.
        wait_until(lambda: epmd_client.is_running(port=port, timeout=0.5), LONG_TIMEOUT, what="the port mapper")
        yield port
    finally:
        proc.kill()
        proc.wait(10)


def copy_source_tree(dest: "os.PathLike[str]") -> str:
    """Copy what ``pip install`` needs of this checkout to ``dest``; return its path.

    pip builds in the source tree (``build/``, ``*.egg-info``): tests that
    install mpactors build from a copy, and the checkout stays clean.
    """
    import shutil
    from pathlib import Path

    root, out = Path(__file__).resolve().parent.parent, Path(dest)
    shutil.copytree(root / "mpactors", out / "mpactors", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, out / name)
    return str(out)
