"""``mpactors top``: a live terminal view of a cluster, in hand-written ANSI.

No curses and no ``rich``: the view is two tables redrawn once a second, and
a few escape sequences do it (alternate screen, home, clear to end of line,
reverse video for the header) without a new dependency. The terminal is put
in cbreak mode (keys arrive one by one, Ctrl-C still raises SIGINT) and
restored in a ``finally``, whatever ends the view: ``q``, Ctrl-C, SIGTERM or
an error.

Keys: ``q`` quits; ``p`` pid, ``n`` name, ``s`` status, ``l`` mailbox length,
``h`` handled, ``i`` in/s, ``o`` out/s, ``m`` memory, ``c`` CPU sort the
actors (the same key again reverses the order).
"""
from __future__ import annotations

import os
import select
import shutil
import sys
import termios
import time
import tty
from typing import Any, Dict, List, Optional, TextIO

from ._common import format_table, human_bytes
from ._sample import SORT_KEYS, Sampler

__all__ = ["KEYS", "render", "run_live", "sort_actors", "sorted_sample"]

#: Key -> ``--sort`` key in the live view.
KEYS = {"p": "pid", "n": "name", "s": "status", "l": "msgq", "h": "handled", "i": "in", "o": "out",
        "m": "memory", "c": "cpu"}
_NUMERIC = {"msgq", "handled", "in", "out", "memory", "cpu"}

_NODE_HEADERS = ["NODE", "OS PID", "ACTORS", "CPU%", "CPU% ALL", "MEMORY", "MEM ALL", "IN/S", "OUT/S", "PEERS"]
_ACTOR_HEADERS = ["PID", "NAME", "CALLABLE", "STATUS", "MSGQ", "HANDLED", "IN/S", "OUT/S", "MEMORY", "CPU%"]

_ALT_ON, _ALT_OFF = "\x1b[?1049h", "\x1b[?1049l"
_HIDE, _SHOW = "\x1b[?25l", "\x1b[?25h"
_HOME, _CLEAR_EOL, _CLEAR_EOS = "\x1b[H", "\x1b[K", "\x1b[J"
_REV, _BOLD, _RESET = "\x1b[7m", "\x1b[1m", "\x1b[0m"


def sort_actors(actors: List[Dict[str, Any]], key: str, reverse: bool = False) -> List[Dict[str, Any]]:
    """``actors`` sorted by ``--sort`` key ``key``; numbers largest first (``reverse`` flips it)."""
    field = SORT_KEYS[key]
    numeric = key in _NUMERIC

    def sort_key(a: Dict[str, Any]) -> Any:
        value = a.get(field)
        if numeric:
            return (value is None, -(value or 0))
        if key == "pid":
            return (a["node"], int(a["pid"].rsplit(".", 2)[-2]))
        return (value is None, str(value or ""))

    return sorted(actors, key=sort_key, reverse=reverse)


def _num(value: Optional[float]) -> Optional[str]:
    return None if value is None else f"{value:.1f}"


def render(sample: Dict[str, Any], key: str = "cpu", reverse: bool = False,
           width: int = 200, height: Optional[int] = None) -> str:
    """The screen for ``sample``: a node table, then the actors sorted by ``key`` (plain text)."""
    nodes = [[n["node"], n["os_pid"], n["actors"], _num(n["cpu_percent"]), _num(n["cpu_total"]),
              human_bytes(n["memory"]), human_bytes(n["memory_total"]), _num(n["in_per_s"]), _num(n["out_per_s"]),
              n["error"] or ", ".join(n["peers"])] for n in sample["nodes"]]
    actors = [[a["pid"], a["name"], a["callable"], a["status"], a["message_queue_len"], a["messages_handled"],
               _num(a["in_per_s"]), _num(a["out_per_s"]), human_bytes(a["memory"]), _num(a["cpu_percent"])]
              for a in sort_actors(sample["actors"], key, reverse)]
    stamp = time.strftime("%H:%M:%S", time.localtime(sample["time"]))
    order = "ascending" if reverse == (key in _NUMERIC) else "descending"
    lines = [f"mpactors top - {stamp} - {len(sample['nodes'])} nodes, {len(sample['actors'])} actors"
             f" - sorted by {key} ({order})", ""]
    lines += format_table(_NODE_HEADERS, nodes, right=(1, 2, 3, 4, 5, 6, 7, 8)).splitlines()
    lines.append("")
    lines += format_table(_ACTOR_HEADERS, actors, right=(4, 5, 6, 7, 8, 9)).splitlines()
    if height is not None and len(lines) > height:
        lines = lines[:height]
    return "\n".join(line[:width] for line in lines)


def run_live(sampler: Sampler, key: str, interval: float = 1.0, out: TextIO = sys.stdout,
             fd: Optional[int] = None) -> None:
    """Redraw every ``interval`` seconds until ``q`` or Ctrl-C; restores the terminal on the way out."""
    fd = sys.stdin.fileno() if fd is None else fd
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    reverse = False
    try:
        if saved is not None:
            tty.setcbreak(fd)
        out.write(_ALT_ON + _HIDE)
        while True:
            sample = sampler.sample()
            size = shutil.get_terminal_size()
            screen = render(sample, key, reverse, width=size.columns, height=size.lines - 1)
            head, _, rest = screen.partition("\n")
            body = rest.replace("\n", _CLEAR_EOL + "\n")
            help_line = "q quit  " + "  ".join(f"{k} {v}" for k, v in KEYS.items())
            out.write(f"{_HOME}{_REV}{head[:size.columns].ljust(size.columns)}{_RESET}\n{body}{_CLEAR_EOL}\n"
                      f"{_BOLD}{help_line[:size.columns]}{_RESET}{_CLEAR_EOS}")
            out.flush()
            deadline = time.monotonic() + interval
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    break
                ch = os.read(fd, 1).decode("ascii", "replace")
                if ch in ("q", "Q", ""):  # "": end of input
                    return
                if ch in KEYS:
                    reverse = not reverse if KEYS[ch] == key else False
                    key = KEYS[ch]
                    break
    except KeyboardInterrupt:
        pass
    finally:
        out.write(_SHOW + _ALT_OFF)
        out.flush()
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def sorted_sample(sample: Dict[str, Any], key: str) -> Dict[str, Any]:
    """``sample`` with its actors in ``--sort`` order (for ``--json``)."""
    return {**sample, "actors": sort_actors(sample["actors"], key)}
