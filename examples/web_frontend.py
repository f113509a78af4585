"""A web front end: an aiohttp app whose handlers call a GenServer with ``aio.call``.

The node's main process runs the web server's event loop; every request
handler awaits ``aio.call`` to a GenServer actor, so hundreds of requests are
in flight at once without a thread each, and each gets its own reply.

Run:  python examples/web_frontend.py [--port 8080]     (needs: pip install 'mpactors[web]')
Then: curl -X POST http://127.0.0.1:8080/count/apples
      curl http://127.0.0.1:8080/hello/world

To call a server on another node of the cluster, give ``aio.call`` the
server as ``('web_counter', 'other@host')`` instead of the local name.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any, Dict

from aiohttp import web

import mpactors
from mpactors import GenServer, aio

SERVER = "web_counter"


class Counter(GenServer):
    """Counts per key; greets by name (the state the web handlers share)."""

    def init(self) -> None:
        self.counts: Dict[str, int] = {}

    def handle_call(self, request: Any, frm: Any) -> Any:
        kind, arg = request
        if kind == "incr":
            self.counts[arg] = self.counts.get(arg, 0) + 1
            return self.counts[arg]
        if kind == "greet":
            return f"hello, {arg}"
        raise ValueError(f"unknown request {request!r}")


async def count(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    n = await aio.call(SERVER, ("incr", key))
    return web.json_response({"key": key, "count": n})


async def hello(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    greeting = await aio.call(SERVER, ("greet", name))
    return web.json_response({"greeting": greeting, "node": mpactors.node()})


def make_app() -> web.Application:
    app = web.Application()
    app.add_routes([web.post("/count/{key}", count), web.get("/hello/{name}", hello)])
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"serving on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        print("stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    with mpactors.Node():
        Counter.start(name=SERVER)
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
