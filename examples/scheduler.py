"""A cluster-wide singleton: one scheduler in the cluster, that moves when its node dies.

Run: python examples/scheduler.py

This script becomes node ``sched_a`` (an observer) and starts nodes
``sched_b`` and ``sched_c`` as separate OS processes. On each of them a
*candidate* actor tries to start the ``Scheduler`` GenServer under the
global name ``('global', 'scheduler')`` (:mod:`mpactors.global_registry`,
Erlang's ``{global, Name}``): exactly one wins, the other gets
``AlreadyStarted`` with the winner's pid, monitors it and waits. The
scheduler runs a job every 0.2 s with ``send_interval`` (a timer kept by
its node, no process per timer).

The script asks the scheduler where it runs (``call(('global',
'scheduler'), ...)``, wherever that is), then SIGKILLs that node: the name is
released with the lost node, the other candidate gets its ``Down``, starts
the scheduler on its own node, and calls to ``('global', 'scheduler')``
reach it there. (The job's state starts again with the new process: keep
what must survive elsewhere.) On the way out it stops the nodes, and the port
mapper if it started one.
"""
from __future__ import annotations

import logging
import os
from typing import Any, List

from _cluster import DEADLINE, OtherNode, other_nodes, serve_if_asked, until

import mpactors
from mpactors import AlreadyStarted, Down, GenServer, genserver, global_registry

NAME = "scheduler"


class Scheduler(GenServer):
    """The singleton: runs its job on a timer and answers where it runs."""

    def init(self) -> None:
        self.runs = 0
        self.timer = mpactors.send_interval(0.2, mpactors.self(), "run the job")

    def handle_info(self, msg: Any) -> None:
        if msg == "run the job":
            self.runs += 1

    def handle_call(self, request: Any, frm: Any) -> Any:
        if request == "where":
            return mpactors.node(), os.getpid(), self.runs
        return None


def candidate(report_to: mpactors.Pid) -> None:
    """On each node: start the scheduler under the global name, or wait for the one who did."""
    while True:
        try:
            pid = Scheduler.start(name=("global", NAME))
            mpactors.send(report_to, ("started", mpactors.node(), pid))
        except AlreadyStarted as exc:
            pid = exc.pid  # someone else runs it: watch it
        except mpactors.MpactorsError:  # the holder went away while we looked: try again
            continue
        ref = mpactors.monitor(pid)
        mpactors.receive(lambda m: type(m) is Down and m.ref == ref)


def where() -> Any:
    return genserver.call(("global", NAME), "where", timeout=2.0)


def job_ran_twice() -> Any:
    """``where()`` once the job has run at least twice, else None."""
    node, os_pid, runs = where()
    return (node, os_pid, runs) if runs >= 2 else None


def demo(others: List[OtherNode]) -> None:
    me = mpactors.self()
    for other in others:
        mpactors.spawn(candidate, me, node=other.name)
    first_node, first_pid = mpactors.receive(lambda m: m[0] == "started", timeout=DEADLINE)[1:]
    print(f"the scheduler started on {first_node}: {first_pid}")
    until("the name to be known here", lambda: global_registry.whereis_name(NAME) == first_pid)
    node, os_pid, runs = until("the job to run twice", job_ran_twice)
    print(f"call(('global', {NAME!r}), 'where') -> {node}, os pid {os_pid}, job ran {runs} times")

    running_it = next(other for other in others if other.name == node)
    print(f"SIGKILL node {node} (os pid {running_it.proc.pid})")
    running_it.kill()

    new_node, new_pid = mpactors.receive(lambda m: m[0] == "started", timeout=DEADLINE)[1:]
    print(f"the scheduler started again on {new_node}: {new_pid}")
    until("the name to move", lambda: global_registry.whereis_name(NAME) == new_pid)
    node2, _, runs2 = until("the job to run again", job_ran_twice)
    print(f"moved: {node} -> {node2}; call(('global', {NAME!r}), 'where') -> {node2}, job ran {runs2} times")
    print("global names:", global_registry.registered_names())


def main() -> None:
    if serve_if_asked():  # this process was started as node sched_b or sched_c
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with other_nodes(__file__, ["sched_b", "sched_c"]) as others:
        with mpactors.Node("sched_a"):
            for other in others.values():
                if mpactors.ping(other.name) != "pong":
                    raise SystemExit(f"cannot reach {other.name}")
            demo(list(others.values()))
    print("done")


if __name__ == "__main__":
    main()
