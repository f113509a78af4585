"""The public surface matches SPEC's names, and nothing private leaks."""
from __future__ import annotations

import mpactors

SPEC_NAMES = {
    "Node", "spawn", "spawn_link", "spawn_monitor", "send", "receive", "self", "node", "nodes",
    "ping", "disconnect_node", "register", "unregister", "whereis", "registered", "link", "unlink",
    "trap_exit", "exit", "monitor", "demonitor", "monitor_node", "monitor_nodes", "process_info",
    "processes", "get_cookie", "set_cookie", "rpc", "GenServer", "Supervisor", "ANY", "BadArg",
    "Timeout", "RemoteError", "ExitSignal", "Down", "NodeUp", "NodeDown", "Pid",
    # Part 2: semantics fixes and timers
    "NoProc", "AlreadyStarted", "send_after", "send_interval", "cancel_timer", "read_timer", "TimerRef",
}


def test_every_name_spec_lists_is_exported() -> None:
    assert SPEC_NAMES <= set(mpactors.__all__)


def test_every_exported_name_exists_and_is_public() -> None:
    for name in mpactors.__all__:
        assert hasattr(mpactors, name), name
        assert not name.startswith("_") or name == "__version__"


def test_rpc_exposes_call_and_cast() -> None:
    assert callable(mpactors.rpc.call) and callable(mpactors.rpc.cast)
    assert set(mpactors.rpc.__all__) == {"call", "cast"}


def test_genserver_offers_call_and_cast() -> None:
    assert mpactors.GenServer.call is mpactors.genserver.call
    assert mpactors.GenServer.cast is mpactors.genserver.cast


def test_every_module_declares_all() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(mpactors.__path__, "mpactors."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        assert isinstance(getattr(module, "__all__", None), list), f"{info.name} has no __all__"


def test_genserver_offers_the_part_2_names() -> None:
    from mpactors import genserver

    for name in ("stop", "send_request", "wait_response", "multi_call", "abcast", "Continue", "IdleTimeout"):
        assert name in genserver.__all__ and hasattr(genserver, name), name
    for name in ("send_request", "wait_response", "multi_call", "abcast", "Continue", "IdleTimeout"):
        assert getattr(mpactors.GenServer, name) is getattr(genserver, name), name
