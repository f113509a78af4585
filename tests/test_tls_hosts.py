"""A TLS cluster across two hosts: two network namespaces joined by a veth pair.

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
from typing import Dict, Iterator, List

import pytest
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


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


class Hosts:
    """Two namespaces ``tls-a-<pid>``/``tls-b-<pid>``, their port mappers, and processes run in them."""

    def __init__(self) -> None:
        tag = os.getpid()
        self.ns = {ADDR_A: f"tls-a-{tag}", ADDR_B: f"tls-b-{tag}"}
        self.procs: List[subprocess.Popen] = []

    def setup(self) -> None:
        (ns_a, ns_b), tag = self.ns.values(), os.getpid() % 100000
        veth_a, veth_b = f"tlsa{tag}", f"tlsb{tag}"
        made = _ip("netns", "add", ns_a)
        if made.returncode != 0:
            pytest.skip(f"cannot make a network namespace (ip netns add: {made.stderr.strip()})")
        for cmd in (["netns", "add", ns_b],
                    ["link", "add", veth_a, "type", "veth", "peer", "name", veth_b],
                    ["link", "set", veth_a, "netns", ns_a], ["link", "set", veth_b, "netns", ns_b],
                    ["-n", ns_a, "addr", "add", f"{ADDR_A}/24", "dev", veth_a],
                    ["-n", ns_b, "addr", "add", f"{ADDR_B}/24", "dev", veth_b],
                    ["-n", ns_a, "link", "set", veth_a, "up"], ["-n", ns_b, "link", "set", veth_b, "up"],
                    ["-n", ns_a, "link", "set", "lo", "up"], ["-n", ns_b, "link", "set", "lo", "up"]):
            done = _ip(*cmd)
            assert done.returncode == 0, f"ip {' '.join(cmd)}: {done.stderr}"

    def run(self, addr: str, argv: List[str], env: Dict[str, str], out: Path) -> subprocess.Popen:
        with open(out, "wb") as f:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns[addr], *argv], env=env,
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def teardown(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait(10)
        for ns in self.ns.values():
            _ip("netns", "del", ns)  # takes the veth pair with it


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    h = Hosts()
    try:
        h.setup()
        yield h
    finally:
        h.teardown()


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
    for addr in (ADDR_A, ADDR_B):  # a port mapper per host, on the standard port inside its namespace
        home = tmp_path / f"home-{addr}"
        hosts.run(addr, [sys.executable, "-m", "mpactors.epmd", "--port", "4369"],
                  dict(base, MPACTORS_HOME=str(home)), tmp_path / f"epmd-{addr}.log")
    for addr in (ADDR_A, ADDR_B):
        probe = ["ip", "netns", "exec", hosts.ns[addr], sys.executable, "-c",
                 "import mpactors.epmd as e, sys; sys.exit(0 if e.is_running(timeout=0.5) else 1)"]
        wait_until(lambda: subprocess.run(probe, env=base, timeout=30).returncode == 0, LONG_TIMEOUT,
                   what=f"the port mapper of {addr}")
    tls = dict(base, **tls_env(certs))
    server_log = tmp_path / "a.log"
    hosts.run(ADDR_A, [sys.executable, "-c", SERVER, f"a@{ADDR_A}"], tls, server_log)
    wait_until(lambda: "ready" in server_log.read_text(), LONG_TIMEOUT, what="node a")

    plain = subprocess.run(["ip", "netns", "exec", hosts.ns[ADDR_B], sys.executable, "-c", CLIENT,
                            f"plain@{ADDR_B}", f"a@{ADDR_A}"], env=base, capture_output=True, text=True, timeout=60)
    assert json.loads(plain.stdout.splitlines()[-1]) == {"ping": "pang"}, plain.stderr
    wait_until(lambda: f"Connection attempt from {ADDR_B}:" in server_log.read_text(), LONG_TIMEOUT,
               what="a's log of the refused plain node")
    assert "a node without TLS: this node requires TLS" in server_log.read_text()

    ok = subprocess.run(["ip", "netns", "exec", hosts.ns[ADDR_B], sys.executable, "-c", CLIENT,
                         f"b@{ADDR_B}", f"a@{ADDR_A}"], env=tls, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[-1]) == {
        "ping": "pong", "echo": "across hosts", "spawn": f"a@{ADDR_A}", "rpc": f"a@{ADDR_A}",
    }
    assert f"connected to b@{ADDR_B}" in server_log.read_text()
