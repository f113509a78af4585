"""Deployment across hosts made with network namespaces (tests/netns.py): host ``i`` is
``10.233.0.<i>``, on a bridge with the others; each has its own port mapper on port 4369
unless the test is about running without one. Needs root: skipped saying why otherwise.

These are the configurations docs/deploy.md describes: long names with addresses, a port
range on one interface, a dist_port cluster found through DNS seeds, and no ping anywhere:
seeds reconnect by themselves.
"""
from __future__ import annotations

import json
import re
import signal
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List

import psutil
import pytest
from netns import Hosts, base_env, hosts_fixture
from nodes import TEST_COOKIE
from support import LONG_TIMEOUT, SHORT_TIMEOUT, wait_until

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(240)]

NET = 233


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    yield from hosts_fixture(3, "dpl", NET)


def _env(tmp_path: Path, i: int, **extra: str) -> Dict[str, str]:
    settings = {"MPACTORS_COOKIE": TEST_COOKIE, "MPACTORS_EPMD_PORT": "4369",
                "MPACTORS_HOME": str(tmp_path / f"home-{i}")}
    settings.update(extra)
    return base_env(**settings)


def _port_mappers(hosts: Hosts, tmp_path: Path) -> None:
    for i in hosts.ns:
        hosts.port_mapper(i, _env(tmp_path, i), tmp_path / f"epmd-{i}.log")


# A node that prints "up NAME" / "down NAME" as connections come and go, until
# SIGTERM. Its options come as JSON (Node keywords); the rest from the environment.
NODE = textwrap.dedent("""
    import json, os, sys, logging
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    import mpactors
    from mpactors.messages import NodeDown, NodeUp
    with mpactors.Node(sys.argv[1], **json.loads(sys.argv[2])) as node:
        mpactors.register("reporter")
        mpactors.monitor_nodes(True)
        print("ready", node.name, os.getpid(), flush=True)
        while True:
            msg = mpactors.receive()
            if type(msg) is NodeUp:
                print("up", msg.node, flush=True)
            elif type(msg) is NodeDown:
                print("down", msg.node, flush=True)
""")


def _node(hosts: Hosts, tmp_path: Path, i: int, name: str, env: Dict[str, str], **options: object) -> Path:
    out = tmp_path / f"{name.partition('@')[0]}-{i}.out"
    hosts.run(i, [sys.executable, "-c", NODE, name, json.dumps(options)], env, out)
    wait_until(lambda: "ready" in out.read_text(), LONG_TIMEOUT, what=f"node {name}: {out.read_text()}")
    return out


def _events(out: Path) -> List[str]:
    return [line for line in out.read_text().splitlines() if line.startswith(("up ", "down "))]


def _listening(hosts: Hosts, i: int) -> List[str]:
    """``ADDR:PORT`` of every TCP listener on host ``i``."""
    done = hosts.call(i, ["ss", "-ltnH"], base_env())
    return [line.split()[3] for line in done.stdout.splitlines() if line.strip()]


def test_a_port_range_on_one_interface(hosts: Hosts, tmp_path: Path) -> None:
    _port_mappers(hosts, tmp_path)
    a = hosts.addr[1]
    env = _env(tmp_path, 1, MPACTORS_PORT_RANGE="9100-9102", MPACTORS_INTERFACE=a)
    _node(hosts, tmp_path, 1, f"r1@{a}", env)
    _node(hosts, tmp_path, 1, f"r2@{a}", env)
    assert {f"{a}:9100", f"{a}:9101"} <= set(_listening(hosts, 1))
    assert not any(addr.endswith((":9100", ":9101")) and not addr.startswith(a) for addr in _listening(hosts, 1))
    # Full range: the third node fails naming it.
    third = hosts.call(1, [sys.executable, "-c", f"import mpactors; mpactors.Node('r3@{a}', port_range=(9100, 9101)).start()"],
                       env)
    assert "no free port in port_range 9100-9101" in third.stderr
    ping = hosts.call(2, [sys.executable, "-m", "mpactors", "ping", f"r1@{a}"], _env(tmp_path, 2))
    assert ping.stdout == "pong\n", ping.stderr  # host 2 reached host 1 through the range


