"""Other actor libraries measured side by side: pykka (threads) and thespian (processes).

Each peer runs in a subprocess of its own (``python -c ... run(argv)``) that
prints one JSON line: ``{"rt": [seconds...], "tput": [messages/s...]}``, or
``{"skipped": why}`` when the library is not installed. The benchmark kills
the subprocess's whole process group at the end, so a peer's helper processes
(thespian's admin and actors) cannot outlive the run.

Both measure what mpactors does: a round trip of a small message (an int)
between two actors, and one-way throughput of small messages from one actor
to another, timed from the first send to the last receive.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, List, cast

__all__ = ["PEERS", "CODE", "run"]

#: The peers ``--peers`` accepts, with the kind of actor each gives.
PEERS = {"pykka": "threads", "thespian": "processes, multiprocQueueBase"}
CODE = "import sys; from mpactors.bench._peers import run; sys.exit(run(sys.argv[1:]))"

_now = time.perf_counter
_WAIT = 120.0
_SMALL = ("msg", 12345)


# -- pykka -------------------------------------------------------------------------
def _pykka(rounds: int, n: int, reps: int) -> Dict[str, List[float]]:
    import pykka

    class Echo(pykka.ThreadingActor):
        partner: Any = None

        def on_receive(self, msg: Any) -> None:
            if type(msg) is tuple and msg[0] == "partner":
                self.partner = msg[1]
            else:
                self.partner.tell(msg)

    class Ping(pykka.ThreadingActor):
        def __init__(self, echo: Any, rounds: int, done: Callable[[float], None]) -> None:
            super().__init__()
            self.echo, self.rounds, self.done, self.i, self.t0 = echo, rounds, done, 0, 0.0

        def on_receive(self, msg: Any) -> None:
            if msg == "go":
                self.echo.tell(("partner", self.actor_ref))
                self.t0 = _now()
                self.echo.tell(0)
                return
            self.i += 1
            if self.i >= self.rounds:
                self.done((_now() - self.t0) / self.rounds)
            else:
                self.echo.tell(self.i)

    class Sink(pykka.ThreadingActor):
        def __init__(self, n: int, done: Callable[[float], None]) -> None:
            super().__init__()
            self.n, self.done, self.count = n, done, 0

        def on_receive(self, msg: Any) -> None:
            self.count += 1
            if self.count == self.n:
                self.done(_now())

    class Source(pykka.ThreadingActor):
        def on_receive(self, msg: Any) -> Any:
            sink, count = msg
            t0 = _now()
            for _ in range(count):
                sink.tell(_SMALL)
            return t0

    out: Dict[str, List[float]] = {"rt": [], "tput": []}
    try:
        for _ in range(reps):
            box = _Box()
            echo = Echo.start()
            Ping.start(echo, rounds, box.put).tell("go")
            out["rt"].append(box.get())
            pykka.ActorRegistry.stop_all()
            box = _Box()
            sink = Sink.start(n, box.put)
            t0 = cast(float, Source.start().ask((sink, n), timeout=_WAIT))
            out["tput"].append(n / (box.get() - t0))
            pykka.ActorRegistry.stop_all()
    finally:
        pykka.ActorRegistry.stop_all()
    return out


class _Box:
    """One value handed from an actor thread to the measuring thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._value = 0.0

    def put(self, value: float) -> None:
        self._value = value
        self._event.set()

    def get(self) -> float:
        if not self._event.wait(_WAIT):
            raise TimeoutError(f"no result within {_WAIT:g} s")
        return self._value


# -- thespian ------------------------------------------------------------------------
try:
    from thespian.actors import Actor as _ThActor
except ImportError:  # pragma: no cover - thespian is an optional extra
    _ThActor = object


class ThEcho(_ThActor):  # type: ignore[misc,valid-type]
    """Sends every int back to whoever sent it."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if type(msg) is int:
            self.send(sender, msg)


class ThPing(_ThActor):  # type: ignore[misc,valid-type]
    """``("run", echo, rounds)``: ping-pong with ``echo``; answers seconds per round trip."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if type(msg) is tuple and msg[0] == "run":
            _, self.echo, self.rounds = msg
            self.client, self.i = sender, 0
            self.t0 = _now()
            self.send(self.echo, 0)
        elif type(msg) is int:
            self.i += 1
            if self.i >= self.rounds:
                self.send(self.client, (_now() - self.t0) / self.rounds)
            else:
                self.send(self.echo, self.i)


class ThSink(_ThActor):  # type: ignore[misc,valid-type]
    """``("expect", n)``, then n messages; tells the sender the time of the last."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if type(msg) is tuple and msg[0] == "expect":
            self.n, self.count = msg[1], 0
        elif type(msg) is tuple and msg[0] == "msg":
            self.count += 1
            if self.count == self.n:
                self.send(sender, ("done", _now()))


class ThSource(_ThActor):  # type: ignore[misc,valid-type]
    """``("run", sink, n)``: sends n small messages; answers messages per second."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if type(msg) is tuple and msg[0] == "run":
            _, sink, n = msg
            self.client, self.n = sender, n
            self.send(sink, ("expect", n))
            self.t0 = _now()
            for _ in range(n):
                self.send(sink, _SMALL)
        elif type(msg) is tuple and msg[0] == "done":
            self.send(self.client, self.n / (msg[1] - self.t0))


def _thespian(rounds: int, n: int, reps: int) -> Dict[str, List[float]]:
    import logging

    from thespian.actors import ActorExitRequest, ActorSystem

    logging.getLogger("Thespian").setLevel(logging.ERROR)
    asys = ActorSystem("multiprocQueueBase")
    out: Dict[str, List[float]] = {"rt": [], "tput": []}
    try:
        for _ in range(reps):
            echo, ping = asys.createActor(ThEcho), asys.createActor(ThPing)
            value = asys.ask(ping, ("run", echo, rounds), _WAIT)
            if not isinstance(value, float):
                raise TimeoutError(f"thespian round trip gave {value!r}")
            out["rt"].append(value)
            sink, source = asys.createActor(ThSink), asys.createActor(ThSource)
            value = asys.ask(source, ("run", sink, n), _WAIT)
            if not isinstance(value, float):
                raise TimeoutError(f"thespian throughput gave {value!r}")
            out["tput"].append(value)
            for addr in (echo, ping, sink, source):
                asys.tell(addr, ActorExitRequest())
    finally:
        asys.shutdown()
    return out


_RUNNERS = {"pykka": _pykka, "thespian": _thespian}


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def run(argv: List[str]) -> int:
    """Subprocess entry point: ``PEER ROUNDS N REPS``; prints one JSON line."""
    peer, rounds, n, reps = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    try:
        __import__(peer)
    except ImportError:
        print(json.dumps({"skipped": f"{peer} is not installed (pip install 'mpactors[bench]')"}), flush=True)
        return 0
    try:
        result: Any = _RUNNERS[peer](rounds, n, reps)
        result["version"] = _version(peer)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0
