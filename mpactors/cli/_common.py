"""Helpers shared by the ``mpactors`` commands (see :mod:`mpactors.cli`).

The CLI talks to nodes as Erlang's tools do: it starts a temporary *hidden*
node in its own process (``mpactors-cli-<OS pid>``), which connects only to the
nodes a command names and is announced to no one, and stops it on the way out.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import logging
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TypeVar, Union

import click

from .. import config, epmd, primitives, rpc
from .._names import is_local_host, short_host, target_node
from ..dist._registration import host_of_extra
from ..errors import BadArg, EpmdError, NodeError
from ..node import Node
from ..pid import Pid, parse_pid

__all__ = [
    "CLI_NODE_PREFIX",
    "CLI_TIMEOUT",
    "check_reachable",
    "complete_name",
    "connect_failures",
    "cookie_option",
    "deploy_options",
    "uses_port_mapper",
    "format_table",
    "full_node_name",
    "hidden_node",
    "human_bytes",
    "info_row",
    "is_local",
    "jsonable",
    "known_full_names",
    "local_names",
    "log_file",
    "node_argument",
    "node_callback",
    "parse_args",
    "parse_literal",
    "registered_locally",
    "resolve_function",
    "resolve_pid",
    "short_host",
    "shown_value",
    "spawn_named",
    "tls_options",
    "unknown_name",
    "unused_cookie_option",
]

_F = TypeVar("_F", bound=Callable[..., Any])

#: Hidden CLI nodes are called ``mpactors-cli-<OS pid>``; ``ps`` skips them.
CLI_NODE_PREFIX = "mpactors-cli-"

#: Seconds a CLI command waits for a remote answer (rpc, process_info).
CLI_TIMEOUT = 10.0


def full_node_name(node: str) -> str:
    """``'a'`` -> the full name node ``a`` of this host registered (``'a@10.0.0.2'``); ``'a@host'`` is kept.

    A bare name is completed only from what this host's port mapper knows
    (each node registers its host part, see :func:`complete_name`); a name
    it does not know gets ``@<short hostname>``, and :func:`check_reachable`
    then lists the full names it knows.
    """
    full = target_node(node)  # checked: BadArg for an empty part
    return full if "@" in node else complete_name(full.partition("@")[0])


def complete_name(alive: str) -> str:
    """``alive@HOST`` with the host part node ``alive`` registered with this host's port mapper.

    Without a port mapper (``MPACTORS_DIST_PORT``), or when it does not know
    ``alive``, the host part is this host's short name.
    """
    if uses_port_mapper():
        try:
            info = epmd.lookup(alive, timeout=config.EPMD_TIMEOUT)
        except (EpmdError, BadArg):
            info = None
        host = host_of_extra(info.extra) if info is not None else None
        if host:
            return f"{alive}@{host}"
    return f"{alive}@{short_host()}"


def known_full_names() -> List[str]:
    """The full names of the nodes registered on this host (CLI nodes left out); [] if no port mapper runs."""
    try:
        return [complete_name(name) for name in local_names()]
    except EpmdError:
        return []


def is_local(node: str) -> bool:
    """True when ``node``'s host part names this host."""
    return is_local_host(node.partition("@")[2])


def local_names() -> List[str]:
    """Names registered with this host's port mapper (CLI nodes left out).

    Raises:
        EpmdError: no port mapper answers on this host.
    """
    return sorted(name for name, _ in epmd.names(timeout=config.EPMD_TIMEOUT) if not name.startswith(CLI_NODE_PREFIX))


def uses_port_mapper() -> bool:
    """False when ``MPACTORS_DIST_PORT`` is set: nodes are at ``host:dist_port``, no port mapper is asked."""
    return config.env_deploy()["dist_port"] is None


def registered_locally(node: str) -> bool:
    """Whether ``node`` (on this host) is registered with the port mapper; False if none runs."""
    try:
        return node.partition("@")[0] in local_names()
    except EpmdError:
        return False


@contextlib.contextmanager
def hidden_node(cookie: Optional[str]) -> Iterator[Node]:
    """Run a temporary hidden node in this process for the duration of a command."""
    # No seeds: a command connects only to the nodes it names (MPACTORS_SEEDS is for the nodes).
    node = Node(f"{CLI_NODE_PREFIX}{os.getpid()}", hidden=True, cookie=cookie, seeds=[])
    node.start()
    try:
        yield node
    finally:
        node.stop()


