"""The benchmark suite runs end to end (``--quick --json``); no timing is asserted."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from mpactors.bench import GROUP_ROWS, GROUPS

# The quick run takes some 20 s on a quiet machine, minutes on a loaded one.
_TIMEOUT = 600.0


@pytest.mark.slow
@pytest.mark.timeout(_TIMEOUT + 60)
def test_quick_benchmark_run_gives_a_number_for_every_row() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpactors.bench", "--quick", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    report = json.loads(out)
    assert report["quick"] is True
    assert report["leftover_processes"] == []
    rows = {row["id"]: row for row in report["rows"]}
    expected = [rid for group in GROUPS for rid in GROUP_ROWS[group]]
    assert sorted(rows) == sorted(expected)
    for rid in expected:
        row = rows[rid]
        assert row["error"] == "", (rid, row["error"])
        assert isinstance(row["value"], float) and math.isfinite(row["value"]) and row["value"] > 0, (rid, row)
        if row["baseline_name"]:
            assert isinstance(row["baseline"], float) and row["baseline"] > 0, (rid, row)
            assert isinstance(row["ratio"], float) and math.isfinite(row["ratio"]), (rid, row)
        if row["target"]:
            assert isinstance(row["met"], bool), (rid, row)


_LEAKS_A_PORT_MAPPER = """
import json, os, subprocess, sys
from mpactors import bench
os.environ["MPACTORS_BENCH_RUN"] = sys.argv[1]
# A node of the run starts a port mapper detached and ends: the port mapper is no child of ours.
subprocess.run([sys.executable, "-c", "from mpactors import epmd; epmd.ensure_running(bind_host='127.0.0.1')"],
               check=True, timeout=60)
print(json.dumps(bench._leftovers()))
"""


def test_the_final_sweep_stops_a_port_mapper_the_run_left_detached(epmd_port: int, mpactors_home: str) -> None:
    import os
    import secrets

    import psutil

    from mpactors.testing import processes_with_env

    run_id = f"probe-{secrets.token_hex(8)}"
    try:
        done = subprocess.run([sys.executable, "-c", _LEAKS_A_PORT_MAPPER, run_id],
                              capture_output=True, text=True, timeout=120, env=dict(os.environ))
        assert done.returncode == 0, done.stderr
        leftovers = json.loads(done.stdout)
        # named by its title (with setproctitle) or its command line
        assert len(leftovers) == 1 and (f"epmd port {epmd_port}" in leftovers[0]
                                        or f"mpactors.epmd --port {epmd_port}" in leftovers[0]), leftovers
        assert processes_with_env("MPACTORS_BENCH_RUN", run_id) == []
    finally:
        strays = processes_with_env("MPACTORS_BENCH_RUN", run_id)
        for p in strays:
            p.kill()
        psutil.wait_procs(strays, timeout=10)