def test_a_dist_port_cluster_with_dns_seeds_and_no_port_mapper_anywhere(hosts: Hosts, tmp_path: Path) -> None:
    names = "".join(f"{addr} app.cluster.test\n" for addr in hosts.addr.values())
    for i in hosts.ns:
        hosts.hosts_file(i, names)
    outs = {}
    for i, addr in hosts.addr.items():
        env = _env(tmp_path, i, MPACTORS_DIST_PORT="9300", MPACTORS_SEEDS="app@dns:app.cluster.test")
        outs[i] = _node(hosts, tmp_path, i, f"app@{addr}", env)
    everyone = {f"app@{addr}" for addr in hosts.addr.values()}
    for i, addr in hosts.addr.items():
        wait_until(lambda i=i, addr=addr: {line[3:] for line in _events(outs[i])} >= everyone - {f"app@{addr}"},
                   LONG_TIMEOUT, what=f"host {i} connected to the others")
    for i in hosts.ns:
        listening = _listening(hosts, i)
        assert f"{hosts.addr[i]}:9300" in listening or "0.0.0.0:9300" in listening, listening
        assert not any(addr.endswith(":4369") for addr in listening), listening
    # No port mapper process anywhere (the hosts' processes and their children).
    started = [psutil.Process(p.pid) for p in hosts.procs]
    for proc in started + [c for p in started for c in p.children(recursive=True)]:
        assert "epmd" not in " ".join(proc.cmdline()), proc.cmdline()
    # The CLI of a host reaches the others the same way.
    cli = hosts.call(3, [sys.executable, "-m", "mpactors", "nodes", f"app@{hosts.addr[1]}"],
                     _env(tmp_path, 3, MPACTORS_DIST_PORT="9300"))
    assert cli.returncode == 0, cli.stderr
    assert set(cli.stdout.split()) == everyone - {f"app@{hosts.addr[1]}"}


def test_seeds_heal_a_cut_link_without_any_ping(hosts: Hosts, tmp_path: Path) -> None:
    _port_mappers(hosts, tmp_path)
    a, b, c = hosts.addr[1], hosts.addr[2], hosts.addr[3]
    seeds = f"s@{a},s@{b},s@{c}"
    outs = {i: _node(hosts, tmp_path, i, f"s@{addr}", _env(tmp_path, i, MPACTORS_SEEDS=seeds), ticktime=2)
            for i, addr in hosts.addr.items()}
    wait_until(lambda: {f"up s@{b}", f"up s@{c}"} <= set(_events(outs[1])), LONG_TIMEOUT, what="the mesh")
    hosts.cut(3)
    wait_until(lambda: f"down s@{c}" in _events(outs[1]), LONG_TIMEOUT, what="host 3 seen down")
    cut_events = len(_events(outs[1]))
    hosts.mend(3)
    # Within 10 s (seeds retry at most every 5 s), with nobody pinging or sending.
    wait_until(lambda: f"up s@{c}" in _events(outs[1])[cut_events:], 10 + SHORT_TIMEOUT, what="host 3 back")
    wait_until(lambda: f"up s@{a}" in _events(outs[3])[1:], 10 + SHORT_TIMEOUT, what="host 1 back on host 3")


