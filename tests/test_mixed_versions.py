"""A cluster of a Python 3.9 node and a Python 3.13 node (and this process).

Each node runs in a virtual environment of its Python with mpactors installed
from this tree (made once per test session). Between them: ping, send, remote
spawn of an importable function, rpc, links and monitors; code sent by value
across Python minor versions is refused at the caller. (A node of the next
protocol version is simulated in test_compat.py.)
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
from nodes import (  # noqa: F401 - cluster and cookie are fixtures
    cluster,
    cookie,
    local_node,
    run_node,
)
from support import copy_source_tree

import mpactors

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(600)]

VERSIONS = ("3.9", "3.13")
WAIT = 60.0


def _interpreter(version: str) -> Optional[str]:
    """A real ``python<version>``: pyenv's, else one on PATH (not a pyenv shim, which may refuse)."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")))
    if candidates:
        return candidates[-1]
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if "shims" not in Path(d).parts)
    return shutil.which(f"python{version}", path=path)


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """``{version: python}``: a venv per Python of VERSIONS with mpactors installed from this tree."""
    pythons = {v: _interpreter(v) for v in VERSIONS}
    missing = [v for v, p in pythons.items() if p is None]
    if missing:
        pytest.skip(f"needs Python {' and '.join(missing)} (python{missing[0]} on PATH, or pyenv)")
    base = tmp_path_factory.mktemp("mixed-venvs")
    src = copy_source_tree(base / "src")
    out = {}
    for version, python in pythons.items():
        venv = base / f"py{version}"
        for argv in ([python, "-m", "venv", str(venv)],
                     [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", src]):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}"
        out[version] = str(venv / "bin" / "python")
    return out


def _remote_version(name: str) -> list:
    return mpactors.rpc.call(name, "mixed_actors:version", timeout=WAIT)  # type: ignore[no-any-return]


def test_a_python_39_node_and_a_python_313_node_work_together(cluster: int, venvs: Dict[str, str]) -> None:
    import mixed_actors

    with local_node(), run_node(python=venvs["3.9"]) as old, run_node(python=venvs["3.13"]) as new:
        assert mpactors.ping(old.name) == "pong" and mpactors.ping(new.name) == "pong"
        assert _remote_version(old.name) == [3, 9]
        assert _remote_version(new.name) == [3, 13]
        # Each checks the other, from an actor spawned there by reference.
        for here, here_version, peer, peer_version in ((old, [3, 9], new, [3, 13]), (new, [3, 13], old, [3, 9])):
            checker = mpactors.spawn(mixed_actors.check_peer, mpactors.self(), peer.name, node=here.name)
            assert checker.node == here.name
            _, who, seen = mpactors.receive(lambda m, p=peer.name: m[:2] == ("checked", p), timeout=WAIT)
            assert who == peer.name
            assert seen["here"] == here_version
            assert seen["ping"] == "pong"
            assert seen["spawned_on"] == peer.name
            assert seen["echo"] == ["echo", "hello", peer_version]
            assert seen["rpc"] == peer_version and seen["rpc_fn"] == peer_version
            assert seen["down"] == [True, "boom"]
            assert seen["exit_signal"] == "boom"
            assert f"cannot send code by value to {peer.name}" in seen["by_value"], seen["by_value"]
            assert "bytecode differs between Python minor versions" in seen["by_value"]
        # And from this process (any Python) to both: by reference works, by value is
        # refused unless the minor version is the same.
        for node, version in ((old, (3, 9)), (new, (3, 13))):
            if sys.version_info[:2] == version:
                assert mpactors.rpc.call(node.name, lambda: 42, timeout=WAIT) == 42
            else:
                with pytest.raises(mpactors.BadArg, match=f"cannot send code by value to {node.name}"):
                    mpactors.rpc.call(node.name, lambda: 42, timeout=WAIT)
            assert mpactors.rpc.call(node.name, mixed_actors.version, timeout=WAIT) == list(version)

