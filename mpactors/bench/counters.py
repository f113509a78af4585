"""``python -m mpactors.bench.counters`` (``scripts/bench-counters``): what the message counters cost.

The counters (:mod:`mpactors._core._counters`) are bumped for every message
sent, arriving and handled. This benchmark runs the local round trip and the
local one-way throughput in fresh interpreters, alternately with the counters
on and off (``MPACTORS_COUNTERS=0``), in ABBA order so that a drift of the
machine's load hits both modes alike, and reports for each mode the median,
the spread (min-max) and, for the difference of the medians, a bootstrap 95%
interval: a difference inside that interval is below what the run can
resolve. Beside the wall-clock figures it reports the CPU time the actors
used (per round trip, per message), which a loaded machine inflates less.
A third figure sends to itself and receives in one thread (CPU time per
message): the whole local path of a message with no wake-ups of other
processes, the least noisy of the three. ``/proc/loadavg`` is read before
every run. A ``timeit`` (CPU time) of the
increments themselves gives their cost per message in nanoseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import timeit
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["main"]

# Wall-clock figures, and the CPU time the actors used (user + system of the
# reaped children): a figure a loaded machine inflates much less.
_CHILD = """
import json, resource, sys
from mpactors.bench._local import rt_mpactors, tput_mpactors
def kids():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
rounds, n = int(sys.argv[1]), int(sys.argv[2])
c0 = kids()
rt = rt_mpactors(rounds, 500)
c1 = kids()
tput = tput_mpactors(n, 0)
c2 = kids()
# The whole local path of a message in one thread (send to self, then
# receive): no other process, so no wake-ups and far less scheduling noise.
import time
import mpactors
with mpactors.Node():
    me = mpactors.self()
    for i in range(2000):
        mpactors.send(me, i)
        mpactors.receive()
    t0 = time.process_time()
    for _ in range(n // 500):
        for i in range(500):
            mpactors.send(me, i)
        for _ in range(500):
            mpactors.receive()
    self_cpu = (time.process_time() - t0) / (n // 500 * 500)
print(json.dumps({"rt_us": rt * 1e6, "rt_cpu_us": (c1 - c0) / (rounds + 500) * 1e6,
                  "tput": tput, "tput_cpu_us": (c2 - c1) / n * 1e6, "self_cpu_us": self_cpu * 1e6}))
"""


def _loadavg() -> Optional[float]:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def _run(counting: bool, rounds: int, n: int) -> Dict[str, Any]:
    env = dict(os.environ, MPACTORS_COUNTERS="1" if counting else "0")
    load = _loadavg()
    out = subprocess.run([sys.executable, "-c", _CHILD, str(rounds), str(n)], env=env, capture_output=True,
                         text=True, timeout=600, check=True).stdout
    return {**json.loads(out.strip().splitlines()[-1]), "load": load}


def _bootstrap(on: Sequence[float], off: Sequence[float], seed: int = 1) -> List[float]:
    """95% interval of (median(on) / median(off) - 1), by resampling each mode's runs."""
    rng = random.Random(seed)
    diffs = []
    for _ in range(2000):
        a = statistics.median(rng.choices(on, k=len(on)))
        b = statistics.median(rng.choices(off, k=len(off)))
        diffs.append(a / b - 1)
    diffs.sort()
    return [diffs[int(0.025 * len(diffs))], diffs[int(0.975 * len(diffs)) - 1]]


def _increments_ns() -> float:
    """ns per message for the bumps a message costs (out: 2, in: 2, handled: 1, with their flag checks)."""
    setup = "from mpactors._core._counters import Counters\nc = Counters()\non = True\nn = 100"
    stmt = ("if on:\n c.messages_out += 1\n c.bytes_out += n\n"
            "if on:\n c.messages_in += 1\n c.bytes_in += n\n"
            "if on:\n c.handled += 1")
    number = 1_000_000
    # CPU time, not wall time: a loaded machine preempts a wall-clock timing.
    best = min(timeit.repeat(stmt, setup, number=number, repeat=7, timer=time.process_time))
    empty = min(timeit.repeat("pass", setup, number=number, repeat=7, timer=time.process_time))
    return (best - empty) / number * 1e9


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mpactors.bench.counters", description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5, help="ABBA pairs: each mode runs 2 x PAIRS times")
    ap.add_argument("--rounds", type=int, default=5000, help="round trips per run")
    ap.add_argument("--messages", type=int, default=20000, help="messages per throughput run")
    ap.add_argument("--json", action="store_true", help="print the runs and the summary as JSON")
    args = ap.parse_args(argv)
    runs: Dict[str, List[Dict[str, Any]]] = {"on": [], "off": []}
    for i in range(args.pairs):
        for mode in ("on", "off", "off", "on") if i % 2 == 0 else ("off", "on", "on", "off"):
            runs[mode].append(_run(mode == "on", args.rounds, args.messages))
            print(f"run {sum(map(len, runs.values()))}: counters {mode}: {runs[mode][-1]}", file=sys.stderr)
    summary: Dict[str, Any] = {"increments_ns_per_message": round(_increments_ns(), 1)}
    keys = (("rt_us", "lower"), ("rt_cpu_us", "lower"), ("tput", "higher"), ("tput_cpu_us", "lower"),
            ("self_cpu_us", "lower"))
    for key, better in keys:
        on = [r[key] for r in runs["on"]]
        off = [r[key] for r in runs["off"]]
        summary[key] = {
            "on": {"median": statistics.median(on), "min": min(on), "max": max(on)},
            "off": {"median": statistics.median(off), "min": min(off), "max": max(off)},
            "change": statistics.median(on) / statistics.median(off) - 1,
            "interval95": _bootstrap(on, off),
            "better": better,
        }
    loads = [r["load"] for rs in runs.values() for r in rs if r["load"] is not None]
    summary["loadavg"] = {"min": min(loads), "max": max(loads)} if loads else None
    summary["runs_per_mode"] = len(runs["on"])
    if args.json:
        print(json.dumps({"runs": runs, "summary": summary}, indent=2))
        return 0
    print(f"{summary['runs_per_mode']} runs per mode (ABBA), loadavg {summary['loadavg']}")
    for key, title in (("rt_us", "local round trip (us)"), ("rt_cpu_us", "  its actors' CPU per round trip (us)"),
                       ("tput", "local throughput (msg/s)"), ("tput_cpu_us", "  its actors' CPU per message (us)"),
                       ("self_cpu_us", "send to self + receive, one thread (CPU us)")):
        s = summary[key]
        lo, hi = s["interval95"]
        print(f"{title}: on {s['on']['median']:.1f} [{s['on']['min']:.1f}-{s['on']['max']:.1f}], "
              f"off {s['off']['median']:.1f} [{s['off']['min']:.1f}-{s['off']['max']:.1f}], "
              f"change {s['change'] * 100:+.1f}% (95% interval {lo * 100:+.1f}% .. {hi * 100:+.1f}%)")
    print(f"the increments alone: {summary['increments_ns_per_message']} ns per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
