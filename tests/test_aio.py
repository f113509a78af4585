"""asyncio (SPEC Part 2, ``mpactors.aio``): async actors, ``aio.receive`` /
``aio.call`` / ``aio.rpc_call`` in actors and in the node's main process, async
GenServer callbacks, exit signals that cancel an actor's main task.

Actors are module-level (forkserver and spawn import this module in the
child). Waits in the main process go through ``asyncio.wait_for`` with a
LONG_TIMEOUT, so a hang fails the test instead of stalling it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Iterator, List

import pytest
from nodes import cluster, cookie, local_node, run_node  # noqa: F401 - fixtures
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

import mpactors
from mpactors import BadArg, Down, ExitSignal, GenServer, NodeError, Pid, RemoteError, Timeout, aio, genserver
from mpactors.errors import ProcessExit, WouldBlock
from mpactors.genserver import NOREPLY
from mpactors.messages import AliasReply

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def node() -> Iterator[mpactors.Node]:
    with mpactors.Node(start_method="fork") as n:
        yield n


def run(coro: Any) -> Any:
    """Run ``coro`` in a new event loop of this (the node's main) process, bounded by LONG_TIMEOUT."""
    return asyncio.run(asyncio.wait_for(coro, LONG_TIMEOUT))


# -- actors ---------------------------------------------------------------------
async def echo(parent: Pid) -> None:
    aio.send(parent, ("ready", mpactors.self()))
    while True:
        msg = await aio.receive()
        if msg == "stop":
            return
        frm, value = msg
        aio.send(frm, ("echo", value))


async def selective(parent: Pid) -> None:
    """Takes every ('b', n) first, then the ('a', n), and reports the order."""
    got = []
    for _ in range(3):
        got.append(await aio.receive(("b", int), timeout=LONG_TIMEOUT))
    for _ in range(3):
        got.append(await aio.receive(("a", int), timeout=LONG_TIMEOUT))
    try:
        await aio.receive(("a", int), timeout=0.05)
        got.append("unexpected")
    except Timeout:
        got.append("timeout")
    aio.send(parent, got)


async def two_tasks(parent: Pid) -> None:
    """Two tasks of one actor each wait for their own kind of message."""
    async def take(kind: str) -> List[Any]:
        return [await aio.receive((kind, int), timeout=LONG_TIMEOUT) for _ in range(3)]

    xs, ys = await asyncio.gather(take("x"), take("y"))
    aio.send(parent, (xs, ys))


async def with_finally(parent: Pid) -> None:
    class Resource:
        async def __aenter__(self) -> "Resource":
            return self

        async def __aexit__(self, *exc: Any) -> None:
            aio.send(parent, "aexit ran")

    try:
        async with Resource():
            aio.send(parent, ("ready", mpactors.self()))
            await aio.receive("never sent")
    finally:
        aio.send(parent, "finally ran")


async def trapping(parent: Pid) -> None:
    mpactors.trap_exit(True)
    child = mpactors.spawn_link(crash_soon)
    signal = await aio.receive(ExitSignal, timeout=LONG_TIMEOUT)
    aio.send(parent, (signal.pid == child, signal.reason.type))


def crash_soon() -> None:
    raise ValueError("boom")


async def crash_async() -> None:
    await asyncio.sleep(0)
    raise KeyError("async boom")


async def blocking_inside(parent: Pid) -> None:
    """Blocking receive in the loop raises WouldBlock; a look (timeout 0) and a thread work."""
    outcome = []
    try:
        mpactors.receive(timeout=1)
        outcome.append("no error")
    except WouldBlock as exc:
        outcome.append(("WouldBlock", "aio.receive" in str(exc)))
    try:
        mpactors.receive(timeout=0)
    except Timeout:
        outcome.append("look ok")
    server = await asyncio.to_thread(Counter.start)  # a blocking wait in a thread goes through the loop
    outcome.append(await asyncio.to_thread(genserver.call, server, "get", SHORT_TIMEOUT))
    outcome.append(await aio.call(server, "get"))
    aio.send(parent, outcome)


async def ticking(parent: Pid, count: int) -> None:
    """A ticker task runs each loop iteration while ``count`` messages are received.

    Reports the most messages handled between two ticks (a loop that a
    backlog monopolised would show ``count``).
    """
    handled = 0
    gaps = [0]
    last = [0]
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            gaps[0] = max(gaps[0], handled - last[0])
            last[0] = handled
            await asyncio.sleep(0)

    tick_task = asyncio.ensure_future(ticker())
    aio.send(parent, ("ready", mpactors.self()))
    while handled < count:
        await aio.receive(int)
        handled += 1
    done.set()
    await tick_task
    aio.send(parent, ("max_between_ticks", max(gaps[0], handled - last[0])))


async def idle_with_mail(parent: Pid, seconds: float) -> None:
    """Sleeps (no receive pending) while a message waits, and reports the CPU time that took."""
    import time

    aio.send(parent, ("ready", mpactors.self()))
    cpu = time.process_time()
    await asyncio.sleep(seconds)  # meanwhile the parent sends "waiting": it stays in the pipe
    used = time.process_time() - cpu
    got = await aio.receive(timeout=LONG_TIMEOUT)
    aio.send(parent, ("cpu", used, got))


def started_then_wait(parent: Pid) -> None:
    mpactors.send(parent, ("ready", mpactors.self()))
    mpactors.receive("never sent")


# -- servers --------------------------------------------------------------------
class Counter(GenServer):
    def init(self) -> None:
        self.n = 0

    def handle_call(self, request: Any, frm: Any) -> Any:
        self.n += 1
        return self.n


class Deferring(GenServer):
    """Holds calls until 'release' and answers them newest first (out of order)."""

    def init(self) -> None:
        self.held: List[Any] = []

    def handle_call(self, request: Any, frm: Any) -> Any:
        if request == "release":
            for frm_, value in reversed(self.held):
                GenServer.reply(frm_, ("answer", value))
            n = len(self.held)
            self.held = []
            return n
        if request == "held":
            return len(self.held)
        if request == "crash":
            raise RuntimeError("asked to crash")
        self.held.append((frm, request))
        return NOREPLY

    def handle_cast(self, msg: Any) -> None:
        if msg[0] == "release_one_to":  # answer every held call, then tell msg[1] it did
            for frm_, value in self.held:
                GenServer.reply(frm_, ("late", value))
            self.held = []
            mpactors.send(msg[1], "replied")


class AsyncOrdered(GenServer):
    """Async callbacks that await inside; records overlap and order."""

    async def init(self, tag: str, report_to: Any = None) -> None:
        await asyncio.sleep(0)
        self.tag = tag
        self.report_to = report_to
        self.seen: List[Any] = []
        self.inside = 0
        self.max_inside = 0

    async def _step(self, item: Any) -> None:
        self.inside += 1
        self.max_inside = max(self.max_inside, self.inside)
        await asyncio.sleep(0.001)
        self.seen.append(item)
        self.inside -= 1

    async def handle_cast(self, msg: Any) -> None:
        await self._step(("cast", msg))

    async def handle_info(self, msg: Any) -> None:
        await self._step(("info", msg))

    async def handle_call(self, request: Any, frm: Any) -> Any:
        if request == "report":
            return (self.tag, list(self.seen), self.max_inside)
        if isinstance(request, tuple) and request[0] == "via":  # an aio.call from inside a callback
            return await aio.call(request[1], "get")
        await self._step(("call", request))
        return ("done", request)

    async def terminate(self, reason: Any) -> None:
        await asyncio.sleep(0)
        if self.report_to is not None:
            mpactors.send(self.report_to, ("terminated", reason))


# -- async actors ---------------------------------------------------------------
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_an_async_actor_runs_under_every_start_method(method: str, multiprocessing_helpers: None) -> None:
    with mpactors.Node(start_method=method):
        me = mpactors.self()
        pid, ref = mpactors.spawn_monitor(echo, me)
        assert mpactors.receive(("ready", pid), timeout=LONG_TIMEOUT)
        mpactors.send(pid, (me, 42))
        assert mpactors.receive(timeout=LONG_TIMEOUT) == ("echo", 42)
        mpactors.send(pid, "stop")
        down = mpactors.receive(Down, timeout=LONG_TIMEOUT)
        assert (down.ref, down.reason) == (ref, "normal")


def test_aio_receive_is_selective_and_keeps_order(node: mpactors.Node) -> None:
    pid = mpactors.spawn(selective, mpactors.self())
    for msg in [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]:
        mpactors.send(pid, msg)
    got = mpactors.receive(list, timeout=LONG_TIMEOUT)
    assert got == [("b", 1), ("b", 2), ("b", 3), ("a", 1), ("a", 2), ("a", 3), "timeout"]


def test_two_tasks_of_one_actor_each_get_their_own_messages(node: mpactors.Node) -> None:
    pid = mpactors.spawn(two_tasks, mpactors.self())
    for i in range(3):
        mpactors.send(pid, ("y", i))
        mpactors.send(pid, ("x", i))
    xs, ys = mpactors.receive(tuple, timeout=LONG_TIMEOUT)
    assert xs == [("x", 0), ("x", 1), ("x", 2)]
    assert ys == [("y", 0), ("y", 1), ("y", 2)]


def test_an_exit_signal_cancels_the_main_task_and_runs_finally(node: mpactors.Node) -> None:
    pid, ref = mpactors.spawn_monitor(with_finally, mpactors.self())
    assert mpactors.receive(("ready", pid), timeout=LONG_TIMEOUT)
    wait_until(lambda: mpactors.process_info(pid)["status"] == "waiting", what="the actor to await its receive")
    mpactors.exit(pid, "shutdown")
    assert mpactors.receive("aexit ran", timeout=LONG_TIMEOUT) == "aexit ran"
    assert mpactors.receive("finally ran", timeout=LONG_TIMEOUT) == "finally ran"
    down = mpactors.receive(Down, timeout=LONG_TIMEOUT)
    assert (down.ref, down.reason) == (ref, "shutdown")


def test_an_async_actor_traps_exits_and_its_crash_reaches_links(node: mpactors.Node) -> None:
    mpactors.spawn(trapping, mpactors.self())
    assert mpactors.receive(tuple, timeout=LONG_TIMEOUT) == (True, "ValueError")
    mpactors.trap_exit(True)
    try:
        pid = mpactors.spawn_link(crash_async)
        signal = mpactors.receive(ExitSignal, timeout=LONG_TIMEOUT)
        assert signal.pid == pid and signal.reason.type == "KeyError"
    finally:
        mpactors.trap_exit(False)


def test_blocking_receive_inside_an_async_actor_raises_would_block(node: mpactors.Node) -> None:
    mpactors.spawn(blocking_inside, mpactors.self())
    outcome = mpactors.receive(list, timeout=LONG_TIMEOUT)
    assert outcome == [("WouldBlock", True), "look ok", 1, 2]


def test_the_loop_stays_responsive_while_10000_messages_arrive(node: mpactors.Node) -> None:
    count = 10_000
    pid = mpactors.spawn(ticking, mpactors.self(), count)
    assert mpactors.receive(("ready", pid), timeout=LONG_TIMEOUT)
    for i in range(count):
        mpactors.send(pid, i)
    _, most = mpactors.receive(("max_between_ticks", int), timeout=LONG_TIMEOUT)
    # The ticker runs every loop iteration; the reader yields at least every
    # 32 queued messages, so it never waits for more than a few dozen.
    assert most <= 64, f"{most} messages were handled between two ticks"


def test_an_unread_message_does_not_make_the_loop_spin(node: mpactors.Node) -> None:
    pid = mpactors.spawn(idle_with_mail, mpactors.self(), 1.0)
    assert mpactors.receive(("ready", pid), timeout=LONG_TIMEOUT)
    mpactors.send(pid, "waiting")
    _, used, got = mpactors.receive(("cpu", float, str), timeout=LONG_TIMEOUT)
    assert got == "waiting"
    # A loop woken again and again by the readable pipe would burn this second's CPU.
    assert used < 0.05, f"the idle loop used {used:.3f}s of CPU in 1s"


# -- the node's main process ----------------------------------------------------
def test_many_concurrent_calls_from_one_loop_get_their_own_replies_out_of_order(node: mpactors.Node) -> None:
    server = Deferring.start()
    n = 200

    async def main() -> List[Any]:
        calls = [asyncio.ensure_future(aio.call(server, i, timeout=LONG_TIMEOUT)) for i in range(n)]
        while await aio.call(server, "held") < n:  # every call is held by the server
            await asyncio.sleep(0.01)
        assert await aio.call(server, "release") == n  # answered newest first
        return await asyncio.gather(*calls)

    assert run(main()) == [("answer", i) for i in range(n)]
    assert mpactors.flush() == []


def test_a_timed_out_call_leaves_no_late_reply(node: mpactors.Node) -> None:
    server = Deferring.start()
    me = mpactors.self()

    async def main() -> None:
        with pytest.raises(Timeout, match="timeout=0.1"):
            await aio.call(server, "slow", timeout=0.1)
        genserver.cast(server, ("release_one_to", me))
        assert await aio.receive("replied", timeout=LONG_TIMEOUT) == "replied"
        # the late reply was sent before "replied": it would be queued by now
        with pytest.raises(Timeout):
            await aio.receive(lambda m: type(m) is AliasReply, timeout=0)

    run(main())
    assert mpactors.flush() == []


def test_a_cancelled_call_leaves_no_late_reply(node: mpactors.Node) -> None:
    server = Deferring.start()
    me = mpactors.self()

    async def main() -> None:
        task = asyncio.ensure_future(aio.call(server, "slow", timeout=None))
        while await aio.call(server, "held") < 1:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        genserver.cast(server, ("release_one_to", me))
        assert await aio.receive("replied", timeout=LONG_TIMEOUT) == "replied"

    run(main())
    assert mpactors.flush() == []


def test_a_server_that_dies_mid_call_raises_at_once(node: mpactors.Node) -> None:
    server = Deferring.start()

    async def main() -> None:
        pending = asyncio.ensure_future(aio.call(server, "held forever", timeout=None))
        while await aio.call(server, "held") < 1:
            await asyncio.sleep(0.01)
        mpactors.exit(server, "kill")
        with pytest.raises(RemoteError, match="killed"):
            await pending  # timeout=None: only the server's Down can end it
        with pytest.raises(RemoteError, match="no such process"):
            await aio.call(server, "again")

    run(main())


def test_aio_receive_in_the_main_process_waits_without_blocking_the_loop(node: mpactors.Node) -> None:
    me = mpactors.self()
    pid = mpactors.spawn(echo, me)
    assert mpactors.receive(("ready", pid), timeout=LONG_TIMEOUT)

    async def main() -> Any:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.ensure_future(ticker())
        waiting = asyncio.ensure_future(aio.receive(("echo", "late"), timeout=LONG_TIMEOUT))
        while ticks < 20:  # the loop runs while aio.receive waits
            await asyncio.sleep(0.001)
        aio.send(pid, (me, "late"))
        got = await waiting
        t.cancel()
        return got

    assert run(main()) == ("echo", "late")
    mpactors.send(pid, "stop")


def test_blocking_calls_in_threads_and_awaits_in_the_loop_share_the_mailbox(node: mpactors.Node) -> None:
    server = Counter.start()
    n_threads, per_thread, n_tasks = 4, 25, 100

    def blocking_caller() -> List[int]:
        return [genserver.call(server, "inc", timeout=LONG_TIMEOUT) for _ in range(per_thread)]

    async def main() -> List[int]:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(n_threads) as pool:
            threads = [loop.run_in_executor(pool, blocking_caller) for _ in range(n_threads)]
            tasks = [aio.call(server, "inc", timeout=LONG_TIMEOUT) for _ in range(n_tasks)]
            results = await asyncio.gather(*tasks, *threads)
        out = list(results[:n_tasks])
        for chunk in results[n_tasks:]:
            out.extend(chunk)
        return out

    values = run(main())
    assert sorted(values) == list(range(1, n_threads * per_thread + n_tasks + 1))
    assert mpactors.flush() == []


def test_a_blocking_receive_in_a_thread_hands_its_wait_to_the_loop(node: mpactors.Node) -> None:
    me = mpactors.self()

    async def main() -> Any:
        in_loop = asyncio.ensure_future(aio.receive(("loop", int), timeout=LONG_TIMEOUT))
        await asyncio.sleep(0)  # the loop now reads the mailbox
        in_thread = asyncio.ensure_future(asyncio.to_thread(mpactors.receive, ("thread", int), LONG_TIMEOUT))
        pid = mpactors.spawn(lambda: (mpactors.send(me, ("thread", 1)), mpactors.send(me, ("loop", 2))))
        assert isinstance(pid, Pid)
        return await asyncio.gather(in_loop, in_thread)

    assert run(main()) == [("loop", 2), ("thread", 1)]


def test_a_receive_cancelled_by_wait_for_loses_no_message(node: mpactors.Node) -> None:
    me = mpactors.self()

    async def main() -> Any:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aio.receive("later"), 0.05)
        gathered = asyncio.gather(aio.receive(("n", 1)), aio.receive(("n", 2)))
        aio.send(me, ("n", 2))
        aio.send(me, "later")
        aio.send(me, ("n", 1))
        assert await asyncio.wait_for(gathered, LONG_TIMEOUT) == [("n", 1), ("n", 2)]
        return await aio.receive(timeout=LONG_TIMEOUT)

    assert run(main()) == "later"  # the cancelled receive did not take it


