"""Actor bodies for test_mixed_versions.py, importable on nodes of any Python.

Only mpactors and the standard library: the nodes' virtual environments have
mpactors and its dependencies, not pytest.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List

import mpactors
from mpactors import Down, ExitSignal

WAIT = 30.0


def version() -> List[int]:
    """This node's Python version, ``[major, minor]``."""
    return list(sys.version_info[:2])


def echo() -> None:
    """Answer ``(sender, x)`` with ``('echo', x, [major, minor])``; end with ``x`` on ``('exit', x)``."""
    while True:
        msg = mpactors.receive()
        if msg[0] == "exit":
            mpactors.exit(msg[1])
        sender, x = msg
        mpactors.send(sender, ("echo", x, version()))


def check_peer(report_to: mpactors.Pid, peer: str) -> None:
    """From this node, exercise ``peer``; send ``report_to`` what was seen, as plain values."""
    seen: Dict[str, Any] = {"here": version()}
    seen["ping"] = mpactors.ping(peer)
    # remote spawn of an importable function, send and receive
    pid = mpactors.spawn(echo, node=peer)
    seen["spawned_on"] = pid.node
    mpactors.send(pid, (mpactors.self(), "hello"))
    seen["echo"] = list(mpactors.receive(timeout=WAIT))
    # rpc, by reference
    seen["rpc"] = mpactors.rpc.call(peer, "mixed_actors:version", timeout=WAIT)
    seen["rpc_fn"] = mpactors.rpc.call(peer, version, timeout=WAIT)
    # a monitor and a link: the actor ends with reason 'boom'
    mpactors.trap_exit(True)
    ref = mpactors.monitor(pid)
    mpactors.link(pid)
    mpactors.send(pid, ("exit", "boom"))
    down = mpactors.receive(lambda m: isinstance(m, Down) and m.ref == ref, timeout=WAIT)
    seen["down"] = [down.pid == pid, down.reason]
    signal = mpactors.receive(lambda m: isinstance(m, ExitSignal) and m.pid == pid, timeout=WAIT)
    seen["exit_signal"] = signal.reason
    # code by value to another minor version: refused here, at the caller
    try:
        mpactors.spawn(lambda: None, node=peer)
        seen["by_value"] = "sent"
    except mpactors.BadArg as exc:
        seen["by_value"] = str(exc)
    mpactors.send(report_to, ("checked", peer, seen))
