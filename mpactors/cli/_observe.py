"""The observing commands: ``top``, ``stack``, ``state`` and ``observer``.

They talk to the cluster through the CLI's hidden node like ``ps`` does
(:func:`mpactors.cli._common.hidden_node`); the figures come from
:mod:`mpactors.cli._sample`, the live view from :mod:`mpactors.cli._top`, the
web page from :mod:`mpactors.cli._observer`.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any, List, Optional

import click

from .. import introspect
from ._common import check_reachable, cookie_option, hidden_node, node_callback, resolve_pid
from ._sample import SORT_KEYS, Sampler
from ._top import render, run_live, sorted_sample

__all__ = ["COMMANDS"]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@click.argument("node", required=False, callback=node_callback)
@cookie_option
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot as JSON (implies --once).")
@click.option("--sort", "sort_key", type=click.Choice(sorted(SORT_KEYS)), default="cpu", show_default=True,
              help="Sort the actors by this column.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between refreshes (--once: between the two samples the rates come from).")
def top(node: Optional[str], cookie: Optional[str], once: bool, as_json: bool, sort_key: str, interval: float) -> None:
    """A live view of every node on this host (or NODE's cluster) and their actors.

    Per node: actors, CPU, memory, messages in/out per second; per actor:
    pid, name, callable, status, mailbox length, messages handled, rates,
    memory, CPU. Keys: q quits; p n s l h i o m c sort (again: reverse).

    Example: mpactors top --once --sort memory
    """
    if node is not None:
        check_reachable(node)
    with hidden_node(cookie):
        sampler = Sampler(node)
        if not sampler.seeds():
            raise click.ClickException("no node is running on this host (name one: mpactors top NODE)")
        if once or as_json:
            sampler.sample()
            time.sleep(interval)  # rates need two samples
            sample = sampler.sample()
            if as_json:
                click.echo(json.dumps(sorted_sample(sample, sort_key), indent=2))
            else:
                click.echo(render(sample, sort_key))
            return
        if not sys.stdout.isatty():
            raise click.ClickException("the live view needs a terminal: use --once or --json")
        signal.signal(signal.SIGTERM, _interrupt)
        run_live(sampler, sort_key, interval)


@click.command()
@click.argument("pid")
@cookie_option
def stack(pid: str, cookie: Optional[str]) -> None:
    """Print the Python stack of every thread of actor PID, without stopping it.

    Example: mpactors stack '<a@myhost.5.0>'
    """
    with hidden_node(cookie):
        click.echo(introspect.stack(resolve_pid(pid)).rstrip())


@click.command()
@click.argument("pid")
@cookie_option
def state(pid: str, cookie: Optional[str]) -> None:
    """Print the state of GenServer PID (its attributes, size-capped), like sys:get_state.

    Example: mpactors state '<a@myhost.5.0>'
    """
    with hidden_node(cookie):
        click.echo(introspect.get_state(resolve_pid(pid)))


@click.command()
@click.argument("node", required=False, callback=node_callback)
@cookie_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than loopback requires the token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free).")
@click.option("--token", envvar="MPACTORS_OBSERVER_TOKEN", default=None,
              help="Token the page requires (default with a non-loopback --host: a random one, printed).")
@click.option("--interval", type=click.FloatRange(min=0.2), default=1.0, show_default=True,
              help="Seconds between samples.")
def observer(node: Optional[str], cookie: Optional[str], host: str, port: int, token: Optional[str],
             interval: float) -> None:
    """Serve a live web page of NODE's cluster (or of every node on this host).

    Nodes and connections, actors with top's figures, supervision trees,
    links and monitors, message rates and memory over the last minutes,
    stacks on click; /metrics in the Prometheus text format (with the observer
    extra: pip install 'mpactors[observer]'). Runs until Ctrl-C.

    Example: mpactors observer a --port 8080
    """
    from ._metrics import AVAILABLE, MISSING
    from ._observer import serve

    if node is not None:
        check_reachable(node)
    if not AVAILABLE:
        click.echo(f"note: {MISSING}", err=True)
    signal.signal(signal.SIGTERM, _interrupt)
    with hidden_node(cookie):
        try:
            serve(Sampler(node), host=host, port=port, token=token, interval=interval, echo=click.echo)
        except KeyboardInterrupt:
            pass


COMMANDS: List[click.Command] = [top, stack, state, observer]