def test_an_exit_signal_to_the_main_process_raises_in_aio_receive(node: mpactors.Node) -> None:
    me = mpactors.self()

    async def main() -> None:
        mpactors.spawn(lambda: mpactors.exit(me, "go away"))
        with pytest.raises(ProcessExit, match="go away"):
            await aio.receive("never sent", timeout=LONG_TIMEOUT)

    run(main())


def test_aio_rpc_call_returns_raises_and_times_out(node: mpactors.Node) -> None:
    here = mpactors.node()

    async def main() -> None:
        assert await aio.rpc_call(here, "operator:add", 2, 3) == 5
        results = await asyncio.gather(*[aio.rpc_call(here, "operator:mul", i, i) for i in range(10)])
        assert results == [i * i for i in range(10)]
        with pytest.raises(RemoteError, match="ZeroDivisionError"):
            await aio.rpc_call(here, "operator:truediv", 1, 0)
        with pytest.raises(Timeout, match="timeout=0.2"):
            await aio.rpc_call(here, "time:sleep", 30, timeout=0.2)

    run(main())
    assert mpactors.flush() == []


def test_bad_arguments_raise_clear_errors(node: mpactors.Node) -> None:
    async def main() -> None:
        with pytest.raises(BadArg, match="timeout"):
            await aio.receive(timeout=-1)
        with pytest.raises(BadArg, match="timeout"):
            await aio.call("anyone", "x", timeout="soon")
        with pytest.raises(BadArg, match="server"):
            await aio.call(3.5, "x")
        with pytest.raises(RemoteError, match="no such process"):
            await aio.call("nobody_has_this_name", "x")
        with pytest.raises(BadArg):
            aio.send("nobody_has_this_name", "x")
        aio.send(mpactors.self(), "kept")
        with pytest.raises(ZeroDivisionError):  # a failing predicate raises in its receive
            await aio.receive(lambda m: 1 / 0, timeout=LONG_TIMEOUT)
        assert await aio.receive("kept", timeout=LONG_TIMEOUT) == "kept"
        # and the mailbox still works afterwards
        aio.send(mpactors.self(), "still fine")
        assert await aio.receive(timeout=LONG_TIMEOUT) == "still fine"

    run(main())


