"""``mpactors observer``: a live web page of a cluster, served from the CLI's hidden node.

Threads and ownership::

    main thread (the hidden node's process)      HTTP threads (ThreadingHTTPServer)
    ---------------------------------------      ----------------------------------
    every `interval`: Sampler.sample()   -----> Board (lock): last sample, history
    between samples: answer stack/state  <----- /api/stack, /api/state: a request
      requests from the queue                     in the queue, wait for its future
                                                 /events: one SSE message per sample
                                                 /metrics: the last sample through prometheus_client

Only the main thread talks to the cluster (``rpc``, ``process_info``): a
node's main process has one mailbox, and one thread receives from it.

Routes: ``/`` the page, ``/api/sample`` the last sample, ``/api/history``
(per node: time, message rates, memory), ``/events`` (server-sent events:
each new sample), ``/api/stack?pid=P`` and ``/api/state?pid=P`` (text; P must
be an actor of the last sample), ``/metrics`` (:mod:`mpactors.cli._metrics`; 501
without the ``observer`` extra).

Access: bound to a loopback address, anyone on this host may look (like
Erlang's ``observer`` on a local node). Bound to any other address a token is
required on every route (``?token=T``, or ``Authorization: Bearer T``), since
the page shows stacks and state; without ``--token`` a random one is made
and printed with the URL. A token given with a loopback address is required too.
"""
from __future__ import annotations

import collections
import hmac
import ipaddress
import json
import queue
import secrets
import socket
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from .. import introspect
from ..errors import MpactorsError
from ._metrics import AVAILABLE, MISSING, MetricsPage
from ._sample import Sampler

__all__ = ["Board", "HISTORY_SECONDS", "PAGE", "make_server", "serve"]

#: The page (HTML, CSS and JavaScript in one file).
PAGE = Path(__file__).with_name("observer.html")
#: Seconds of history kept for the plots.
HISTORY_SECONDS = 600
_ASK_TIMEOUT = 20.0  # seconds an HTTP thread waits for a stack or state


