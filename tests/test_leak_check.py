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

from support import LONG_TIMEOUT

from mpactors.testing import TAG_VARIABLE, processes_with_env

HERE = Path(__file__).resolve().parent


def _port_mappers_with(probe: str, port: int) -> List[psutil.Process]:
    """Port mappers on ``port`` started under this test's ``LEAK_PROBE`` (no one else's)."""
    return [p for p in processes_with_env("LEAK_PROBE", probe) if f"epmd port {port}" in " ".join(p.cmdline())
            or ("mpactors.epmd" in p.cmdline() and str(port) in p.cmdline())]


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
        import mpactors

        def test_starts_a_node_with_no_port_mapper_running():
            with mpactors.Node("leaky", cookie="leak-check"):
                pass

        def test_starts_nothing():
            pass
        """
    ))
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:mpactors.testing",
                                               timeout=LONG_TIMEOUT * 4)
        result.assert_outcomes(passed=2, errors=1)
        result.stdout.fnmatch_lines([f"*processes outlived the test*mpactors epmd port {epmd_port}*"])
        assert _port_mappers_with(probe, epmd_port) == []  # the check stopped it
    finally:
        leaked = _port_mappers_with(probe, epmd_port)
        for p in leaked:
            p.kill()
        psutil.wait_procs(leaked, timeout=10)


def test_a_process_started_by_the_test_carries_its_tag_and_no_other_does() -> None:
    tag = os.environ[TAG_VARIABLE]
    assert processes_with_env(TAG_VARIABLE, tag) == []  # not even this process
    proc = psutil.Popen(["sleep", "60"])
    try:
        assert [p.pid for p in processes_with_env(TAG_VARIABLE, tag)] == [proc.pid]
        assert processes_with_env(TAG_VARIABLE, tag + "-other") == []
    finally:
        proc.kill()
        proc.wait(10)
