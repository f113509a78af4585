"""Two nodes: a registered echo server on one, calls from the other.

Run: python examples/two_nodes.py
It starts node ``server`` as a separate OS process (this same file with the
argument ``serve``), then becomes node ``client`` and talks to it. Both use
the port mapper on this host (started on demand) and your cookie
(``MPACTORS_COOKIE`` or ``~/.mpactors.cookie``).
"""
from __future__ import annotations

import socket
import subprocess
import sys

import mpactors
from mpactors import rpc


def echo() -> None:
    while True:
        msg = mpactors.receive()
        if msg == "stop":
            return
        sender, payload = msg
        mpactors.send(sender, ("echo", mpactors.node(), payload))


def serve() -> None:
    with mpactors.Node("server"):
        mpactors.register("echo", mpactors.spawn(echo))
        print("ready", flush=True)
        sys.stdin.read()  # until the client closes our stdin


def client(server: str) -> None:
    with mpactors.Node("client"):
        print(mpactors.node(), "pings", server, "->", mpactors.ping(server))
        print("connected nodes:", mpactors.nodes())
        for word in ("hello", "from", mpactors.node()):
            mpactors.send(("echo", server), (mpactors.self(), word))
            print("reply:", mpactors.receive(timeout=10))
        print("rpc os.getpid on", server, "->", rpc.call(server, "os:getpid", timeout=10))
        pid = mpactors.spawn(lambda: mpactors.receive(), node=server)
        ref = mpactors.monitor(pid)
        mpactors.exit(pid, "bye")
        down = mpactors.receive(lambda m: isinstance(m, mpactors.Down) and m.ref == ref, timeout=10)
        print("remote actor", pid, "ended:", down.reason)


def main() -> None:
    if sys.argv[1:] == ["serve"]:
        serve()
        return
    proc = subprocess.Popen([sys.executable, __file__, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        host = socket.gethostname().split(".")[0]
        client(f"server@{host}")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


if __name__ == "__main__":
    main()