# -- GenServer with async callbacks ----------------------------------------------
def test_async_genserver_runs_callbacks_one_at_a_time_in_message_order(node: mpactors.Node) -> None:
    server = AsyncOrdered.start("t", mpactors.self())
    counter = Counter.start()
    for i in range(10):
        genserver.cast(server, i)
        mpactors.send(server, ("plain", i))
    assert genserver.call(server, "x", timeout=LONG_TIMEOUT) == ("done", "x")
    tag, seen, max_inside = genserver.call(server, "report", timeout=LONG_TIMEOUT)
    expected = []
    for i in range(10):
        expected += [("cast", i), ("info", ("plain", i))]
    assert seen == expected + [("call", "x")]
    assert max_inside == 1
    assert genserver.call(server, ("via", counter), timeout=LONG_TIMEOUT) == 1

    async def main() -> Any:
        return await asyncio.gather(*[aio.call(server, ("c", i)) for i in range(5)])

    assert run(main()) == [("done", ("c", i)) for i in range(5)]
    genserver.stop(server)
    assert mpactors.receive(("terminated", "normal"), timeout=LONG_TIMEOUT)


# -- across nodes ------------------------------------------------------------------
@pytest.mark.usefixtures("cluster")
def test_aio_calls_rpc_and_async_actors_work_across_nodes() -> None:
    with run_node() as b, local_node():
        assert mpactors.ping(b.name) == "pong"
        me = mpactors.self()
        server = Deferring.start(node=b.name)
        remote_echo = mpactors.spawn(echo, me, node=b.name)  # an async actor on the other node
        assert mpactors.receive(("ready", remote_echo), timeout=LONG_TIMEOUT)

        async def main() -> None:
            calls = [asyncio.ensure_future(aio.call(server, i, timeout=LONG_TIMEOUT)) for i in range(20)]
            while await aio.call(server, "held") < 20:
                await asyncio.sleep(0.01)
            assert await aio.call(server, "release") == 20
            assert await asyncio.gather(*calls) == [("answer", i) for i in range(20)]
            assert await aio.rpc_call(b.name, "operator:mul", 6, 7, timeout=LONG_TIMEOUT) == 42
            aio.send(remote_echo, (me, "over there"))
            assert await aio.receive(("echo", str), timeout=LONG_TIMEOUT) == ("echo", "over there")
            pending = asyncio.ensure_future(aio.call(server, "held forever", timeout=None))
            while await aio.call(server, "held") < 1:
                await asyncio.sleep(0.01)
            b.kill()
            with pytest.raises(NodeError):
                await pending  # the node's loss ends the call, not a timeout

        run(main())
        assert [m for m in mpactors.flush() if type(m) in (AliasReply, Down)] == []  # nothing late
