"""Reporting for :mod:`mpactors.bench`: the machine's description and the Markdown table."""
from __future__ import annotations

import os
import platform
import time
from typing import Any, Dict, Optional, Sequence

from ._util import Row

__all__ = ["machine", "table"]


def machine() -> Dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "commit": _commit(),
        "nproc": os.cpu_count(), "cpu": model or platform.processor(),
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "platform": platform.platform(), "loadavg": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def _commit() -> str:
    """The source checkout's commit (``+changes`` when mpactors/ has changed or new files), if any."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--", "mpactors"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+changes" if head and dirty else "")


def _fmt(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    if unit == "msg/s":
        return f"{value:,.0f} msg/s"
    if unit in ("us", "ms"):
        return f"{value:,.1f} {'µs' if unit == 'us' else 'ms'}"
    if unit == "MiB":
        return f"{value:.2f} MiB"
    return f"{value:.3g} {unit}"


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| benchmark | mpactors | baseline | baseline value | ratio | target | met |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for r in rows:
        if r.error:
            met = "ERROR"
        elif r.met is None:
            met = "-"
        else:
            met = "yes" if r.met else "**no**"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        name = r.name + (f" ({r.note})" if r.note else "")
        lines.append(
            f"| {name} | {_fmt(r.value, r.unit)} | {r.baseline_name or '-'} | {_fmt(r.baseline, r.unit)} "
            f"| {ratio} | {r.target or '-'} | {met} |"
        )
    lines += ["", "ratio = mpactors / baseline: lower is better for times and memory, higher for rates (msg/s)."]
    errors = [f"- {r.id}: {r.error}" for r in rows if r.error]
    return "\n".join(lines + ([""] + errors if errors else []))