def test_functions_and_classes_of_a_script_travel_by_value_across_hosts(hosts: Hosts, tmp_path: Path) -> None:
    from test_deploy import SCRIPT

    _port_mappers(hosts, tmp_path)
    a, b = hosts.addr[1], hosts.addr[2]
    _node(hosts, tmp_path, 1, f"target@{a}", _env(tmp_path, 1))
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    done = hosts.call(2, [sys.executable, str(script), f"target@{a}", f"app@{b}"], _env(tmp_path, 2), timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["spawn"] == [f"target@{a}", 101] and out["rpc"] == 102 and out["closure"] == 206
    assert out["class"] == 104 and out["instance"] == 105
    assert out["genserver"] == [101, f"target@{a}"] and out["supervised"] == [7, f"target@{a}"]


def test_a_node_registers_again_after_its_port_mapper_is_killed_and_restarted(hosts: Hosts, tmp_path: Path) -> None:
    a = hosts.addr[1]
    first = hosts.port_mapper(1, _env(tmp_path, 1), tmp_path / "epmd-1.log")
    hosts.port_mapper(2, _env(tmp_path, 2), tmp_path / "epmd-2.log")
    out = _node(hosts, tmp_path, 1, f"stay@{a}", _env(tmp_path, 1))
    first.kill()  # SIGKILL: the port mapper forgets everything
    first.wait(10)
    ping = [sys.executable, "-m", "mpactors", "ping", f"stay@{a}"]
    assert hosts.call(2, ping, _env(tmp_path, 2)).stdout == "pang\n"
    hosts.port_mapper(1, _env(tmp_path, 1), tmp_path / "epmd-1b.log")
    names = [sys.executable, "-c", "import mpactors.epmd as e; print([n for n, _ in e.names()])"]
    wait_until(lambda: "stay" in hosts.call(1, names, _env(tmp_path, 1)).stdout, 5 + SHORT_TIMEOUT,
               what="the node registered again")
    assert hosts.call(2, ping, _env(tmp_path, 2)).stdout == "pong\n"
    assert "registered stay with the port mapper at 127.0.0.1:4369 again" in out.read_text()


def test_sigterm_stops_a_node_gracefully(hosts: Hosts, tmp_path: Path) -> None:
    from test_deploy import GRACEFUL

    _port_mappers(hosts, tmp_path)
    script = tmp_path / "graceful.py"
    script.write_text(GRACEFUL)
    log = tmp_path / "terminate.log"
    out = tmp_path / "graceful.out"
    proc = hosts.run(1, [sys.executable, str(script), f"g@{hosts.addr[1]}", str(log)], _env(tmp_path, 1), out)
    wait_until(lambda: "ready" in out.read_text(), LONG_TIMEOUT, what="the node")
    actors = psutil.Process(proc.pid).children(recursive=True)
    assert len(actors) >= 4
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(LONG_TIMEOUT) == 0, out.read_text()
    assert log.read_text().splitlines() == ["terminate c shutdown", "terminate b shutdown", "terminate a shutdown"]
    psutil.wait_procs(actors, timeout=SHORT_TIMEOUT)
    assert not [p for p in actors if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_every_pang_says_why_across_hosts(hosts: Hosts, tmp_path: Path) -> None:
    _port_mappers(hosts, tmp_path)
    a = hosts.addr[1]
    _node(hosts, tmp_path, 1, f"p@{a}", _env(tmp_path, 1))

    def ping(node: str, **env: str) -> str:
        done = hosts.call(2, [sys.executable, "-m", "mpactors", "ping", node], _env(tmp_path, 2, **env))
        assert done.stdout == "pang\n", (node, done.stdout, done.stderr)
        return done.stderr

    assert re.search(rf"unknown name: no node 'nobody' is registered with the port mapper at {a}", ping(f"nobody@{a}"))
    assert "cannot resolve host 'nowhere.invalid'" in ping("x@nowhere.invalid")
    assert "refused cookie" in ping(f"p@{a}", MPACTORS_COOKIE="not-the-cookie")
    hosts.cut(1)
    try:
        assert "timeout" in ping(f"p@{a}")
    finally:
        hosts.mend(1)
    # And the other commands say the same.
    rpc = hosts.call(2, [sys.executable, "-m", "mpactors", "rpc", f"nobody@{a}", "os:getpid"], _env(tmp_path, 2))
    assert rpc.returncode == 1 and "unknown name" in rpc.stderr, rpc.stderr
