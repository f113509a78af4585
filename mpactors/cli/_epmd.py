"""``mpactors epmd``: run, list and stop this host's port mapper.

A thin shell over :mod:`mpactors.epmd` (client: ``ensure_running``, ``names``,
``kill``, ``is_running``) and :func:`mpactors.epmd.daemon.serve`. Nodes start
a port mapper themselves when none answers; these commands are for running it
by hand or under a service manager, and for looking inside it.
"""
from __future__ import annotations

import contextlib
import signal
import time
from typing import Any

import click

from .. import config, epmd
from ._common import unused_cookie_option
from ..errors import EpmdError

__all__ = ["epmd_group"]


@click.group("epmd", invoke_without_command=True)
@click.option("--port", type=click.IntRange(1, 65535), envvar="MPACTORS_EPMD_PORT", default=config.EPMD_DEFAULT_PORT,
              show_default=True, help="TCP port [env: MPACTORS_EPMD_PORT].")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--detached", is_flag=True, help="Start it in the background (unless one answers already).")
@click.option("--relaxed-command-check", is_flag=True, help="Let `epmd stop` stop it while nodes are registered.")
@unused_cookie_option
@click.pass_context
def epmd_group(ctx: click.Context, port: int, host: str, detached: bool, relaxed_command_check: bool) -> None:
    """The port mapper: run it (in the foreground, or --detached), list or stop it.

    It is this host's phone book of nodes. Nodes start one, detached, when
    none answers; run it by hand or under a service manager to choose how.

    Example: mpactors epmd --port 4369 --detached
    """
    ctx.obj = port
    if ctx.invoked_subcommand is not None:
        return
    if detached:
        os_pid = epmd.ensure_running(port=port, bind_host=host)
        where = f"the port mapper on port {port}"
        click.echo(f"{where} is already running" if os_pid is None else f"{where} started (OS pid {os_pid})")
        return
    _serve_epmd(port, host, relaxed_command_check)


def _serve_epmd(port: int, host: str, relaxed_command_check: bool) -> None:
    from ._node import configure_logging
    from ..epmd import daemon

    configure_logging()

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        daemon.serve(port, host, relaxed_command_check=relaxed_command_check)


@epmd_group.command("names")
@unused_cookie_option
@click.pass_obj
def epmd_names(port: int) -> None:
    """List the nodes registered with the port mapper (as Erlang's epmd -names).

    Example: mpactors epmd names
    """
    try:
        registered = epmd.names(port=port)
    except EpmdError as exc:
        raise click.ClickException(f"the port mapper is not running: {exc}") from None
    click.echo(f"epmd: up and running on port {port} with data:")
    for name, node_port in registered:
        click.echo(f"name {name} at port {node_port}")


@epmd_group.command("stop")
@unused_cookie_option
@click.pass_obj
def epmd_stop(port: int) -> None:
    """Stop the port mapper (it refuses while nodes are registered).

    Example: mpactors epmd stop
    """
    if not epmd.kill(port=port):
        raise click.ClickException(f"the port mapper on port {port} refused to stop: nodes are still registered")
    deadline = time.monotonic() + config.EPMD_TIMEOUT
    while epmd.is_running(port=port, timeout=1.0):
        if time.monotonic() > deadline:
            raise click.ClickException(f"the port mapper on port {port} agreed to stop but still answers")
        time.sleep(0.05)  # polling a TCP port: nothing to wait on
    click.echo(f"port mapper on port {port} stopped")
