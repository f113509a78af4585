"""A TLS cluster across two hosts: two network namespaces on a bridge (tests/netns.py).

Host A is ``10.231.0.1``, host B ``10.231.0.2`` (addresses that exist only
inside the namespaces); each runs its own port mapper on port 4369, as two
machines would. Nodes use long names with those addresses and certificates
with matching IP SANs, made by ``openssl`` as the README shows. Needs root
(``ip netns add``): skipped with the reason otherwise. Everything is removed in
``finally``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from netns import Hosts, hosts_fixture
from nodes import TEST_COOKIE
from support import LONG_TIMEOUT, wait_until
from tls_certs import OPENSSL, make_certs, tls_env

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.timeout(180),
    pytest.mark.skipif(OPENSSL is None, reason="the openssl command is needed to make test certificates"),
]

ROOT = Path(__file__).resolve().parent.parent
ADDR_A, ADDR_B = "10.231.0.1", "10.231.0.2"


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    yield from hosts_fixture(2, "tls", 231)  # host 1 is ADDR_A, host 2 ADDR_B


A, B = 1, 2


SERVER = textwrap.dedent("""
    import logging, os, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
    import mpactors
    with mpactors.Node(sys.argv[1], longnames=True):
        mpactors.register("sink")
        print("ready", os.getpid(), flush=True)
        while True:
            msg = mpactors.receive()
            if msg == "stop":
                break
            mpactors.send(msg[0], ("echo", msg[1]))
""")

CLIENT = textwrap.dedent("""
    import json, sys
    import mpactors
    from mpactors import rpc
    me, other = sys.argv[1], sys.argv[2]
    with mpactors.Node(me, longnames=True):
        out = {"ping": mpactors.ping(other)}
        if out["ping"] == "pong":
            mpactors.send(("sink", other), (mpactors.self(), "across hosts"))
            out["echo"] = mpactors.receive(timeout=10)[1]
            parent = mpactors.self()
            pid = mpactors.spawn(lambda: mpactors.send(parent, ("spawned on", mpactors.node())), node=other)
            out["spawn"] = mpactors.receive(timeout=10)[1]
            out["rpc"] = rpc.call(other, "mpactors:node")
            mpactors.send(("sink", other), "stop")
        print(json.dumps(out), flush=True)
""")


def test_a_tls_cluster_across_two_hosts_works_and_a_plain_node_of_the_other_host_is_refused(
    hosts: Hosts, tmp_path: Path
) -> None:
    certs = make_certs(tmp_path / "certs", extra_ips=[ADDR_A, ADDR_B])
    base = {k: v for k, v in os.environ.items() if not k.startswith("MPACTORS_")}
    base.update(PYTHONPATH=str(ROOT), MPACTORS_EPMD_PORT="4369", MPACTORS_COOKIE=TEST_COOKIE)
    for i in (A, B):  # a port mapper per host, on the standard port inside its namespace
        hosts.port_mapper(i, dict(base, MPACTORS_HOME=str(tmp_path / f"home-{i}")), tmp_path / f"epmd-{i}.log")
    tls = dict(base, **tls_env(certs))
    server_log = tmp_path / "a.log"
    hosts.run(A, [sys.executable, "-c", SERVER, f"a@{ADDR_A}"], tls, server_log)
    wait_until(lambda: "ready" in server_log.read_text(), LONG_TIMEOUT, what="node a")

    plain = subprocess.run(hosts.argv(B, [sys.executable, "-c", CLIENT,
                            f"plain@{ADDR_B}", f"a@{ADDR_A}"]), env=base, capture_output=True, text=True, timeout=60)
    assert json.loads(plain.stdout.splitlines()[-1]) == {"ping": "pang"}, plain.stderr
    wait_until(lambda: f"Connection attempt from {ADDR_B}:" in server_log.read_text(), LONG_TIMEOUT,
               what="a's log of the refused plain node")
    assert "a node without TLS: this node requires TLS" in server_log.read_text()

    ok = subprocess.run(hosts.argv(B, [sys.executable, "-c", CLIENT,
                         f"b@{ADDR_B}", f"a@{ADDR_A}"]), env=tls, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[-1]) == {
        "ping": "pong", "echo": "across hosts", "spawn": f"a@{ADDR_A}", "rpc": f"a@{ADDR_A}",
    }
    assert f"connected to b@{ADDR_B}" in server_log.read_text()