class Board:
    """What the HTTP threads read: the last sample and each node's history (one lock)."""

    def __init__(self, history_seconds: float = HISTORY_SECONDS) -> None:
        self.cond = threading.Condition()
        self.sample: Optional[Dict[str, Any]] = None
        self.seq = 0
        self.history: Dict[str, Deque[Tuple[float, Optional[float], Optional[float], Optional[int]]]] = {}
        self.history_seconds = history_seconds
        self.closed = False

    def post(self, sample: Dict[str, Any]) -> None:
        """Publish a new sample (main thread)."""
        with self.cond:
            self.sample = sample
            self.seq += 1
            t = sample["time"]
            for n in sample["nodes"]:
                h = self.history.setdefault(n["node"], collections.deque())
                h.append((t, n["in_per_s"], n["out_per_s"], n["memory_total"]))
                while h and h[0][0] < t - self.history_seconds:
                    h.popleft()
            self.cond.notify_all()

    def current(self) -> Optional[Dict[str, Any]]:
        """The last sample (None before the first)."""
        with self.cond:
            return self.sample

    def close(self) -> None:
        """Wake every /events stream so it ends."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_next(self, seq: int, timeout: float) -> Tuple[int, Optional[Dict[str, Any]]]:
        """The first sample after number ``seq`` (or the current one after ``timeout``)."""
        with self.cond:
            self.cond.wait_for(lambda: self.seq > seq or self.closed, timeout)
            return self.seq, self.sample

    def history_json(self) -> Dict[str, List[List[Any]]]:
        with self.cond:
            return {node: [list(p) for p in h] for node, h in self.history.items()}


class _Asks:
    """Stack and state requests from HTTP threads, answered by the main thread."""

    def __init__(self) -> None:
        self.queue: "queue.Queue[Tuple[str, str, Future]]" = queue.Queue()

    def ask(self, what: str, pid: str) -> "Future[str]":
        fut: "Future[str]" = Future()
        self.queue.put((what, pid, fut))
        return fut

    def answer_until(self, deadline: float, sampler: Sampler) -> None:
        """Answer requests until ``deadline`` (main thread)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                what, text, fut = self.queue.get(timeout=left)
            except queue.Empty:
                return
            pid = sampler.pids.get(text)
            try:
                if pid is None:
                    raise LookupError(f"{text} is not an actor of the cluster (as of the last sample)")
                fut.set_result(introspect.stack(pid) if what == "stack" else introspect.get_state(pid))
            except (MpactorsError, LookupError) as exc:
                fut.set_exception(exc)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _handler(board: Board, asks: _Asks, token: Optional[str]) -> type:
    metrics = MetricsPage(board.current) if AVAILABLE else None

    class Handler(BaseHTTPRequestHandler):
        server_version = "mpactors-observer"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: one line per request would drown the terminal

        def _send(self, code: int, body: bytes, ctype: str, extra: Optional[Dict[str, str]] = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _text(self, code: int, text: str) -> None:
            self._send(code, text.encode(), "text/plain; charset=utf-8")

        def _json(self, value: Any) -> None:
            self._send(200, json.dumps(value).encode(), "application/json")

        def _authorized(self, query: Dict[str, List[str]]) -> bool:
            if token is None:
                return True
            given = (query.get("token") or [""])[0]
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[len("Bearer "):]
            return hmac.compare_digest(given.encode(), token.encode())

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if not self._authorized(query):
                self._text(401, "a token is required: open the URL printed by `mpactors observer` (?token=...)\n")
                return
            route = url.path
            try:
                if route in ("/", "/index.html"):
                    self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
                elif route == "/api/sample":
                    self._json(board.current())
                elif route == "/api/history":
                    self._json(board.history_json())
                elif route == "/events":
                    self._events()
                elif route in ("/api/stack", "/api/state"):
                    self._ask(route.rsplit("/", 1)[1], (query.get("pid") or [""])[0])
                elif route == "/metrics":
                    self._metrics()
                else:
                    self._text(404, f"no such page: {route}\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away

        def _metrics(self) -> None:
            if metrics is None:
                self._text(501, MISSING + "\n")
                return
            body, ctype = metrics.render(self.headers.get("Accept", ""))
            self._send(200, body, ctype)

        def _ask(self, what: str, pid: str) -> None:
            if not pid:
                self._text(400, "missing ?pid=<node.id.serial>\n")
                return
            try:
                self._text(200, asks.ask(what, pid).result(_ASK_TIMEOUT))
            except LookupError as exc:
                self._text(404, f"{exc}\n")
            except MpactorsError as exc:
                self._text(409, f"{type(exc).__name__}: {exc}\n")
            except TimeoutError:
                self._text(504, f"no answer for the {what} of {pid} within {_ASK_TIMEOUT}s\n")

        def _events(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.close_connection = True
            seq = 0
            while True:
                seq, sample = board.wait_next(seq, 15.0)
                if board.closed:
                    return
                data = json.dumps(sample) if sample is not None else "null"
                self.wfile.write(f"event: sample\ndata: {data}\n\n".encode() if sample is not None else b": idle\n\n")
                self.wfile.flush()

    return Handler


def make_server(host: str, port: int, board: Board, asks: _Asks, token: Optional[str]) -> ThreadingHTTPServer:
    """The HTTP server (not yet serving)."""
    cls = _ThreadingHTTPServer6 if ":" in host else ThreadingHTTPServer
    server = cls((host, port), _handler(board, asks, token))
    server.daemon_threads = True
    return server


class _ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve(sampler: Sampler, *, host: str = "127.0.0.1", port: int = 8080, token: Optional[str] = None,
          interval: float = 1.0, echo: Callable[[str], None] = print) -> None:
    """Serve the page until KeyboardInterrupt (Ctrl-C, or SIGTERM through the command's handler)."""
    if token is None and not _is_loopback(host):
        token = secrets.token_urlsafe(18)
    board, asks = Board(), _Asks()
    server = make_server(host, port, board, asks, token)
    shown = host if ":" not in host else f"[{host}]"
    url = f"http://{shown}:{server.server_address[1]}/" + (f"?token={token}" if token else "")
    thread = threading.Thread(target=server.serve_forever, name="mpactors-observer-http", daemon=True)
    thread.start()
    echo(f"observer at {url}")
    try:
        while True:
            start = time.monotonic()
            board.post(sampler.sample())
            asks.answer_until(start + interval, sampler)
    finally:
        board.close()
        server.shutdown()
        server.server_close()
