"""The ``mpactors`` command (click): a thin shell over the public API.

Each command parses its arguments, calls the API (through a temporary hidden
node, ``mpactors-cli-<OS pid>``, when it talks to a node) and prints. Results
go to stdout; a failure is one ``Error: ...`` line on stderr and exit status 1
(usage errors: 2; ``ping`` answering ``pang``: 1); a node that cannot be
reached is named with the reason (unknown name, unresolvable host, refused
cookie, TLS, timeout). A node name without ``@`` gets the host part its node
registered with this host's port mapper (a long name too), else
``@<short hostname>``; an unknown one is answered with the full names this
host runs. Every command takes ``--cookie`` (default
``$MPACTORS_COOKIE``, then ``~/.mpactors.cookie``) and the TLS options
``--tls-cert``, ``--tls-key``, ``--tls-ca``, ``--tls-server-name`` (default
``$MPACTORS_TLS_*``), and honours ``MPACTORS_EPMD_PORT``, ``MPACTORS_DIST_PORT``
and ``MPACTORS_HOME``.

Machinery lives beside this module: :mod:`mpactors.cli._common` (hidden node,
names, tables, shared options), :mod:`mpactors.cli._node` (start/stop),
:mod:`mpactors.cli._shell` (the remote prompt), :mod:`mpactors.cli._epmd` (the
``epmd`` commands), :mod:`mpactors.cli._observe` (``top``, ``stack``, ``state``,
``observer``) and :mod:`mpactors.demo` (actors for ``scripts/demo``).
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from typing import Any, List, Optional

import click

from .. import __version__, introspect, primitives, rpc
from ._common import (
    CLI_TIMEOUT,
    check_reachable,
    complete_name,
    connect_failures,
    cookie_option,
    deploy_options,
    format_table,
    hidden_node,
    info_row,
    is_local,
    jsonable,
    local_names,
    log_file,
    node_argument,
    node_callback,
    parse_args,
    parse_literal,
    registered_locally,
    resolve_pid,
    shown_value,
    unknown_name,
    unused_cookie_option,
    uses_port_mapper,
)
from ._epmd import epmd_group
from ._observe import COMMANDS as OBSERVE_COMMANDS
from ..errors import BadArg, EpmdError, MpactorsError, RemoteError
from ..messages import Down, Trace
from ..pid import Pid

__all__ = ["cli", "main"]

#: ``ps`` column titles; the numeric ones are right-aligned.
_PS_HEADERS = ["PID", "OS PID", "NAME", "CALLABLE", "STATUS", "MSGQ", "MEMORY", "CPU%"]
_PS_RIGHT = (1, 5, 6, 7)


class _Group(click.Group):
    """A group whose commands' mpactors errors become one ``Error:`` line (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (MpactorsError, ValueError) as exc:
            raise click.ClickException(_message(exc)) from None
        except OSError as exc:
            raise click.ClickException(_one_line(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))) from None


def _message(exc: Exception) -> str:
    """The one-line message of an API error (a remote traceback is left out)."""
    return _one_line(exc.args[0] if isinstance(exc, RemoteError) and exc.args else str(exc))


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines) or "failed"


