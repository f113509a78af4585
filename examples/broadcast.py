"""Broadcast: send to a registered name on every node in ``nodes()``.

Run: python examples/broadcast.py [N]
Starts N listener nodes (default 3) as separate OS processes; each registers
an actor as ``inbox``. This process becomes node ``caster``, connects to the
first listener only - the mesh makes it see all of them - and broadcasts.
"""
from __future__ import annotations

import socket
import subprocess
import sys

import mpactors


def inbox(caster: str) -> None:
    msg = mpactors.receive()
    mpactors.send(("results", caster), ("got", mpactors.node(), msg))


def listen(name: str, peer: str) -> None:
    with mpactors.Node(name):
        if peer != "-":
            mpactors.ping(peer)
        mpactors.register("inbox", mpactors.spawn(inbox, "caster@" + socket.gethostname().split(".")[0]))
        print("ready", flush=True)
        sys.stdin.read()


def main(n: int) -> None:
    host = socket.gethostname().split(".")[0]
    names = [f"listener{i}" for i in range(n)]
    procs = []
    try:
        for i, name in enumerate(names):
            peer = f"{names[0]}@{host}" if i else "-"
            proc = subprocess.Popen([sys.executable, __file__, "listen", name, peer], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with mpactors.Node("caster"):
            mpactors.register("results", mpactors.self())
            mpactors.ping(f"{names[0]}@{host}")
            expected = sorted(f"{name}@{host}" for name in names)
            mpactors.monitor_nodes(True)
            while sorted(mpactors.nodes()) != expected:
                mpactors.receive(mpactors.NodeUp, timeout=10)
            print("nodes():", mpactors.nodes())
            for node in mpactors.nodes():
                mpactors.send(("inbox", node), "hello, cluster")
            for _ in names:
                print(mpactors.receive(("got", str, str), timeout=10))
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in procs:
            proc.wait(30)


if __name__ == "__main__":
    if sys.argv[1:2] == ["listen"]:
        listen(sys.argv[2], sys.argv[3])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
