"""Small actors for ``scripts/demo`` and for trying the CLI by hand.

They live in the package so that ``mpactors spawn NODE mpactors.demo:counter``
and ``mpactors rpc NODE mpactors.demo:total`` work on any node::

    mpactors spawn a mpactors.demo:counter --name counter   # registered before the command returns
    mpactors send a counter "('add', 5)"
    mpactors rpc a mpactors.demo:total              # -> 5
    mpactors spawn a mpactors.demo:pong --name pong
    mpactors rpc b mpactors.demo:ping a@host 3      # b pings a's 'pong' 3 times
    mpactors spawn c mpactors.demo:pinger a@host    # pings a's 'pong' in a loop, forever
    mpactors rpc a mpactors.demo:start_tree         # a supervisor 'demo_sup': Store 'store', counter
    mpactors state '<a@host.2.0>'                   # the Store's state
"""
from __future__ import annotations

from typing import Any, List, Optional

from . import primitives
from .errors import Timeout
from .genserver import GenServer
from .pattern import ANY
from .pid import Pid
from .supervisor import ChildSpec, Supervisor

__all__ = ["Store", "counter", "ping", "pinger", "pong", "start_tree", "total"]

#: How long the request/reply helpers wait for an answer (seconds).
REPLY_TIMEOUT = 5.0


def counter(name: Optional[str] = None) -> None:
    """Add ``('add', n)``, answer ``('get', pid)`` with ``('total', n)``.

    With ``name``, the counter registers itself under it (asynchronously, like
    any process calling ``register``); ``mpactors spawn ... --name counter``
    registers it before the command returns instead.
    """
    if name is not None:
        primitives.register(name)
    count: Any = 0
    while True:
        msg = primitives.receive()
        if type(msg) is tuple and len(msg) == 2 and msg[0] == "add":
            count += msg[1]
        elif type(msg) is tuple and len(msg) == 2 and msg[0] == "get":
            primitives.send(msg[1], ("total", count))


def total(name: str = "counter") -> Any:
    """The total of the counter registered as ``name`` on this node (for ``mpactors rpc``)."""
    primitives.send(name, ("get", primitives.self()))
    return primitives.receive(("total", ANY), timeout=REPLY_TIMEOUT)[1]


def pong(name: Optional[str] = None) -> None:
    """Answer ``('ping', pid, n)`` with ``('pong', node, n)``; registers itself as ``name`` if given."""
    if name is not None:
        primitives.register(name)
    while True:
        msg = primitives.receive()
        if type(msg) is tuple and len(msg) == 3 and msg[0] == "ping":
            primitives.send(msg[1], ("pong", primitives.node(), msg[2]))


def ping(node: str, count: int = 3, name: str = "pong") -> List[Any]:
    """Ping the ``pong`` actor on ``node`` ``count`` times; returns the answers, in order."""
    for n in range(count):
        primitives.send((name, node), ("ping", primitives.self(), n))
    return [primitives.receive(("pong", ANY, n), timeout=REPLY_TIMEOUT) for n in range(count)]


def pinger(node: str, interval: float = 0.01, name: str = "pong") -> None:
    """Ping the ``pong`` actor on ``node`` in a loop, forever: traffic to watch in ``top``.

    Each answer is waited for at most ``interval`` seconds (a lost one does not stop the loop).
    """
    n = 0
    while True:
        primitives.send((name, node), ("ping", primitives.self(), n))
        try:
            primitives.receive(("pong", ANY, n), timeout=interval)
        except Timeout:
            pass
        primitives.flush()  # a late answer is of no use
        n += 1


class Store(GenServer):
    """A key-value GenServer: ``call(store, ('put', k, v))`` -> ``'ok'``, ``call(store, ('get', k))`` -> value."""

    def init(self) -> None:
        self.data: dict = {}
        self.calls = 0

    def handle_call(self, request: Any, frm: Any) -> Any:
        self.calls += 1
        if request[0] == "put":
            self.data[request[1]] = request[2]
            return "ok"
        return self.data.get(request[1])


def start_tree(name: str = "demo_sup") -> Pid:
    """Start a supervisor registered as ``name`` with a :class:`Store` (``'store'``) and a :func:`counter`."""
    return Supervisor.start(
        [ChildSpec("store", Store, kwargs={"name": "store"}), ChildSpec("counter", counter, args=("counter",))], name=name,
    )