@click.group(
    cls=_Group,
    context_settings={"auto_envvar_prefix": "MPACTORS", "help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="mpactors")
def cli() -> None:
    """mpactors: Erlang's distribution model in Python.

    Nodes are OS processes, actors are their child processes; nodes sharing a
    cookie form a cluster. NODE is 'name' (this host) or 'name@host'.

    Example: mpactors start a --detached && mpactors ps
    """


# -- nodes ---------------------------------------------------------------------
@cli.command()
@click.argument("name")
@cookie_option
@click.option("--longnames", is_flag=True, help="NAME is name@fully.qualified.host or name@ip.")
@click.option("--detached", is_flag=True, help="Run in the background; log to $MPACTORS_HOME/logs/NAME.log.")
@click.option("--hidden", is_flag=True, help="A hidden node: connects only where asked, in no one's nodes().")
@click.option("--ticktime", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds of silence after which a peer is declared down.")
@deploy_options
@click.option("--cookie-fd", type=int, default=None, hidden=True,
              help="Read the cookie from this inherited descriptor (what --detached passes its node).")
def start(name: str, cookie: Optional[str], longnames: bool, detached: bool, hidden: bool, ticktime: float,
          cookie_fd: Optional[int]) -> None:
    """Start node NAME; it runs until SIGTERM, SIGINT or `mpactors stop`.

    In the foreground, logs go to stderr. With --detached the command returns
    once the node answers a ping and prints its name and OS pid. SIGTERM and
    SIGINT stop it gracefully (supervisors stop their children, terminate
    callbacks run; after $MPACTORS_SHUTDOWN_TIMEOUT s the rest is killed).

    Example: mpactors start a --detached
    """
    from ._node import read_cookie_fd, run_foreground, start_detached

    if cookie_fd is not None:
        cookie = read_cookie_fd(cookie_fd)
    if detached:
        full, os_pid = start_detached(name, cookie=cookie, longnames=longnames, hidden=hidden, ticktime=ticktime)
        click.echo(f"{full} {os_pid}")
    else:
        run_foreground(name, cookie=cookie, longnames=longnames, hidden=hidden, ticktime=ticktime)


@cli.command()
@node_argument
@cookie_option
@click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds to wait for it to end.")
def stop(node: str, cookie: Optional[str], timeout: float) -> None:
    """Stop NODE and all its actors; exits 0 once they are gone.

    Example: mpactors stop a
    """
    from ._node import stop_node

    stop_node(node, cookie=cookie, timeout=timeout)
    click.echo(f"{node} stopped")


@cli.command()
@node_argument
@cookie_option
def ping(node: str, cookie: Optional[str]) -> None:
    """Print pong (exit 0) if NODE answers, else pang (exit 1).

    Example: mpactors ping a@myhost
    """
    answer, why = "pang", []
    if not is_local(node) or not uses_port_mapper() or registered_locally(node):
        with hidden_node(cookie), connect_failures(node) as why:
            answer = primitives.ping(node)
    else:
        why = [unknown_name(node)]
    click.echo(answer)
    if answer != "pong":
        click.echo(f"cannot connect to {node}: {why[-1] if why else 'no answer'}", err=True)
        sys.exit(1)


@cli.command()
@node_argument
@cookie_option
def nodes(node: str, cookie: Optional[str]) -> None:
    """List the (visible) nodes NODE is connected to, one per line.

    Example: mpactors nodes a
    """
    check_reachable(node)
    with hidden_node(cookie):
        for name in rpc.call(node, "mpactors.primitives:nodes", timeout=CLI_TIMEOUT):
            click.echo(name)


# -- actors --------------------------------------------------------------------
@cli.command()
@click.argument("node", required=False, callback=node_callback)
@cookie_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of process_info dicts).")
def ps(node: Optional[str], cookie: Optional[str], as_json: bool) -> None:
    """List the actors of NODE, or of every node registered on this host.

    Columns: pid, OS pid, registered name, callable, status, mailbox length,
    memory (RSS), CPU %.

    Example: mpactors ps --json
    """
    if node is not None:
        check_reachable(node)
    targets = [node] if node else _local_nodes()
    rows: List[dict] = []
    failed: List[str] = []
    if targets:
        with hidden_node(cookie):
            for target in targets:
                try:
                    rows.extend(introspect.node_rows(target, timeout=CLI_TIMEOUT))
                except MpactorsError as exc:
                    failed.append(f"{target}: {_message(exc)}")
    rows.sort(key=lambda r: (r["pid"].node, r["pid"].id))
    if as_json:
        click.echo(json.dumps(jsonable(rows), indent=2))
    else:
        click.echo(format_table(_PS_HEADERS, [info_row(r) for r in rows], right=_PS_RIGHT))
    if failed:
        raise click.ClickException("cannot list " + "; ".join(failed))


def _local_nodes() -> List[str]:
    try:
        return [complete_name(name) for name in local_names()]
    except EpmdError as exc:
        raise click.ClickException(f"no node is running on this host ({exc})") from None


@cli.command()
@click.argument("pid")
@cookie_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(pid: str, cookie: Optional[str], as_json: bool) -> None:
    """Show process_info of actor PID (written <name@host.5.0>), local or remote.

    Example: mpactors info '<a@myhost.5.0>'
    """
    with hidden_node(cookie):
        target = resolve_pid(pid)
        data = primitives.process_info(target)
    if data is None:
        raise click.ClickException(f"no process {pid} (it is not alive)")
    if as_json:
        click.echo(json.dumps(jsonable(data), indent=2))
        return
    for key in sorted(data):
        click.echo(f"{key + ':':<20} {shown_value(key, data[key])}")


@cli.command()
@click.argument("pid")
@cookie_option
@click.option("--count", "-n", type=click.IntRange(min=1), default=None, help="Stop after N messages.")
def trace(pid: str, cookie: Optional[str], count: Optional[int]) -> None:
    """Print the messages actor PID sends and receives, live, until Ctrl-C or --count.

    Example: mpactors trace '<a@myhost.5.0>' --count 10
    """
    with hidden_node(cookie):
        target = resolve_pid(pid)
        if primitives.process_info(target) is None:
            raise click.ClickException(f"no process {pid} (it is not alive)")
        ref = primitives.monitor(target)
        introspect.trace(target)
        click.echo(f"tracing {target} (Ctrl-C to stop)", err=True)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            _print_trace(target, ref, count)
        except KeyboardInterrupt:
            pass
        finally:
            with contextlib.suppress(MpactorsError):  # it may be gone
                introspect.trace(target, False)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM ends a command that runs until Ctrl-C the same way, cleanly."""
    raise KeyboardInterrupt


def _print_trace(target: Pid, ref: Any, count: Optional[int]) -> None:
    seen = 0
    while count is None or seen < count:
        msg = primitives.receive(lambda m: type(m) is Trace or (type(m) is Down and m.ref == ref))
        if type(msg) is Down:
            click.echo(f"{target} exited: {msg.reason!r}")
            return
        if msg.event == "send":
            click.echo(f"{msg.pid} sent {msg.message!r} to {msg.peer}")
        else:
            click.echo(f"{msg.pid} received {msg.message!r}")
        seen += 1


@cli.command()
@node_argument
@click.argument("dest")
@click.argument("message")
@cookie_option
def send(node: str, dest: str, message: str, cookie: Optional[str]) -> None:
    """Send MESSAGE (a Python literal) to DEST on NODE: a registered name or a pid.

    Example: mpactors send a counter "('add', 5)"
    """
    msg = parse_literal(message)
    check_reachable(node)
    with hidden_node(cookie):
        if dest.startswith("<"):
            target: Any = resolve_pid(dest)
            if target.node != node:
                raise BadArg(f"pid {dest} is not on node {node}")
        elif rpc.call(node, "mpactors.primitives:whereis", dest, timeout=CLI_TIMEOUT) is None:
            raise BadArg(f"no process is registered as {dest!r} on {node}")
        else:
            target = (dest, node)
        primitives.send(target, msg)
        # One round trip on the same (ordered) connection: the message has
        # reached NODE before this hidden node stops and drops its connections.
        rpc.call(node, "mpactors.primitives:node", timeout=CLI_TIMEOUT)


@cli.command("rpc")
@node_argument
@click.argument("function", metavar="MODULE:FUNCTION")
@click.argument("args", nargs=-1)
@cookie_option
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the result.")
@click.option("--traceback", "show_traceback", is_flag=True, help="On a remote exception, print its traceback.")
def rpc_(node: str, function: str, args: List[str], cookie: Optional[str], timeout: float,
         show_traceback: bool) -> None:
    """Call MODULE:FUNCTION(ARG...) on NODE and print the repr of its result.

    Each ARG is a Python literal when it parses as one, else a string.

    Example: mpactors rpc a os:getpid
    """
    _check_target(function)
    check_reachable(node)
    with hidden_node(cookie):
        try:
            result = rpc.call(node, function, *parse_args(args), timeout=timeout)
        except RemoteError as exc:
            if show_traceback and exc.remote_traceback:
                click.echo(exc.remote_traceback.rstrip(), err=True)
            raise
    click.echo(repr(result))


@cli.command()
@node_argument
@click.argument("function", metavar="MODULE:FUNCTION")
@click.argument("args", nargs=-1)
@click.option("--name", "-n", metavar="NAME", help="Register the actor under NAME before returning.")
@cookie_option
def spawn(node: str, function: str, args: List[str], name: Optional[str], cookie: Optional[str]) -> None:
    """Start an actor running MODULE:FUNCTION(ARG...) on NODE and print its pid.

    MODULE must be importable on NODE. Each ARG is a Python literal when it
    parses as one, else a string. With --name, the actor is registered under
    NAME on NODE before the command returns (a taken name is refused and
    nothing is started).

    Example: mpactors spawn a mpactors.demo:counter --name counter
    """
    _check_target(function)
    check_reachable(node)
    with hidden_node(cookie):
        pid = rpc.call(
            node, "mpactors.cli._common:spawn_named", function, parse_args(args), name, timeout=CLI_TIMEOUT,
        )
    if not isinstance(pid, Pid):
        raise click.ClickException(str(pid))
    click.echo(str(pid))


def _check_target(function: str) -> None:
    module, sep, name = function.partition(":")
    if not (sep and module and name):
        raise click.BadParameter(f"expected MODULE:FUNCTION, not {function!r}", param_hint="MODULE:FUNCTION")


@cli.command()
@node_argument
@cookie_option
def shell(node: str, cookie: Optional[str]) -> None:
    """A Python prompt running as a process of NODE (like erl -remsh).

    The mpactors functions are at hand; input may come from a pipe.

    Example: echo 'nodes()' | mpactors shell a
    """
    from ._shell import run_shell

    check_reachable(node)
    with hidden_node(cookie):
        run_shell(node)


@cli.command()
@node_argument
@unused_cookie_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing what the node logs (Ctrl-C to stop).")
def logs(node: str, follow: bool) -> None:
    """Print the log of NODE (a node started with mpactors start --detached).

    Example: mpactors logs a -f
    """
    path = log_file(node)
    if not path.exists():
        raise click.ClickException(f"no log for {node} at {path} (only `mpactors start --detached` writes one)")
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        click.echo(f.read(), nl=False)
        if follow:
            signal.signal(signal.SIGTERM, _interrupt)
            try:
                while True:
                    chunk = f.read()
                    if chunk:
                        click.echo(chunk, nl=False)
                    else:
                        time.sleep(0.2)  # following a file: nothing to wait on
            except KeyboardInterrupt:
                pass


cli.add_command(epmd_group)
for _command in OBSERVE_COMMANDS:  # top, stack, state, observer
    cli.add_command(_command)


def main() -> None:
    """Entry point of the console script and of ``python -m mpactors``."""
    cli(prog_name="mpactors")