def check_reachable(node: str) -> None:
    """Fail fast, without starting anything, when a node of this host is not running.

    Raises:
        NodeError: ``node`` is on this host and not registered with its port mapper.
    """
    if uses_port_mapper() and is_local(node) and not registered_locally(node):
        raise NodeError(unknown_name(node))


def unknown_name(node: str) -> str:
    """Why a node of this host cannot be reached: it is not registered; which full names are."""
    port = config.epmd_port()
    known = known_full_names()
    return (f"unknown name: node {node} is not running (not registered with the port mapper on port {port}); "
            f"running here: {', '.join(known) if known else 'none'}")


def resolve_pid(text: str) -> Pid:
    """The live pid written ``<node.id.serial>``, with the creation of its node's incarnation.

    A pid's text form leaves out the node's *creation*, which the node needs to
    accept the pid as one of its own, so ask the node (one ``rpc.call``).
    """
    pid = parse_pid(text)
    check_reachable(pid.node)
    creation = rpc.call(pid.node, "mpactors.primitives:self", timeout=CLI_TIMEOUT).creation
    return Pid(pid.node, pid.id, pid.serial, creation)


def parse_literal(text: str) -> Any:
    """``text`` as a Python literal.

    Raises:
        BadArg: ``text`` is not a literal (``ast.literal_eval`` refuses it).
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise BadArg(f"not a Python literal: {text!r} (quote strings: \"'hello'\")") from None


def parse_args(texts: Sequence[str]) -> List[Any]:
    """Command-line arguments: Python literals when they parse, else strings."""
    out: List[Any] = []
    for text in texts:
        try:
            out.append(ast.literal_eval(text))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out.append(text)
    return out


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A plain-text table; columns listed in ``right`` are right-aligned."""
    cells = [list(headers)] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def human_bytes(n: Optional[int]) -> Optional[str]:
    """``12345678`` -> ``'11.8M'`` (None stays None)."""
    if n is None:
        return None
    value = float(n)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return None  # pragma: no cover


def spawn_named(target: str, args: Sequence[Any], name: Optional[str] = None) -> Union[Pid, str]:
    """Run on the target node by ``mpactors spawn``: start ``module:function(*args)`` there.

    Resolving the function on the node (not in the CLI) means it only has to
    be importable where it runs, and the actor's title names it. With
    ``name``, the actor is registered under it before this returns (Erlang's
    ``register(Name, spawn(...))``), so a ``send`` to the name right after the
    command finds it; a name that is taken is refused before anything starts,
    and if it was taken in between, the new actor is killed, not left unnamed.

    Returns the new pid, or why nothing was started (a one-line message:
    ``target`` names nothing callable, or ``name`` is taken).
    """
    try:
        function = resolve_function(target)
        if name is not None and primitives.whereis(name) is not None:
            raise BadArg(f"the name {name!r} is already registered on {primitives.node()}")
    except BadArg as exc:
        return str(exc)
    pid = primitives.spawn(function, *args)
    if name is not None:
        try:
            primitives.register(name, pid)
        except BadArg as exc:
            primitives.exit(pid, "kill")
            return str(exc)
    return pid


def resolve_function(target: str) -> Callable[..., Any]:
    """The callable named ``'module:function'`` (``'module:Class.method'`` works too).

    Raises:
        BadArg: ``target`` is not of that form, or names nothing callable.
    """
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise BadArg(f"expected 'module:function', not {target!r}")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise BadArg(f"cannot find {target!r}: {exc}") from None
    if not callable(obj):
        raise BadArg(f"{target!r} is not callable")
    return obj  # type: ignore[no-any-return]


def log_file(node: str) -> Any:
    """``$MPACTORS_HOME/logs/<name>.log`` of a node started with ``mpactors start``."""
    return config.log_dir() / f"{node.partition('@')[0]}.log"


