"""Several "hosts" on one machine: network namespaces joined by a bridge (tests only, root only).

``Hosts(n, prefix)`` makes namespaces ``<prefix>-<i>-<pid>`` (host ``i`` has the
address ``10.<net>.0.<i>``, which exists only inside its namespace) and a
switch namespace holding a bridge; each host is wired to the bridge by a veth
pair, so no address or link is added to the machine's own namespace. Each
host may get its own ``/etc/hosts`` (``ip netns exec`` bind-mounts
``/etc/netns/<name>/hosts`` over it). :meth:`Hosts.cut` / :meth:`Hosts.mend`
take a host's cable out and put it back. :meth:`Hosts.teardown` kills every
process started with :meth:`Hosts.run` and deletes the namespaces and hosts
files; use :func:`hosts_fixture` so that it always runs.

If the machine forbids namespaces (not root, no ``ip``), the test is skipped
saying why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
from support import LONG_TIMEOUT, wait_until

__all__ = ["Hosts", "hosts_fixture", "ip"]

ROOT = Path(__file__).resolve().parent.parent


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


class Hosts:
    """``n`` namespaces on a bridge; ``addr[i]`` is host ``i``'s address (1-based)."""

    def __init__(self, n: int, prefix: str, net: int) -> None:
        tag = os.getpid()
        self.prefix, self.net, self.n = prefix, net, n
        self.switch = f"{prefix}-sw-{tag}"
        self.ns: Dict[int, str] = {i: f"{prefix}-{i}-{tag}" for i in range(1, n + 1)}
        self.addr: Dict[int, str] = {i: f"10.{net}.0.{i}" for i in range(1, n + 1)}
        self.procs: List[subprocess.Popen] = []
        self._made: List[str] = []
        self._etc: List[Path] = []
        short = tag % 100000
        self._veth = {i: (f"{prefix[:3]}{i}h{short}", f"{prefix[:3]}{i}s{short}") for i in self.ns}

    def setup(self) -> None:
        if shutil.which("ip") is None:
            pytest.skip("the ip command (iproute2) is needed for network namespaces")
        made = ip("netns", "add", self.switch)
        if made.returncode != 0:
            pytest.skip(f"cannot make a network namespace (ip netns add: {made.stderr.strip()})")
        self._made.append(self.switch)
        self._must("-n", self.switch, "link", "add", "br0", "type", "bridge")
        self._must("-n", self.switch, "link", "set", "br0", "up")
        for i, ns in self.ns.items():
            self._must("netns", "add", ns)
            self._made.append(ns)
            host_end, switch_end = self._veth[i]
            self._must("link", "add", host_end, "type", "veth", "peer", "name", switch_end)
            self._must("link", "set", host_end, "netns", ns)
            self._must("link", "set", switch_end, "netns", self.switch)
            self._must("-n", self.switch, "link", "set", switch_end, "master", "br0")
            self._must("-n", self.switch, "link", "set", switch_end, "up")
            self._must("-n", ns, "addr", "add", f"{self.addr[i]}/24", "dev", host_end)
            self._must("-n", ns, "link", "set", host_end, "up")
            self._must("-n", ns, "link", "set", "lo", "up")

    def _must(self, *args: str) -> None:
        done = ip(*args)
        assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr}"

    def hosts_file(self, i: int, text: str) -> None:
        """Host ``i``'s ``/etc/hosts`` (as ``ip netns exec`` shows it)."""
        etc = Path("/etc/netns") / self.ns[i]
        etc.mkdir(parents=True, exist_ok=True)
        self._etc.append(etc)
        (etc / "hosts").write_text("127.0.0.1 localhost\n" + text)

    def argv(self, i: int, argv: List[str]) -> List[str]:
        return ["ip", "netns", "exec", self.ns[i], *argv]

    def run(self, i: int, argv: List[str], env: Dict[str, str], out: Path) -> subprocess.Popen:
        """Start ``argv`` on host ``i`` (output to ``out``); killed at teardown."""
        with open(out, "ab") as f:
            proc = subprocess.Popen(self.argv(i, argv), env=env, stdin=subprocess.DEVNULL, stdout=f,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def call(self, i: int, argv: List[str], env: Dict[str, str], timeout: float = 60,
             input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` on host ``i`` to its end."""
        return subprocess.run(self.argv(i, argv), env=env, capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=subprocess.DEVNULL if input is None else None)

    def port_mapper(self, i: int, env: Dict[str, str], out: Path) -> subprocess.Popen:
        """Start a port mapper on host ``i`` on port 4369, as a machine runs one; wait until it answers."""
        proc = self.run(i, [sys.executable, "-m", "mpactors.epmd", "--port", "4369"], env, out)
        probe = [sys.executable, "-c",
                 "import mpactors.epmd as e, sys; sys.exit(0 if e.is_running(port=4369, timeout=0.5) else 1)"]
        wait_until(lambda: self.call(i, probe, env).returncode == 0, LONG_TIMEOUT, what=f"the port mapper of host {i}")
        return proc

    def cut(self, i: int) -> None:
        """Unplug host ``i``'s cable (at the switch): nothing gets through, nobody is told."""
        self._must("-n", self.switch, "link", "set", self._veth[i][1], "down")

    def mend(self, i: int) -> None:
        self._must("-n", self.switch, "link", "set", self._veth[i][1], "up")

    def teardown(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait(10)
        for ns in reversed(self._made):
            ip("netns", "del", ns)  # takes its ends of the veth pairs with it
        for etc in self._etc:
            shutil.rmtree(etc, ignore_errors=True)


def hosts_fixture(n: int, prefix: str, net: int) -> Iterator[Hosts]:
    """Body of a fixture: yields set-up :class:`Hosts`, always torn down."""
    h = Hosts(n, prefix, net)
    try:
        h.setup()
        yield h
    finally:
        h.teardown()


def base_env(**extra: str) -> Dict[str, str]:
    """This machine's environment without MPACTORS_*, with this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPACTORS_")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env
