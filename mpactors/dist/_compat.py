"""What two nodes must agree on beyond the wire protocol: pickle protocol and Python version.

Each side's handshake hello carries :data:`LOCAL`; the accepting node checks
the dialer's with :func:`refusal` and refuses an incompatible peer with a clear
reason before any message is exchanged. Nodes on different Python minor
versions can talk (messages, importable callables), but code sent by value -
a lambda, a closure, a function of ``__main__`` pickled by dill - carries
bytecode that only its own minor version runs: :func:`by_value_refusal`
stops it at the caller.
"""
from __future__ import annotations

import pickle
import sys
from typing import Any, Dict, Optional

__all__ = ["LOCAL", "by_value_refusal", "describe", "refusal"]

#: This node's side of the agreement (sent in the handshake).
LOCAL: Dict[str, Any] = {
    "python": list(sys.version_info[:3]),
    "pickle": pickle.HIGHEST_PROTOCOL,  # the protocol mpactors._codec writes, and the highest it reads
}

# dill rebuilds every code object it pickled by value with this function, so
# its name in a pickle means bytecode is in it.
_CODE_MARK = b"_create_code"


def describe(info: Dict[str, Any]) -> str:
    """``'Python 3.9.18'`` for a peer's info."""
    return "Python " + ".".join(str(part) for part in info.get("python", ["?"]))


def refusal(info: Any) -> Optional[str]:
    """Why a peer with handshake ``info`` cannot join this node (None if it can)."""
    if not (isinstance(info, dict) and isinstance(info.get("python"), list) and isinstance(info.get("pickle"), int)):
        return f"bad compatibility info {info!r:.80}"
    if info["pickle"] != LOCAL["pickle"]:
        return (
            f"pickle protocol mismatch: {describe(info)} writes protocol {info['pickle']}, "
            f"this node ({describe(LOCAL)}) protocol {LOCAL['pickle']}"
        )
    return None


def by_value_refusal(info: Optional[Dict[str, Any]], node: str, payload: bytes) -> Optional[str]:
    """Why ``payload`` (a spawn, an rpc) must not go to ``node`` (None if it may)."""
    if info is None or info.get("python", [])[:2] == LOCAL["python"][:2] or _CODE_MARK not in payload:
        return None
    return (
        f"cannot send code by value to {node}: it runs {describe(info)} and this node "
        f"{describe(LOCAL)}, and bytecode differs between Python minor versions; "
        "make the function importable on that node (a module on its sys.path) to call it by reference"
    )
