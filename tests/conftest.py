"""Fixtures shared by every test.

* ``_no_leftover_processes`` (autouse): proves with psutil that no process a
  test started outlives it (its descendants are checked after the test; any
  still alive after a grace period are killed and the test fails). Detached
  processes are no descendants: a port mapper a node started (its parent is
  init), a node of ``mpactors start --detached``. They are found by their
  environment instead: each test runs with ``MPACTORS_TEST_TAG`` set to a
  value of its own, which every process it starts inherits; and, in a test
  with a private ``MPACTORS_HOME``, by a file they keep open there (a node's
  process title writes over its environment).
* ``epmd_port``: a private port mapper port per test (``MPACTORS_EPMD_PORT``).
* ``mpactors_home``: a private ``MPACTORS_HOME`` per test.
"""
from __future__ import annotations

import itertools
import os
import secrets
import time
from typing import Iterator, List, Optional

import psutil
import pytest

import mpactors
from mpactors.testing import TAG_VARIABLE, is_multiprocessing_helper, processes_using, processes_with_env

from support import free_port


def _descendants() -> List[psutil.Process]:
    """This process's descendants, but for multiprocessing's helpers (they live as long as it does)."""
    try:
        return [p for p in psutil.Process().children(recursive=True) if not is_multiprocessing_helper(p)]
    except psutil.NoSuchProcess:  # pragma: no cover
        return []


def _alive(procs: List[psutil.Process]) -> List[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


_tests = itertools.count(1)


def _detached(tag: str, home: Optional[str]) -> List[psutil.Process]:
    """Processes started under this test's tag, or using its private home, wherever they sit in the tree."""
    found = {p.pid: p for p in processes_with_env(TAG_VARIABLE, tag)}
    if home is not None and os.path.isdir(home):
        found.update((p.pid, p) for p in processes_using(home))
    return [p for p in found.values() if not is_multiprocessing_helper(p)]


@pytest.fixture(autouse=True)
def _no_leftover_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    before = {p.pid for p in _descendants()}
    tracked: dict = {}
    tag = f"{os.getpid()}-{next(_tests)}-{secrets.token_hex(4)}"
    saved = os.environ.get(TAG_VARIABLE)
    os.environ[TAG_VARIABLE] = tag
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(TAG_VARIABLE, None)
        else:
            os.environ[TAG_VARIABLE] = saved
    # Tests that start port mappers detached may also list them in
    # `request.node.mpactors_pids` (for one started with a fresh environment).
    extra = []
    for pid in getattr(request.node, "mpactors_pids", []):
        try:
            extra.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    leftovers = [p for p in _descendants() if p.pid not in before] + extra
    seen = {p.pid for p in leftovers}
    leftovers += [p for p in _detached(tag, getattr(request.node, "mpactors_home", None)) if p.pid not in seen]
    deadline = time.monotonic() + 3.0
    while _alive(leftovers) and time.monotonic() < deadline:
        time.sleep(0.02)
    survivors = _alive(leftovers)
    for p in survivors:
        try:
            tracked[p.pid] = " ".join(p.cmdline()).strip()
            p.kill()
        except psutil.Error:  # gone, or a zombie meanwhile
            tracked.setdefault(p.pid, "?")
    psutil.wait_procs(survivors, timeout=3)
    if survivors:
        pytest.fail(f"processes outlived the test: {tracked}")


@pytest.fixture
def epmd_port(monkeypatch: pytest.MonkeyPatch) -> int:
    port = free_port()
    monkeypatch.setenv("MPACTORS_EPMD_PORT", str(port))
    return port


@pytest.fixture
def mpactors_home(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    home = os.path.join(str(tmp_path), "mpactors-home")
    monkeypatch.setenv("MPACTORS_HOME", home)
    request.node.mpactors_home = home  # a process with a file open there at the end is the test's
    return home


@pytest.fixture
def epmd(epmd_port: int, mpactors_home: str) -> Iterator[int]:
    """A private port mapper for this test (our daemon, on loopback); yields its port."""
    from support import port_mapper

    with port_mapper(epmd_port):
        yield epmd_port


@pytest.fixture(scope="module")
def multiprocessing_helpers() -> Iterator[None]:
    """Start multiprocessing's fork server and resource tracker before the tests.

    The ``forkserver`` and ``spawn`` start methods start these helpers on
    first use, and they live as long as the pytest process: started inside a
    test they would be reported as left-over processes. Started here, they
    predate every test's snapshot, and they are stopped when the module is
    done (private API: the only way multiprocessing offers).
    """
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()
    forkserver.ensure_running()
    yield
    forkserver._forkserver._stop()  # type: ignore[attr-defined]
    resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


@pytest.fixture
def node() -> Iterator[mpactors.Node]:
    """A local-only node (``nonode@nohost``) in the test process, stopped after the test."""
    with mpactors.Node() as n:
        yield n
