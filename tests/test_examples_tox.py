"""examples/testing, a user project that tests its actors with mpactors.testing,
passes under its own tox (a fresh virtual environment, mpactors installed
from a copy of this tree)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import copy_source_tree

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "testing"

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(900)]


def test_the_testing_example_passes_under_its_own_tox(tmp_path: Path) -> None:
    pytest.importorskip("tox", reason="needs tox (pip install tox)")
    # Copies: tox and pip write into the project and the tree they build.
    src = copy_source_tree(tmp_path / "mpactors-src")
    project = tmp_path / "example"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".tox", "*.egg-info"))
    # The outer tox's and pytest's settings are not the user's.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOX_", "PYTEST_", "MPACTORS_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["MPACTORS_SRC"] = src
    done = subprocess.run(
        [sys.executable, "-m", "tox", "-c", str(project / "tox.ini"), "--workdir", str(tmp_path / "tox"),
         "-e", "py", "--", "-v", "-p", "no:cacheprovider"],
        cwd=project, env=env, capture_output=True, text=True, timeout=840, check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for test in ("test_one_tally_on_the_test_node", "test_increments_reach_every_node",
                 "test_a_killed_node_takes_its_tally_with_it",
                 "test_a_partition_keeps_increments_apart_until_it_heals",
                 "test_a_test_that_forgets_an_actor_fails_naming_it"):
        assert f"{test} PASSED" in out, f"{test} did not pass:\n{out}"
    assert "5 passed" in out
