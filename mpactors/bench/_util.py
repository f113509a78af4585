"""Helpers shared by the benchmark modules: result rows, child processes, subprocesses.

Nothing here is public API; :mod:`mpactors.bench` is the entry point. Every
process a benchmark starts goes through :func:`running` (forked children:
joined, then killed) or :class:`Sub` (subprocesses in their own session: the
whole process group is killed and waited for), so none outlives the run.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

__all__ = [
    "Row", "Sample", "median", "running", "Sub", "wait_conn", "BenchError",
    "WAIT", "JOIN_TIMEOUT", "raise_fd_limit", "die_with_parent", "per_round",
]

#: Longest wait for any one answer inside a benchmark (seconds).
WAIT = 120.0
#: How long a finished child gets to exit before it is killed.
JOIN_TIMEOUT = 10.0


class BenchError(Exception):
    """A benchmark could not produce its figure (its row shows the error)."""


@dataclass
class Sample:
    """The repetitions of one measured quantity (mpactors, or a baseline)."""

    values: List[float] = field(default_factory=list)

    @property
    def median(self) -> Optional[float]:
        return median(self.values)


@dataclass
class Row:
    """One line of the results table.

    ``better`` says which way is good: ``"lower"`` for times and memory,
    ``"higher"`` for rates. ``ratio`` is always ``value / baseline``; a target
    is either a ratio bound (``target_ratio``) or an absolute bound on
    ``value`` (``target_abs``).
    """

    id: str
    name: str
    unit: str
    better: str
    value: Optional[float] = None
    baseline_name: str = ""
    baseline: Optional[float] = None
    target_ratio: Optional[float] = None
    target_abs: Optional[float] = None
    moonshot: bool = False
    samples: List[float] = field(default_factory=list)
    baseline_samples: List[float] = field(default_factory=list)
    params: Dict[str, Any] = field(default_factory=dict)
    note: str = ""
    error: str = ""

    @property
    def ratio(self) -> Optional[float]:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def target(self) -> str:
        op = "<=" if self.better == "lower" else ">="
        if self.target_ratio is not None:
            text = f"{op} {self.target_ratio:g}x"
        elif self.target_abs is not None:
            text = f"{op} {self.target_abs:g} {self.unit}"
        else:
            return ""
        return text + (" (moonshot)" if self.moonshot else "")

    @property
    def met(self) -> Optional[bool]:
        if self.target_ratio is not None:
            r = self.ratio
            if r is None:
                return None
            return r <= self.target_ratio if self.better == "lower" else r >= self.target_ratio
        if self.target_abs is not None and self.value is not None:
            return self.value <= self.target_abs if self.better == "lower" else self.value >= self.target_abs
        return None

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "unit": self.unit, "better": self.better,
            "value": self.value, "baseline_name": self.baseline_name, "baseline": self.baseline,
            "ratio": self.ratio, "target": self.target, "met": self.met,
            "samples": self.samples, "baseline_samples": self.baseline_samples,
            "params": self.params, "note": self.note, "error": self.error,
        }


def median(values: Sequence[float]) -> Optional[float]:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def per_round(one: Callable[[int], None], rounds: int, warmup: int) -> float:
    """Seconds per call of ``one(i)`` over ``rounds`` calls, after ``warmup`` untimed ones."""
    for i in range(warmup):
        one(i)
    t0 = time.perf_counter()
    for i in range(rounds):
        one(i)
    return (time.perf_counter() - t0) / rounds


def raise_fd_limit() -> None:
    """Use the hard descriptor limit (1,000 children need more than 1,024 fds)."""
    from .._core._procs import raise_fd_limit as _raise

    _raise()


def die_with_parent() -> None:
    """``preexec_fn``: SIGKILL this subprocess if the benchmark dies first (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover
            pass


@contextlib.contextmanager
def running(procs: Sequence[Any], *, timeout: float = JOIN_TIMEOUT) -> Iterator[Sequence[Any]]:
    """Start ``multiprocessing.Process`` objects; on exit join them, killing laggards."""
    try:
        for p in procs:
            p.start()
        yield procs
    finally:
        deadline = time.monotonic() + timeout
        for p in procs:
            if p.pid is None:
                continue
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(JOIN_TIMEOUT)


def wait_conn(conn: Any, timeout: float = WAIT, what: str = "a result") -> Any:
    """``conn.recv()`` with a deadline (a ``multiprocessing`` Connection)."""
    if not conn.poll(timeout):
        raise BenchError(f"no {what} within {timeout:g} s")
    return conn.recv()


class Sub:
    """A Python subprocess speaking JSON lines on stdin/stdout, in its own session.

    ``close()`` ends it: stdin is closed (the polite request), then after
    ``grace`` seconds its whole process group (its actors included) gets
    SIGKILL, and the process is waited for.
    """

    def __init__(self, code: str, args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
                 stderr: Any = subprocess.DEVNULL) -> None:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=stderr, env=full_env, start_new_session=True, preexec_fn=die_with_parent,
        )
        self._buf = b""

    def send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float = WAIT, what: str = "an answer") -> Any:
        """The next JSON line; :class:`BenchError` on timeout, exit, or an error answer."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no {what} within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    raise BenchError(f"subprocess exited ({self.proc.poll()}) before {what}")
                self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        msg = json.loads(line)
        if isinstance(msg, dict) and msg.get("error"):
            raise BenchError(f"subprocess failed: {msg['error']}")
        return msg

    def close(self, grace: float = JOIN_TIMEOUT) -> None:
        proc = self.proc
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the node's actors too
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
