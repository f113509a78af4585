"""``python -m mpactors.epmd [--port N] [--host H]``: run a port mapper in the foreground.

:func:`mpactors.epmd.client.ensure_running` starts the daemon this way
(detached, stderr to ``$MPACTORS_HOME/logs/epmd.log``); the ``mpactors epmd``
command calls the same :func:`~mpactors.epmd.daemon.serve`. Logs go to
stderr with timestamps. Exits 0 when stopped by KILL_REQ, SIGTERM or SIGINT,
and 1 with one logged line when the port cannot be bound (for instance because
another port mapper holds it).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import List, Optional

from .. import config
from ..errors import EpmdError
from .daemon import IDLE_TIMEOUT, serve

__all__ = ["main"]

_log = logging.getLogger("mpactors.epmd")


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, run the daemon until it is stopped, and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mpactors.epmd", description="Run the mpactors port mapper.")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default $MPACTORS_EPMD_PORT or 4369)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        help="seconds a client may take to send a whole request (default %(default)s)",
    )
    parser.add_argument(
        "--relaxed-command-check",
        action="store_true",
        help="let KILL_REQ stop the daemon even while nodes are registered",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        port = config.epmd_port() if args.port is None else args.port
        serve(
            port,
            args.host,
            idle_timeout=args.idle_timeout,
            relaxed_command_check=args.relaxed_command_check,
        )
    except (EpmdError, ValueError) as exc:
        _log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        _log.info("stopping on SIGINT")
    return 0


def _exit_on_signal(signum: int, frame: Optional[FrameType]) -> None:
    _log.info("stopping on signal %d", signum)
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
