"""examples/web_frontend.py: real concurrent HTTP requests, every answer checked.

The example runs as a user runs it (a subprocess serving on a free port);
this test is its client, with aiohttp's own client. Skipped without the
``web`` extra (``pip install 'mpactors[web]'``).
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest

from support import LONG_TIMEOUT, free_port

aiohttp = pytest.importorskip("aiohttp", reason="the web example needs the `web` extra: pip install 'mpactors[web]'")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "web_frontend.py"

pytestmark = pytest.mark.timeout(180)


async def _hammer(base: str, n: int) -> List[Any]:
    timeout = aiohttp.ClientTimeout(total=LONG_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def post(key: str) -> Any:
            async with session.post(f"{base}/count/{key}") as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        async def get(name: str) -> Any:
            async with session.get(f"{base}/hello/{name}") as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        jobs = [post("apples") for _ in range(n)] + [post("pears") for _ in range(n // 2)]
        jobs += [get(f"user{i}") for i in range(n)]
        return await asyncio.gather(*jobs)


def test_concurrent_http_requests_each_get_their_own_answer_from_the_genserver(mpactors_home: str) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving on"), line + proc.stderr.read() if proc.poll() is not None else line
        n = 200
        results = asyncio.run(_hammer(f"http://127.0.0.1:{port}", n))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=LONG_TIMEOUT)
    assert proc.returncode == 0, err
    assert "stopped" in out
    apples = sorted(r["count"] for r in results[:n])
    pears = sorted(r["count"] for r in results[n:n + n // 2])
    hellos = results[n + n // 2:]
    assert apples == list(range(1, n + 1))  # every increment answered once, none lost or doubled
    assert pears == list(range(1, n // 2 + 1))
    assert [h["greeting"] for h in hellos] == [f"hello, user{i}" for i in range(n)]
