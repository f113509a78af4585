"""Observing a cluster: ``top``, ``stack``, ``state``, ``/metrics`` and the observer's token.

The cluster is :func:`observe_cluster.observed_cluster` (nodes a and b in
subprocesses, a supervision tree, registered actors); this process is a
hidden node that drives it. The commands run for real (``python -m mpactors``
in subprocesses, the live ``top`` under a pseudo-terminal). The page in a
browser is in ``test_observe_browser.py``.
"""
from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from nodes import NodeProc, cluster, cookie, local_node  # noqa: F401 - fixtures
from observe_cluster import (
    Big, Counter, blocked_in_observe_test, cli_env, observed_cluster, observer, pids_of, spinning_in_observe_test,
)
from support import LONG_TIMEOUT, SHORT_TIMEOUT, free_port, wait_until

import mpactors
from mpactors import introspect
from mpactors.cli._metrics import MISSING, NODE_METRICS, PROCESS_METRICS, metrics_text

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, expect: Optional[int] = 0, timeout: float = LONG_TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m mpactors ARGS`` with this test's port mapper and cookie."""
    result = subprocess.run([sys.executable, "-m", "mpactors", *args], env=cli_env(), capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if expect is not None:
        assert result.returncode == expect, f"mpactors {' '.join(args)}: exit {result.returncode}\n" \
                                            f"{result.stdout}{result.stderr}"
    return result


@pytest.fixture
def two_nodes(cluster: int) -> Iterator[Tuple[NodeProc, NodeProc]]:  # noqa: F811 - the fixture
    with local_node("drv", hidden=True), observed_cluster(f"obsa{os.getpid()}", f"obsb{os.getpid()}") as (a, b):
        yield a, b


def _by_name(actors: List[Dict[str, Any]], node: str, name: str) -> Dict[str, Any]:
    found = [x for x in actors if x["node"] == node and x["name"] == name]
    assert len(found) == 1, (name, node, actors)
    return found[0]


# -- top -------------------------------------------------------------------------------
def test_top_once_json_reports_each_node_and_actor_field_by_field(two_nodes: Tuple[NodeProc, NodeProc]) -> None:
    a, b = two_nodes
    # A mailbox with exactly three waiting messages, nothing handled.
    b.call("result = mpactors.spawn(nodes.hold_mailbox)\nmpactors.register('holder', result)\n"
           "[mpactors.send(result, ('m', i)) for i in range(3)]")
    on_a, on_b = pids_of(a), pids_of(b)
    wait_until(lambda: b.call("mpactors.process_info(mpactors.whereis('holder'))['message_queue_len']") == 3)
    info_counter = a.call("mpactors.process_info(mpactors.whereis('counter'))")

    sample = json.loads(run_cli("top", a.name, "--json").stdout)

    nodes = {n["node"]: n for n in sample["nodes"]}
    assert set(nodes) == {a.name, b.name}
    assert nodes[a.name]["peers"] == [b.name] and nodes[b.name]["peers"] == [a.name]
    assert nodes[a.name]["os_pid"] == a.os_pid and nodes[b.name]["os_pid"] == b.os_pid
    assert nodes[a.name]["actors"] == 6  # shop_sup, counter, workers_sup, chatter1, chatter2, blocked
    assert nodes[b.name]["actors"] == 3  # blocked, echo, holder
    assert nodes[a.name]["error"] is None and nodes[a.name]["memory"] > 0
    assert nodes[a.name]["memory_total"] > nodes[a.name]["memory"]
    assert nodes[a.name]["in_per_s"] > 0 and nodes[a.name]["out_per_s"] > 0  # the chatters

    actors = sample["actors"]
    assert {x["pid"] for x in actors if x["node"] == a.name} >= {str(p) for p in on_a.values() if p.id != 0}
    holder = _by_name(actors, b.name, "holder")
    assert holder["pid"] == str(on_b["holder"])
    assert holder["callable"] == "nodes.hold_mailbox" and holder["status"] == "waiting"
    assert holder["message_queue_len"] == 3
    assert holder["messages_in"] == 3 and holder["messages_handled"] == 0 and holder["messages_out"] == 0
    assert holder["bytes_in"] > 0 and holder["in_per_s"] == 0.0 and holder["behaviour"] is None

    counter = _by_name(actors, a.name, "counter")
    assert counter["pid"] == str(info_counter["pid"]) and counter["os_pid"] == info_counter["os_pid"]
    assert counter["callable"] == "observe_cluster.Counter" and counter["behaviour"] == "gen_server"
    assert counter["links"] == [str(on_a["shop_sup"])]
    assert counter["memory"] > 0 and counter["cpu_percent"] >= 0

    sup = _by_name(actors, a.name, "shop_sup")
    assert sup["behaviour"] == "supervisor"
    workers_sup = [x for x in actors if x["pid"] == sup["children"][1][1]][0]
    assert sup["children"] == [["counter", str(on_a["counter"]), "worker"],
                               ["workers_sup", workers_sup["pid"], "supervisor"]]
    assert [c[0] for c in workers_sup["children"]] == ["chatter1", "chatter2"]

    chatter = _by_name(actors, a.name, "chatter1")
    assert chatter["messages_handled"] > 0 and chatter["messages_out"] > 0
    assert chatter["in_per_s"] > 0 and chatter["out_per_s"] > 0


def test_top_once_prints_tables_sorted_as_asked(two_nodes: Tuple[NodeProc, NodeProc]) -> None:
    a, b = two_nodes
    out = run_cli("top", b.name, "--once", "--sort", "memory").stdout
    lines = out.splitlines()
    assert lines[0].startswith("mpactors top") and "sorted by memory" in lines[0]
    assert any(line.startswith(a.name) for line in lines) and any(line.startswith(b.name) for line in lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("PID "))
    rows = [line for line in lines[header + 1:] if line.startswith("<")]
    assert len(rows) == 8 and any(" counter " in r for r in rows)

    def mem(row: str) -> float:
        value = row.split()[-2]
        return float(value[:-1]) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[value[-1]]

    sizes = [mem(r) for r in rows]
    assert sizes == sorted(sizes, reverse=True)


def test_top_bad_input_is_one_clear_error(cluster: int) -> None:  # noqa: F811
    bad = run_cli("top", "--sort", "bogus", expect=2)
    assert "bogus" in bad.stderr
    missing = run_cli("top", "nosuchnode", "--once", expect=1)
    assert missing.stderr.startswith("Error:") and "node nosuchnode@" in missing.stderr and "not running" in missing.stderr
    assert missing.stderr.count("\n") == 1
    piped = run_cli("top", expect=1)  # stdout is not a terminal, and no node runs
    assert piped.stderr.startswith("Error:")


@contextmanager
def _top_in_pty(node: str, *extra: str) -> Iterator[Tuple[int, int]]:
    """``mpactors top NODE`` under a new pseudo-terminal; yields (child pid, master fd)."""
    env = cli_env()
    env.update(TERM="xterm", COLUMNS="160", LINES="40")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.execve(sys.executable, [sys.executable, "-m", "mpactors", "top", node, *extra], env)
    try:
        yield pid, fd
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        os.close(fd)


def _read_until(fd: int, pattern: Any, seen: bytearray, timeout: float = LONG_TIMEOUT) -> None:
    """Read the terminal into ``seen`` until it matches ``pattern`` (a regular expression or a predicate)."""
    done = pattern if callable(pattern) else (lambda buf: re.search(pattern.encode(), buf))
    deadline = time.monotonic() + timeout
    while not done(bytes(seen)):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {pattern!r} on the terminal:\n{bytes(seen)[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                break
            seen += chunk


def _exit_status(pid: int, timeout: float = SHORT_TIMEOUT) -> int:
    def done() -> Any:
        got, status = os.waitpid(pid, os.WNOHANG)
        return (got, status) if got else None

    _, status = wait_until(done, timeout, what="top to exit")
    return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_live_top_redraws_sorts_and_restores_the_terminal_on_quit(
    two_nodes: Tuple[NodeProc, NodeProc], key: bytes
) -> None:
    a, b = two_nodes
    with _top_in_pty(a.name) as (pid, fd):
        before = termios.tcgetattr(fd)
        seen = bytearray()
        _read_until(fd, r"\x1b\[\?1049h", seen)  # the alternate screen
        _read_until(fd, "sorted by cpu", seen)
        _read_until(fd, "counter", seen)
        during = termios.tcgetattr(fd)
        assert during[3] & termios.ICANON == 0 and during[3] & termios.ECHO == 0  # cbreak, no echo
        os.write(fd, b"m")  # sort by memory
        _read_until(fd, "sorted by memory", seen)
        refreshes = bytes(seen).count(b"mpactors top - ")
        _read_until(fd, lambda buf: buf.count(b"mpactors top - ") > refreshes, seen)  # it refreshes by itself
        os.write(fd, key)
        _read_until(fd, r"\x1b\[\?1049l", seen)  # left the alternate screen
        assert _exit_status(pid) == 0
        after = termios.tcgetattr(fd)
        assert after == before  # cbreak undone: canonical mode and echo are back
        assert b"\x1b[?25h" in bytes(seen).rsplit(b"sorted by memory", 1)[1]  # the cursor is shown again


# -- stack -------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_stack_of_a_local_actor_blocked_in_receive_and_one_spinning(cluster: int) -> None:  # noqa: F811
    with local_node("stk"):
        blocked = mpactors.spawn(blocked_in_observe_test)
        spinner = mpactors.spawn(spinning_in_observe_test, 60.0)
        ref = mpactors.monitor(blocked)
        # Both started: a process started by forkserver or spawn is still
        # importing (another stack) just after spawn returns.
        wait_until(lambda: mpactors.process_info(blocked)["status"] == "waiting", LONG_TIMEOUT,
                   what="the blocked actor in receive")
        text = introspect.stack(blocked)
        assert text.startswith(f"Stack of {blocked}:")
        main = text.split("Thread ")[1]
        assert "(main thread)" in main
        assert re.search(r"in blocked_in_observe_test\n.*mpactors\.receive\(\)", main)
        assert main.rstrip().splitlines()[-2].strip().startswith('File "') and "in receive" in main
        spin = wait_until(lambda: (t := introspect.stack(spinner)) and "in spinning_in_observe_test" in t and t,
                          LONG_TIMEOUT, what="the spinner in its loop")
        assert "in spinning_in_observe_test" in spin.split("Thread ")[1]
        # Neither was stopped: the blocked one still takes its message and ends normally.
        mpactors.send(blocked, "stop")
        down = mpactors.receive(lambda m: isinstance(m, mpactors.Down) and m.ref == ref, timeout=SHORT_TIMEOUT)
        assert down.reason == "normal"
        assert mpactors.process_info(spinner)["status"] == "running"
        mpactors.exit(spinner, "kill")
        with pytest.raises(mpactors.NoProc):
            introspect.stack(blocked)
        with pytest.raises(mpactors.BadArg):
            introspect.stack("<a.1.0>")  # type: ignore[arg-type]


def test_stack_of_a_remote_actor_through_the_api_and_the_command(two_nodes: Tuple[NodeProc, NodeProc]) -> None:
    a, b = two_nodes
    blocked = pids_of(b)["blocked"]
    # in receive, not still importing (forkserver and spawn start it cold)
    wait_until(lambda: b.call("mpactors.process_info(mpactors.whereis('blocked'))['status']") == "waiting",
               LONG_TIMEOUT, what="the blocked actor in receive")
    text = introspect.stack(blocked)
    assert f"Stack of {blocked}:" in text and "in blocked_in_observe_test" in text
    out = run_cli("stack", str(blocked)).stdout
    assert "in blocked_in_observe_test" in out and "(main thread)" in out
    # Still there, still answering.
    assert b.call("mpactors.process_info(mpactors.whereis('blocked'))['status']") == "waiting"
    b.call("mpactors.send('blocked', 'stop')")
    wait_until(lambda: b.call("mpactors.whereis('blocked')") is None)
    gone = run_cli("stack", str(blocked), expect=1)
    assert gone.stderr.startswith("Error:") and "no process" in gone.stderr
    assert run_cli("stack", "not-a-pid", expect=1).stderr.startswith("Error:")


# -- state -------------------------------------------------------------------------------
def test_state_of_a_genserver_local_remote_and_by_command(two_nodes: Tuple[NodeProc, NodeProc]) -> None:
    a, b = two_nodes
    counter = pids_of(a)["counter"]
    assert mpactors.genserver.call(counter, "add") == 1
    state = introspect.get_state(counter)
    assert state.startswith("{") and "'count': 1" in state
    assert "'history': [0, 1, 2," in state and "...]" in state  # reprlib cut the list
    assert "'label': 'xxx" in state and len(state) < 2000  # and the 5000-character string
    assert "_stop_reason" not in state and "_parent" not in state  # the behaviour's bookkeeping
    out = run_cli("state", str(counter)).stdout
    assert "'count': 1" in out
    with pytest.raises(mpactors.BadArg, match="runs no GenServer"):
        introspect.get_state(pids_of(b)["echo"])
    not_server = run_cli("state", str(pids_of(b)["echo"]), expect=1)
    assert "runs no GenServer" in not_server.stderr


@pytest.mark.timeout(60)
def test_state_is_capped_and_a_raising_repr_does_not_break_it(cluster: int) -> None:  # noqa: F811
    with local_node("st"):
        pid = Big.start()
        state = introspect.get_state(pid)
        assert len(state) <= introspect.STATE_LIMIT + 40
        assert re.search(r"\.\.\. \(\d+ more characters\)$", state)
        assert state.startswith("{'bad': <BadRepr instance at 0x")  # reprlib's stand-in for a raising repr
        assert "'blobs': {0: 'yyy" in state and "yyy...yyy" in state  # each string cut in the middle too
        small = Counter.start(7)
        assert introspect.get_state(small).startswith("{'count': 7")
        mpactors.genserver.stop(pid)
        mpactors.genserver.stop(small)


# -- /metrics and the token --------------------------------------------------------------
def _get(url: str) -> Tuple[int, str]:
    code, _, body = _get_typed(url)
    return code, body


def _get_typed(url: str, accept: Optional[str] = None) -> Tuple[int, str, str]:
    """Status, Content-Type and body of a GET (``accept``: the Accept header)."""
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=LONG_TIMEOUT) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def _families(text: str) -> Dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def _chatter_in(text: str, chatter: str) -> float:
    fam = _families(text)["mpactors_process_messages_in"]
    assert fam.type == "counter"
    return next(s.value for s in fam.samples if s.labels.get("name") == chatter)


def test_metrics_parse_as_prometheus_text_and_counters_move(two_nodes: Tuple[NodeProc, NodeProc]) -> None:
    pytest.importorskip("prometheus_client", reason="the test extra brings prometheus_client's parser")
    a, b = two_nodes
    with observer(a.name, "--port", str(free_port())) as (url, _):
        assert "token" not in url  # loopback: no token
        text = wait_until(lambda: (lambda r: r[0] == 200 and "chatter1" in r[1] and r[1])(_get(url + "metrics")),
                          LONG_TIMEOUT, what="metrics with the chatters")
        fams = _families(text)
        up = {s.labels["node"]: s.value for s in fams["mpactors_node_up"].samples}
        assert up == {a.name: 1.0, b.name: 1.0}
        actors = {s.labels["node"]: s.value for s in fams["mpactors_node_actors"].samples}
        assert actors == {a.name: 6.0, b.name: 2.0}
        names = {s.labels["name"] for s in fams["mpactors_process_message_queue_len"].samples}
        assert {"counter", "shop_sup", "chatter1", "echo", "blocked"} <= names
        first = _chatter_in(text, "chatter1")
        wait_until(lambda: _chatter_in(_get(url + "metrics")[1], "chatter1") > first, LONG_TIMEOUT,
                   what="chatter1's messages_in counter to grow")
        from prometheus_client import CONTENT_TYPE_LATEST
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

        code, ctype, _ = _get_typed(url + "metrics")
        assert code == 200 and ctype == CONTENT_TYPE_LATEST
        code, ctype, om = _get_typed(url + "metrics", accept="application/openmetrics-text; version=1.0.0")
        assert code == 200 and ctype.startswith("application/openmetrics-text"), ctype
        om_fams = {f.name: f for f in openmetrics_families(om)}  # the parser rejects anything not OpenMetrics
        chatter = next(s for s in om_fams["mpactors_process_messages_in"].samples if s.labels["name"] == "chatter1")
        assert om_fams["mpactors_process_messages_in"].type == "counter"
        assert chatter.name == "mpactors_process_messages_in_total" and chatter.value >= first
        assert _get(url + "nosuchpage")[0] == 404
        assert _get(url + "api/stack")[0] == 400  # no pid
        code, body = _get(url + "api/stack?pid=" + urllib.parse.quote("<nosuch@node.1.0>"))
        assert code == 404 and "not an actor of the cluster" in body


def test_observer_on_a_port_in_use_is_one_clear_error(cluster: int) -> None:  # noqa: F811
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = run_cli("observer", "--port", str(s.getsockname()[1]), expect=1)
    assert taken.stderr.startswith("Error:") and "in use" in taken.stderr and taken.stderr.count("\n") == 1


def test_metrics_text_escapes_label_values() -> None:
    pytest.importorskip("prometheus_client", reason="the test extra brings prometheus_client's parser")
    odd = 'a "quoted"\\name\nwith a newline'
    sample = {"nodes": [], "actors": [{
        "node": "n@h", "pid": "<n@h.1.0>", "name": odd, "callable": "m.f", "messages_in": 5, "messages_out": 0,
        "messages_handled": 4, "bytes_in": 10, "bytes_out": 0, "message_queue_len": 1, "memory": 100,
        "cpu_percent": 1.5}]}
    fams = _families(metrics_text(sample))
    (s,) = fams["mpactors_process_messages_in"].samples
    assert s.labels["name"] == odd and s.value == 5
    assert fams["mpactors_process_cpu_percent"].samples[0].value == 1.5


def test_metrics_before_the_first_sample_has_every_family_and_no_samples() -> None:
    pytest.importorskip("prometheus_client", reason="the test extra brings prometheus_client's parser")
    fams = _families(metrics_text(None))
    counters = {m[:-len("_total")] for m, kind, _, _ in PROCESS_METRICS if kind == "counter"}
    expected = {m for m, kind, _, _ in NODE_METRICS + PROCESS_METRICS if kind == "gauge"} | counters
    assert set(fams) == expected and len(counters) == 5
    assert all(fams[m].type == "counter" for m in counters)
    assert all(not f.samples for f in fams.values())


# A `python -c` wrapper: prometheus_client cannot be imported, then `python -m mpactors ARGS`.
_WITHOUT_PROMETHEUS = """
import runpy, sys
class NoPrometheus:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "prometheus_client":
            raise ImportError("prometheus_client is blocked by the test")
sys.meta_path.insert(0, NoPrometheus())
runpy.run_module("mpactors", run_name="__main__", alter_sys=True)
"""


def test_observer_without_prometheus_client_answers_501_and_still_serves_the_page(
        two_nodes: Tuple[NodeProc, NodeProc]) -> None:
    a, b = two_nodes
    proc = subprocess.Popen([sys.executable, "-c", _WITHOUT_PROMETHEUS, "observer", a.name, "--port", str(free_port())],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("observer at http://"), (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split()[-1]
        code, ctype, body = _get_typed(url + "metrics")
        assert code == 501 and ctype.startswith("text/plain") and body == MISSING + "\n"
        assert "pip install 'mpactors[observer]'" in body
        code, page = _get(url)
        assert code == 200 and "mpactors observer" in page
        def both_nodes() -> Optional[Dict[str, Any]]:
            s = json.loads(_get(url + "api/sample")[1])
            if s and {n["node"] for n in s["nodes"]} == {a.name, b.name}:
                return s if any(x["name"] == "chatter1" for x in s["actors"]) else None
            return None

        sample = wait_until(both_nodes, LONG_TIMEOUT, interval=0.2, what="a sample of both nodes and their actors")
        assert all(n["error"] is None for n in sample["nodes"])
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=LONG_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert err.splitlines()[0] == f"note: {MISSING}", err


def test_observer_off_loopback_requires_its_token(cluster: int) -> None:  # noqa: F811
    with local_node("tok", hidden=True):
        port = free_port()
        with observer("--host", "0.0.0.0", "--port", str(port)) as (url, _):
            token = re.search(r"\?token=([\w-]+)$", url)
            assert token, url
            base = f"http://127.0.0.1:{port}/"
            for path in ("", "metrics", "events", "api/sample", "api/stack?pid=x"):
                code, body = _get(base + path)
                assert code == 401 and "token" in body, path
            assert _get(base + "?token=wrong")[0] == 401
            code, page = _get(base + "?token=" + token[1])
            assert code == 200 and "mpactors observer" in page
            req = urllib.request.Request(base + "api/history", headers={"Authorization": f"Bearer {token[1]}"})
            with urllib.request.urlopen(req, timeout=LONG_TIMEOUT) as r:
                assert r.status == 200
        with observer("--port", str(port), "--token", "s3cret") as (url, _):  # a token asked for on loopback
            assert url.endswith("?token=s3cret")
            assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 401
            assert _get(f"http://127.0.0.1:{port}/metrics?token=s3cret")[0] == 200
