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
from typing import Any, Callable, Dict, List

from _cluster import DEADLINE, OtherNode, other_nodes, serve_if_asked, until

import mpactors
from mpactors import pg, rpc
from mpactors.pg import PgEvent

ROOM = "room"


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


def expect(match: Callable[[Any], bool], what: str) -> Any:
    try:
        return mpactors.receive(match, timeout=DEADLINE)
    except mpactors.Timeout:
        raise SystemExit(f"gave up waiting for {what}") from None


def chat(a: str, b: OtherNode, c: OtherNode) -> None:
    nodes = {"a": a, "b": b.name, "c": c.name}
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

    print(f"SIGKILL node {c.name} (os pid {c.proc.pid}), carol's node")
    c.kill()
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
    if serve_if_asked():  # this process was started as node chat_b or chat_c
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with other_nodes(__file__, ["chat_b", "chat_c"]) as others:
        with mpactors.Node("chat_a") as node:
            for other in others.values():
                if mpactors.ping(other.name) != "pong":
                    raise SystemExit(f"cannot reach {other.name}")
            chat(node.name, others["chat_b"], others["chat_c"])
    print("done")


if __name__ == "__main__":
    main()
