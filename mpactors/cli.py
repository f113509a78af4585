"""The ``mpactors`` command (click): a thin shell over the public API."""
from __future__ import annotations

import click

from . import __version__

__all__ = ["main", "cli"]


@click.group(context_settings={"auto_envvar_prefix": "MPACTORS", "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpactors")
def cli() -> None:
    """mpactors: Erlang's distribution model in Python.

    Example: mpactors --version
    """


def main() -> None:
    """Entry point of the console script and of ``python -m mpactors``."""
    cli(prog_name="mpactors")
