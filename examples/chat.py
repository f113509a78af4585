"""A chat room on ``mpactors.pg`` across three nodes.

Run: python examples/chat.py

This script becomes node ``chat_a`` and starts nodes ``chat_b`` and
``chat_c`` as separate OS processes. One user actor runs on each node -
alice on chat_a, bob on chat_b, carol on chat_c - and joins the process group
``'room'``; there is no chat server: to say something, a user sends the line
to every member of the group (``pg.get_members``), and each user watches the
group (``pg.monitor``) to see people come and go. Every user reports what it
hears to this script, which prints it.

The script waits until every node sees all three members, lets each user
speak, then SIGKILLs node ``chat_c``: carol leaves the room on every other
node (her node is lost), alice and bob see her leave, and the room goes on.
On the way out it stops the nodes, and the port mapper if it started one.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

import mpactors
from mpactors import epmd, pg, rpc
from mpactors.pg import PgEvent

ROOM = "room"
DEADLINE = 60.0  # seconds any step may take (generous: a loaded machine)


def user(name: str, transcript: mpactors.Pid) -> None:
    """A chat user: joins the room, says what it is told to, reports what it hears and sees."""
    pg.join(ROOM)
    ref, _ = pg.monitor(ROOM)
    mpactors.send(transcript, ("joined", name, mpactors.self()))
    while True:
        msg = mpactors.receive()
        if type(msg) is PgEvent and msg.ref == ref:
            for pid in msg.pids:
                if pid != mpactors.self():
                    mpactors.send(transcript, ("saw", name, msg.kind, pid))
        elif msg[0] == "say":  # from the script: speak to the room
            for member in pg.get_members(ROOM):
                mpactors.send(member, ("line", name, msg[1]))
        elif msg[0] == "line":  # someone spoke
            mpactors.send(transcript, ("heard", name, msg[1], msg[2]))
        elif msg[0] == "quit":
            return


def run_node(name: str) -> None:
    """Body of the other nodes' processes: a node that lives until its stdin closes."""
    with mpactors.Node(name) as node:
        print("ready", node.name, flush=True)
        sys.stdin.read()


def start_node(name: str) -> "tuple[subprocess.Popen, str]":
    proc = subprocess.Popen([sys.executable, __file__, "--node", name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if line[:1] != ["ready"]:
        proc.kill()
        proc.wait()
        raise SystemExit(f"node {name} did not start")
    return proc, line[1]


def until(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DEADLINE
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)  # polling other nodes' views from outside


def expect(match: Callable[[Any], bool], what: str) -> Any:
    try:
        return mpactors.receive(match, timeout=DEADLINE)
    except mpactors.Timeout:
        raise SystemExit(f"gave up waiting for {what}") from None


def chat(nodes: Dict[str, str], procs: Dict[str, subprocess.Popen]) -> None:
    me = mpactors.self()
    users: Dict[str, mpactors.Pid] = {}
    names: Dict[mpactors.Pid, str] = {}
    for name, node in (("alice", nodes["a"]), ("bob", nodes["b"]), ("carol", nodes["c"])):
        mpactors.spawn(user, name, me, node=node)
        _, _, pid = expect(lambda m, n=name: m[:2] == ("joined", n), f"{name} to join")
        users[name], names[pid] = pid, name
        print(f"{name} joined the room from {pid.node}")

    everyone = sorted(users.values())
    until("every node to see the three members",
          lambda: all(sorted(rpc.call(node, pg.get_members, ROOM)) == everyone for node in nodes.values()))
    print("every node sees", ", ".join(sorted(users)), "in the room")

    def converse(lines: List["tuple[str, str]"], listeners: List[str]) -> None:
        for speaker, text in lines:
            mpactors.send(users[speaker], ("say", text))
        heard: List[Any] = []
        while len(heard) < len(lines) * len(listeners):
            _, who, speaker, text = expect(lambda m: m[0] == "heard", "every line to be heard")
            heard.append((who, speaker, text))
            print(f"  {who:5} hears {speaker}: {text}")

    converse([("alice", "hello, room"), ("bob", "hi alice"), ("carol", "hey both")], ["alice", "bob", "carol"])

    print(f"SIGKILL node {nodes['c']} (os pid {procs['c'].pid}), carol's node")
    os.kill(procs["c"].pid, signal.SIGKILL)
    procs["c"].wait()
    for who in ("alice", "bob"):
        _, _, kind, pid = expect(lambda m, w=who: m[:3] == ("saw", w, "leave") and m[3] == users["carol"],
                                 f"{who} to see carol leave")
        print(f"{who} saw {names[pid]} leave the room")
    left = sorted([users["alice"], users["bob"]])
    until("the room to shrink", lambda: all(sorted(rpc.call(nodes[k], pg.get_members, ROOM)) == left for k in "ab"))
    print("the room now:", ", ".join(names[p] for p in pg.get_members(ROOM)))
    converse([("bob", "carol is gone"), ("alice", "we carry on")], ["alice", "bob"])
    for name in ("alice", "bob"):
        mpactors.send(users[name], ("quit",))


def main() -> None:
    if sys.argv[1:2] == ["--node"]:
        run_node(sys.argv[2])
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    our_epmd = epmd.ensure_running()  # the OS pid if we started the port mapper
    procs: Dict[str, subprocess.Popen] = {}
    try:
        nodes = {}
        for key in ("b", "c"):
            procs[key], nodes[key] = start_node(f"chat_{key}")
        with mpactors.Node("chat_a") as node:
            nodes["a"] = node.name
            for key in ("b", "c"):
                if mpactors.ping(nodes[key]) != "pong":
                    raise SystemExit(f"cannot reach {nodes[key]}")
            chat(nodes, procs)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                assert proc.stdin is not None
                proc.stdin.close()  # the node leaves its `with Node` block and stops
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if our_epmd is not None:
            try:
                epmd.kill()
            except mpactors.EpmdError:
                os.kill(our_epmd, signal.SIGTERM)
    print("done")


if __name__ == "__main__":
    main()
