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
