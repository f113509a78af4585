"""Crash reports: a supervisor logs exactly one record per abnormal exit of a
child, naming the child id, its pid, the reason and (for a crash) the child's
traceback; normal ends and shutdowns are not reported.

Erlang (OTP 25, ``supervisor.erl``): ``report_error(child_terminated, Reason,
Child, SupName)`` is logged once for each exit that is not ``normal``,
``shutdown`` or ``{shutdown, _}``, with the child's id, pid and reason.
"""
from __future__ import annotations

import re
from typing import List

import pytest
from nodes import cluster, cookie, local_node, run_node  # noqa: F401 - fixtures
from support import LONG_TIMEOUT, wait_until

import mpactors
from mpactors import ChildSpec, Supervisor, genserver
from mpactors.supervisor import start_child, which_children

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("cluster")]

_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.MULTILINE)


def crasher(tag: str, report_to: mpactors.Pid) -> None:
    """Reports ``('up', tag, pid)``; then raises on ``'crash'``, returns on ``'quit'``, exits on ``('exit', r)``."""
    mpactors.send(report_to, ("up", tag, mpactors.self()))
    msg = mpactors.receive()
    if msg == "crash":
        raise ValueError(f"{tag} was told to crash")
    if isinstance(msg, tuple) and msg[0] == "exit":
        mpactors.exit(msg[1])


def records(text: str) -> List[str]:
    """The node's log split into records (a record may span lines: tracebacks)."""
    starts = [m.start() for m in _RECORD_START.finditer(text)] + [len(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:])]


def reports(text: str, child_id: str) -> List[str]:
    return [r for r in records(text) if re.search(rf"supervisor \S+: child {re.escape(repr(child_id))} \(", r)]


def up(tag: str) -> mpactors.Pid:
    return mpactors.receive(("up", tag, mpactors.Pid), timeout=LONG_TIMEOUT)[2]


def test_one_crash_report_per_abnormal_exit_with_id_pid_reason_and_traceback() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        b.call("import test_supervisor_crash_reports")
        specs = [
            ChildSpec("crashy", crasher, args=("crashy", me)),
            ChildSpec("quits", crasher, args=("quits", me), restart="transient"),
            ChildSpec("exits", crasher, args=("exits", me)),
            ChildSpec("temp", crasher, args=("temp", me), restart="temporary"),
        ]
        sup = Supervisor.start(specs, node=b.name, max_restarts=50)
        pids = {tag: up(tag) for tag in ("crashy", "quits", "exits", "temp")}

        mpactors.send(pids["crashy"], "crash")  # an exception: reported with its traceback
        again = up("crashy")
        mpactors.send(again, "crash")  # a second crash: a second report
        up("crashy")
        mpactors.send(pids["quits"], "quit")  # 'normal': not reported (and transient: not restarted)
        mpactors.send(pids["exits"], ("exit", ("shutdown", "asked")))  # {shutdown, _}: not reported
        mpactors.send(up("exits"), "return")  # returns: 'normal', restarted (permanent), not reported
        up("exits")
        mpactors.send(pids["temp"], ("exit", "gone wrong"))  # temporary: not restarted, but reported
        wait_until(lambda: "temp" not in [c[0] for c in which_children(sup)], LONG_TIMEOUT, what="temp to go")

        log = b.wait_log(r"child 'temp' \(\S+\) exited with 'gone wrong'").string
        crashy = reports(log, "crashy")
        assert len(crashy) == 2, crashy
        for record, pid in zip(crashy, (pids["crashy"], again)):
            assert str(pid) in record
            assert "ValueError" in record and "crashy was told to crash" in record
            assert "Traceback (most recent call last)" in record and "in crasher" in record  # the child's traceback
        assert reports(log, "quits") == []
        assert reports(log, "exits") == []
        temp = reports(log, "temp")
        assert len(temp) == 1 and str(pids["temp"]) in temp[0] and "'gone wrong'" in temp[0]
        genserver.stop(sup)
        # Stopping the supervisor shuts its children down: no report for that.
        assert len(reports(b.log_text(), "crashy")) == 2


def test_a_dynamic_childs_kill_is_reported_once() -> None:
    with run_node() as b, local_node():
        me = mpactors.self()
        b.call("import test_supervisor_crash_reports")
        sup = Supervisor.start([], node=b.name)
        pid = start_child(sup, ChildSpec("dyn", crasher, args=("dyn", me)))
        assert up("dyn") == pid
        mpactors.exit(pid, "kill")
        assert up("dyn") != pid
        log = b.wait_log(r"child 'dyn' \(\S+\) exited with 'killed'").string
        [record] = reports(log, "dyn")
        assert str(pid) in record
        genserver.stop(sup)