def jsonable(value: Any) -> Any:
    """Pids, refs and other values made printable as JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def info_row(info: Dict[str, Any]) -> List[Any]:
    """One ``ps`` table row from a ``process_info`` dict."""
    cpu = info.get("cpu_percent")
    return [
        info.get("pid"),
        info.get("os_pid"),
        info.get("registered_name"),
        info.get("current"),
        info.get("status"),
        info.get("message_queue_len"),
        human_bytes(info.get("memory")),
        None if cpu is None else f"{cpu:.1f}",
    ]


def shown_value(key: str, value: Any) -> str:
    """A ``process_info`` value for people: sizes in K/M, times as dates, lists joined."""
    if key == "memory" and isinstance(value, int):
        return f"{human_bytes(value)} ({value} bytes)"
    if key == "started" and isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return "-" if value is None or value == "" else str(value)


# -- click parameters shared by the commands -------------------------------------
def cookie_option(fn: _F) -> _F:
    """``--cookie`` (default ``$MPACTORS_COOKIE``, then ``~/.mpactors.cookie``), and the TLS options."""
    return tls_options(click.option(
        "--cookie",
        envvar="MPACTORS_COOKIE",
        default=None,
        metavar="COOKIE",
        help="The cluster cookie [default: $MPACTORS_COOKIE, else ~/.mpactors.cookie].",
    )(fn))


def unused_cookie_option(fn: _F) -> _F:
    """``--cookie`` and the TLS options accepted (every command takes them) by commands that need none."""
    fn = click.option("--cookie", envvar="MPACTORS_COOKIE", default=None, hidden=True, expose_value=False)(fn)
    return tls_options(fn, hidden=True)


_TLS_OPTIONS = (
    ("cert", "FILE", "This node's TLS certificate (PEM): connections between nodes use mutual TLS"),
    ("key", "FILE", "Its private key (PEM, readable by its owner only)"),
    ("ca", "FILE", "The CA certificate a peer's certificate must be signed by"),
    ("server-name", "NAME", "Check peers' certificates against NAME instead of their host names"),
)


def tls_options(fn: _F, hidden: bool = False) -> _F:
    """``--tls-cert``, ``--tls-key``, ``--tls-ca``, ``--tls-server-name`` (default ``$MPACTORS_TLS_*``).

    They are not passed to the command: they set the ``MPACTORS_TLS_*``
    variables, which every node this command starts reads (its hidden node,
    and a ``start --detached`` node). Certificate paths are not secrets.
    """
    for what, metavar, text in reversed(_TLS_OPTIONS):
        var = f"MPACTORS_TLS_{what.replace('-', '_').upper()}"
        fn = click.option(
            f"--tls-{what}", envvar=var, default=None, metavar=metavar, hidden=hidden, expose_value=False,
            callback=_set_env(var, path=metavar == "FILE"), help=f"{text} [default: ${var}].",
        )(fn)
    return fn


_DEPLOY_OPTIONS = (
    ("port-range", "LO-HI", "Listen on the first free port of this range (for a firewall)"),
    ("interface", "ADDR", "Listen on this address only [default: all]"),
    ("dist-port", "PORT", "No port mapper: listen on PORT and reach every node at host:PORT"),
)


def deploy_options(fn: _F) -> _F:
    """``--port-range``, ``--interface``, ``--dist-port``, ``--seed`` of ``mpactors start``.

    Like the TLS options they set the environment (``MPACTORS_PORT_RANGE``,
    ``MPACTORS_INTERFACE``, ``MPACTORS_DIST_PORT``, ``MPACTORS_SEEDS``), which
    the node reads - a detached node and the launcher's hidden node too.
    """
    fn = click.option(
        "--seed", "seeds", multiple=True, metavar="NODE", expose_value=False, callback=_set_seeds,
        help="Keep connected to NODE, reconnecting with backoff (repeatable; NAME@dns:HOST for every "
             "address of HOST) [default: $MPACTORS_SEEDS].",
    )(fn)
    for what, metavar, text in reversed(_DEPLOY_OPTIONS):
        var = f"MPACTORS_{what.replace('-', '_').upper()}"
        fn = click.option(
            f"--{what}", envvar=var, default=None, metavar=metavar, expose_value=False,
            callback=_set_env(var, path=False), help=f"{text} [default: ${var}].",
        )(fn)
    return fn


def _set_seeds(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> None:
    if value:
        os.environ["MPACTORS_SEEDS"] = ",".join(value)


def _set_env(var: str, path: bool) -> Callable[[click.Context, click.Parameter, Optional[str]], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> None:
        if value:
            os.environ[var] = os.path.abspath(value) if path else value
    return callback


@contextlib.contextmanager
def connect_failures(node: str) -> Iterator[List[str]]:
    """Collect why connections to ``node`` failed (what the distribution logs at INFO) while inside."""
    reasons: List[str] = []
    prefix = f"cannot connect to {node}: "

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith(prefix):
                reasons.append(message[len(prefix):])

    logger = logging.getLogger("mpactors.dist")
    handler, level = _Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # the CLI's stderr handler still shows WARNING and above only
    try:
        yield reasons
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def node_callback(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    return None if value is None else full_node_name(value)


def node_argument(fn: _F) -> _F:
    """``NODE``: ``name`` or ``name@host``."""
    return click.argument("node", callback=node_callback)(fn)
