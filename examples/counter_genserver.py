"""A counter as a GenServer, supervised: crash it and watch it come back.

Run: python examples/counter_genserver.py
"""
from __future__ import annotations

import mpactors
from mpactors import ChildSpec, GenServer, Supervisor
from mpactors.supervisor import which_children


class Counter(GenServer):
    def init(self, start: int = 0) -> None:
        self.count = start

    def handle_call(self, request, frm):
        if request == "get":
            return self.count
        if request == "crash":
            raise RuntimeError("asked to crash")
        raise ValueError(f"unknown request {request!r}")

    def handle_cast(self, msg) -> None:
        if msg == "increment":
            self.count += 1


def main() -> None:
    with mpactors.Node():
        sup = Supervisor.start_link(
            [ChildSpec("counter", Counter, kwargs={"start": 10, "name": "counter"})],
            strategy="one_for_one", max_restarts=3, max_seconds=5,
        )
        for _ in range(5):
            GenServer.cast("counter", "increment")
        print("count:", GenServer.call("counter", "get"))           # 15
        before = which_children(sup)
        try:
            GenServer.call("counter", "crash")
        except mpactors.RemoteError as exc:
            print("the call failed:", str(exc).splitlines()[0])
        after = which_children(sup)
        while after[0][1] is None or after == before:
            after = which_children(sup)
        print("restarted:", before[0][1], "->", after[0][1])
        print("count after restart:", GenServer.call("counter", "get"))   # 10 again


if __name__ == "__main__":
    main()
