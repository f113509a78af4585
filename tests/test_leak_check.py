"""The leftover-process check of conftest.py sees processes that are not the test's children.

A node started with ``MPACTORS_EPMD_PORT`` at a port where no port mapper
answers starts one, detached: it outlives the node (as Erlang's epmd does)
and its parent is init, not the test. The check finds it by the tag every
process of the test inherits (``MPACTORS_TEST_TAG``), fails the test naming
it, and stops it. Here a test file leaks one on purpose, run with this
directory's conftest.py in a pytest subprocess (``pytester``).
"""
from __future__ import annotations

import os
import secrets
import textwrap
from pathlib import Path
from typing import List

import psutil
import pytest

from support import LONG_TIMEOUT, wait_until

from mpactors.testing import TAG_VARIABLE, processes_with_env

HERE = Path(__file__).resolve().parent


def _port_mappers_with(probe: str) -> List[psutil.Process]:
    """Port mappers started under this test's ``LEAK_PROBE`` (no one else's)."""
    return [p for p in processes_with_env("LEAK_PROBE", probe) if "epmd" in " ".join(p.cmdline())]


def test_the_check_fails_a_test_that_leaves_a_detached_port_mapper_and_stops_it(
    pytester: pytest.Pytester, epmd_port: int, mpactors_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = secrets.token_hex(8)
    monkeypatch.setenv("LEAK_PROBE", probe)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])))
    pytester.makeconftest((HERE / "conftest.py").read_text())
    pytester.makepyfile(support=(HERE / "support.py").read_text())
    pytester.makepyfile(test_user=textwrap.dedent(
        """
        import os, subprocess, sys

        # The node runs in a process that ends: the port mapper it started is no child of the test.
        NODE = "import mpactors; mpactors.Node('leaky', cookie='leak-check').start().stop()"

        def test_a_node_process_starts_a_port_mapper_and_ends():
            subprocess.run([sys.executable, "-c", NODE], check=True, timeout=60)

        def test_the_same_without_the_tag_in_a_private_home(epmd_port, mpactors_home):
            env = {k: v for k, v in os.environ.items() if k != "MPACTORS_TEST_TAG"}
            subprocess.run([sys.executable, "-c", NODE], check=True, timeout=60, env=env)

        def test_starts_nothing():
            pass
        """
    ))
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:mpactors.testing",
                                               timeout=LONG_TIMEOUT * 4)
        result.assert_outcomes(passed=3, errors=2)
        result.stdout.fnmatch_lines([f"*processes outlived the test*mpactors epmd port {epmd_port}*",
                                     "*processes outlived the test*mpactors epmd port *"])
        assert _port_mappers_with(probe) == []  # the check stopped them
    finally:
        leaked = _port_mappers_with(probe)
        for p in leaked:
            p.kill()
        psutil.wait_procs(leaked, timeout=10)


def test_a_process_started_by_the_test_carries_its_tag_and_no_other_does() -> None:
    tag = os.environ[TAG_VARIABLE]
    assert processes_with_env(TAG_VARIABLE, tag) == []  # not even this process
    proc = psutil.Popen(["sleep", "60"])
    try:
        # Until it execs, the child shows its parent's environment as first exec'd (without the tag).
        found = wait_until(lambda: processes_with_env(TAG_VARIABLE, tag), what="the child's environment")
        assert [p.pid for p in found] == [proc.pid]
        assert processes_with_env(TAG_VARIABLE, tag + "-other") == []
    finally:
        proc.kill()
        proc.wait(10)
