"""SPEC Part 2 "Semantics fixes", each checked against what Erlang/OTP does.

Where ``erl`` is installed (Debian/Ubuntu ``erlang-nox``), each test first
runs the same scenario in Erlang and asserts its outcome, so the expectation
below is Erlang's and not ours; without ``erl`` that part is skipped and the
docstring states the outcome, obtained with Erlang/OTP 25 (erts 13) by
running the quoted code with ``erl -noshell -eval``.
"""
from __future__ import annotations

import shutil
import subprocess
import pytest

import mpactors
from mpactors import Down, ExitSignal, NoProc, Pid
from nodes import cluster, cookie, local_node, run_node  # noqa: F401 - cluster and cookie are fixtures
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

pytestmark = pytest.mark.timeout(90)

ERL = shutil.which("erl")


def erl(expr: str) -> str:
    """Evaluate Erlang statements in a fresh ``erl`` (they must print the result); the printed text."""
    if ERL is None:
        pytest.skip("erl is not installed: the docstring states Erlang's outcome")
    proc = subprocess.run(
        [ERL, "-noshell", "-eval", expr + " halt()."], capture_output=True, text=True, timeout=LONG_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# Erlang scenarios: each runs in a fresh process (spawn), whose trap_exit flag is known.
LINK_DEAD_NOT_TRAPPING = """
Self = self(),
Dead = spawn(fun() -> ok end), timer:sleep(50),
spawn(fun() ->
    R = try link(Dead) of true -> linked catch error:noproc -> raised_noproc end,
    Self ! {result, R} end),
receive {result, R} -> io:format("~p~n", [R]) after 5000 -> io:format("none~n") end,
"""

LINK_DEAD_TRAPPING = """
Self = self(),
Dead = spawn(fun() -> ok end), timer:sleep(50),
spawn(fun() ->
    process_flag(trap_exit, true),
    R = link(Dead),
    M = receive {'EXIT', Dead, Why} -> {exit_signal, Why} after 1000 -> nothing end,
    Self ! {result, R, M} end),
receive {result, R, M} -> io:format("~p ~p~n", [R, M]) after 5000 -> io:format("none~n") end,
"""

MONITOR_NAME = """
register(server, spawn(fun() -> receive stop -> ok end end)),
R1 = monitor(process, server),
R2 = monitor(process, {server, node()}),
server ! stop,
D1 = receive {'DOWN', R1, process, P1, _} -> P1 after 5000 -> none end,
D2 = receive {'DOWN', R2, process, P2, _} -> P2 after 5000 -> none end,
io:format("~p ~p~n", [D1 =:= {server, node()}, D2 =:= {server, node()}]),
"""


# -- actors -----------------------------------------------------------------------
def link_and_report(target: Pid, trap: bool, report_to: Pid) -> None:
    mpactors.trap_exit(trap)
    try:
        mpactors.link(target)
    except NoProc as exc:
        mpactors.send(report_to, ("raised", str(exc)))
    else:
        mpactors.send(report_to, ("linked", mpactors.receive(timeout=SHORT_TIMEOUT) if trap else None))
    mpactors.send(report_to, ("alive", mpactors.process_info(mpactors.self())["links"]))


def link_then_wait(target: Pid) -> None:
    mpactors.link(target)
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def wait_for_stop() -> None:
    mpactors.receive("stop", timeout=LONG_TIMEOUT)


def dead_pid() -> Pid:
    pid, _ = mpactors.spawn_monitor(lambda: None)
    mpactors.receive(Down, timeout=SHORT_TIMEOUT)
    return pid


# -- link to a dead pid ----------------------------------------------------------
def test_link_to_a_dead_pid_without_trapping_raises_noproc(node: mpactors.Node) -> None:
    """Erlang: ``link/1`` on a dead local pid in a process that does not trap
    exits raises ``error:noproc`` (the process lives on if it catches it);
    printed ``raised_noproc`` for LINK_DEAD_NOT_TRAPPING above."""
    assert erl(LINK_DEAD_NOT_TRAPPING) == "raised_noproc"
    dead = dead_pid()
    mpactors.spawn(link_and_report, dead, False, mpactors.self())
    tag, text = mpactors.receive(timeout=LONG_TIMEOUT)
    assert tag == "raised" and str(dead) in text
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("alive", [])  # caught: it lives on, with no link
    # The node's main process too.
    with pytest.raises(NoProc):
        mpactors.link(dead)
    assert mpactors.process_info(mpactors.self())["links"] == []
    assert issubclass(NoProc, mpactors.MpactorsError)


def test_link_to_a_dead_pid_while_trapping_gives_exit_signal_noproc(node: mpactors.Node) -> None:
    """Erlang: a trapping process's ``link/1`` on a dead pid returns ``true`` and
    the process receives ``{'EXIT', Pid, noproc}``; printed
    ``true {exit_signal,noproc}`` for LINK_DEAD_TRAPPING above."""
    assert erl(LINK_DEAD_TRAPPING) == "true {exit_signal,noproc}"
    dead = dead_pid()
    mpactors.spawn(link_and_report, dead, True, mpactors.self())
    assert mpactors.receive(timeout=LONG_TIMEOUT) == ("linked", ExitSignal(dead, "noproc"))
    assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("alive", [])


def test_link_to_a_live_pid_still_links(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    mpactors.link(pid)
    assert mpactors.process_info(mpactors.self())["links"] == [pid]
    mpactors.unlink(pid)
    mpactors.send(pid, "stop")


@pytest.mark.usefixtures("cluster")
def test_link_to_a_dead_remote_pid_gives_the_noproc_exit_signal_by_the_usual_rules() -> None:
    """SPEC: for a remote pid the exit signal ``'noproc'`` arrives as a message
    or kills. (Erlang: over distribution ``link/1`` returns ``true`` and the
    remote node answers with an exit signal ``noproc``.)"""
    with run_node() as b, local_node():
        dead = b.call("p = mpactors.spawn(lambda: None)\nresult = p")
        wait_until(lambda: mpactors.process_info(dead) is None, LONG_TIMEOUT, what="the remote pid to end")
        me = mpactors.self()
        trapping = mpactors.spawn(link_and_report, dead, True, me)
        assert mpactors.receive(timeout=LONG_TIMEOUT) == ("linked", ExitSignal(dead, "noproc"))
        assert mpactors.receive(timeout=SHORT_TIMEOUT) == ("alive", [])
        not_trapping, ref = mpactors.spawn_monitor(link_then_wait, dead)
        down = mpactors.receive(Down, timeout=LONG_TIMEOUT)
        assert (down.pid, down.reason) == (not_trapping, "noproc")
        del trapping


# -- monitor of a name -------------------------------------------------------------
def test_down_of_a_monitored_name_names_name_and_node(node: mpactors.Node) -> None:
    """Erlang: the ``'DOWN'`` of ``monitor(process, server)`` and of
    ``monitor(process, {server, node()})`` carries ``{server, Node}``, not the
    pid; printed ``true true`` for MONITOR_NAME above."""
    assert erl(MONITOR_NAME) == "true true"
    pid = mpactors.spawn(wait_for_stop)
    mpactors.register("sem-server", pid)
    r1 = mpactors.monitor("sem-server")
    r2 = mpactors.monitor(("sem-server", mpactors.node()))
    r3 = mpactors.monitor(pid)
    mpactors.send(pid, "stop")
    downs = {d.ref: d for d in (mpactors.receive(Down, timeout=SHORT_TIMEOUT) for _ in range(3))}
    assert downs[r1] == Down(r1, ("sem-server", mpactors.node()), "normal")
    assert downs[r2] == Down(r2, ("sem-server", mpactors.node()), "normal")
    assert downs[r3] == Down(r3, pid, "normal")  # a monitor on the pid still names the pid


def test_demonitor_of_a_name_drops_the_monitor_from_its_process(node: mpactors.Node) -> None:
    pid = mpactors.spawn(wait_for_stop)
    mpactors.register("sem-demon", pid)
    ref = mpactors.monitor("sem-demon")
    assert mpactors.process_info(pid)["monitored_by"] == [mpactors.self()]
    assert mpactors.demonitor(ref) is True
    assert mpactors.process_info(pid)["monitored_by"] == []
    mpactors.send(pid, "stop")
    mpactors.monitor(pid)
    assert mpactors.receive(Down, timeout=SHORT_TIMEOUT).pid == pid  # only this one: the named one is gone
    with pytest.raises(mpactors.Timeout):
        mpactors.receive(Down, timeout=0.2)


@pytest.mark.usefixtures("cluster")
def test_down_of_a_remote_name_names_name_and_node_and_demonitor_reaches_it() -> None:
    with run_node() as b, local_node():
        target = b.call("import nodes\np = mpactors.spawn(nodes.wait_forever)\nmpactors.register('sem-remote', p)\nresult = p")
        ref = mpactors.monitor(("sem-remote", b.name))
        wait_until(lambda: mpactors.process_info(target)["monitored_by"], LONG_TIMEOUT, what="the remote monitor")
        assert mpactors.demonitor(ref) is True
        wait_until(lambda: mpactors.process_info(target)["monitored_by"] == [], LONG_TIMEOUT,
                   what="the remote monitor to go")
        ref = mpactors.monitor(("sem-remote", b.name))
        mpactors.exit(target, "kill")
        assert mpactors.receive(Down, timeout=LONG_TIMEOUT) == Down(ref, ("sem-remote", b.name), "killed")
        ref = mpactors.monitor(("sem-remote", b.name))  # no longer registered
        assert mpactors.receive(Down, timeout=LONG_TIMEOUT) == Down(ref, ("sem-remote", b.name), "noproc")


def test_errors_are_importable_from_mpactors_and_already_started_has_pid() -> None:
    import pickle

    assert issubclass(mpactors.NoProc, mpactors.MpactorsError)
    assert issubclass(mpactors.AlreadyStarted, mpactors.MpactorsError)
    holder = Pid("a@host", 5, 0, 1)
    err = pickle.loads(pickle.dumps(mpactors.AlreadyStarted("name taken", pid=holder)))
    assert err.pid == holder and "name taken" in str(err)
