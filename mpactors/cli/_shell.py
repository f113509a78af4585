"""``mpactors shell NODE``: a Python prompt that runs inside NODE, like ``erl -remsh``.

Two halves talk with tagged messages::

    CLI process (hidden node)                 NODE
    RemoteConsole                             evaluator actor (spawned, linked)
      reads a line; compiles it locally
      only to know whether it is complete
      (_TAG, 'eval', ref, source)  ------->   compile(source, 'single'); exec in
                                              its namespace, stdout/stderr captured
                                   <-------   (_TAG, ref, stdout text, stderr text)
      prints them

The evaluator is a real process of NODE: ``self()``, ``node()``, ``receive()``
and ``os.getppid()`` (the node's OS pid) are the node's. It is linked to the
CLI's main process, so it ends when the shell does (Ctrl-D, ``exit()``,
``quit()``, end of input, or
the CLI dying: the link breaks with ``'noconnection'``). If it dies, or an
evaluation is interrupted with Ctrl-C, a new one is started, as Erlang's shell
does ("*** Shell process terminated! ***"); its variables are lost.
"""
from __future__ import annotations

import code
import io
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, Dict, List, Optional, TextIO, Tuple

from .. import primitives
from ..errors import ProcessExit
from ..messages import ExitSignal
from ..pid import Pid

__all__ = ["RemoteConsole", "evaluator", "run_shell"]

_TAG = "mpactors-shell"
_SOURCE_NAME = "<shell>"


# -- the node side ---------------------------------------------------------------
def evaluator(client: Pid) -> None:
    """Actor body on the shell's node: evaluate what ``client`` sends, reply with the output."""
    namespace = _namespace()
    while True:
        _, kind, ref, text = primitives.receive(
            lambda m: type(m) is tuple and len(m) == 4 and m[0] == _TAG and m[1] in ("eval", "complete")
        )
        reply: Tuple[Any, ...] = _evaluate(text, namespace) if kind == "eval" else (_complete(text, namespace), "", False)
        primitives.send(client, (_TAG, ref) + reply)


def _namespace() -> Dict[str, Any]:
    namespace: Dict[str, Any] = {"__name__": "__console__", "__builtins__": __builtins__}
    exec("import mpactors\nfrom mpactors import *\nfrom mpactors import rpc", namespace)  # noqa: S102
    namespace["exit"] = namespace["quit"] = _leave  # site's would close the node's stdin first
    return namespace


def _leave(code: object = None) -> None:
    """``exit()`` / ``quit()`` in the shell: leave it (the node goes on)."""
    raise SystemExit(code)


def _evaluate(source: str, namespace: Dict[str, Any]) -> Tuple[str, str, bool]:
    """Run one interactive statement; returns what it wrote to stdout and stderr, and whether to leave.

    ``exit()``, ``quit()`` (and any ``SystemExit``) leave the shell, as in
    Python's own prompt; the node goes on.
    """
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            exec(compile(source, _SOURCE_NAME, "single"), namespace)  # noqa: S102 - a shell runs code
        except SystemExit:
            return out.getvalue(), err.getvalue(), True
        except Exception as exc:  # noqa: BLE001 - shown to the user, the shell goes on
            # Leave out this frame: the traceback starts in the user's code.
            tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
            err.write("".join(traceback.format_exception(type(exc), exc, tb)))
    return out.getvalue(), err.getvalue(), False


def _complete(text: str, namespace: Dict[str, Any]) -> List[str]:
    import rlcompleter

    completer = rlcompleter.Completer(namespace)
    matches: List[str] = []
    while len(matches) < 1000:
        match = completer.complete(text, len(matches))
        if match is None:
            break
        matches.append(match)
    return matches


# -- the CLI side ----------------------------------------------------------------
class _Leave(Exception):
    """``exit()`` or ``quit()`` was evaluated: leave the prompt."""


class RemoteConsole(code.InteractiveConsole):
    """An ``InteractiveConsole`` whose statements run in an evaluator on ``node``."""

    def __init__(self, node: str, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> None:
        super().__init__(filename=_SOURCE_NAME)
        self.node = node
        self.stdout = stdout
        self.stderr = stderr
        self._matches: List[str] = []
        primitives.trap_exit(True)  # an evaluator's death is a message, not our death
        self.evaluator = self._start_evaluator()

    def _start_evaluator(self) -> Pid:
        return primitives.spawn_link(evaluator, primitives.self(), node=self.node)

    def runsource(self, source: str, filename: str = _SOURCE_NAME, symbol: str = "single") -> bool:
        """Send a complete statement to the node; True asks for more lines."""
        try:
            if self.compile(source, filename, symbol) is None:
                return True
        except (OverflowError, SyntaxError, ValueError):
            self.showsyntaxerror(filename)
            return False
        out, err, leave = self.request("eval", source)
        self.stdout.write(out)
        self.stdout.flush()
        self.stderr.write(err)
        if leave:
            raise _Leave()
        return False

    def request(self, kind: str, text: str) -> Tuple[Any, str, bool]:
        """One exchange with the evaluator; restarts it if it dies or Ctrl-C abandons it."""
        ref = primitives.make_ref()
        me = self.evaluator
        primitives.send(me, (_TAG, kind, ref, text))
        try:
            msg = primitives.receive(
                lambda m: (type(m) is tuple and len(m) == 5 and m[:2] == (_TAG, ref))
                or (type(m) is ExitSignal and m.pid == me)
            )
        except KeyboardInterrupt:
            primitives.exit(me, "kill")
            primitives.receive(lambda m: type(m) is ExitSignal and m.pid == me, timeout=10.0)
            return self._restarted("KeyboardInterrupt: evaluation abandoned")
        if type(msg) is ExitSignal:
            return self._restarted(f"the shell process exited: {msg.reason!r}")
        return msg[2], msg[3], msg[4]

    def _restarted(self, why: str) -> Tuple[str, str, bool]:
        self.evaluator = self._start_evaluator()
        return "", f"*** {why}; new shell process {self.evaluator} (variables are lost)\n", False

    def write(self, data: str) -> None:
        """Local messages (syntax errors, banner) go to stderr."""
        self.stderr.write(data)

    def complete(self, text: str, state: int) -> Optional[str]:
        """readline completer: names from the evaluator's namespace."""
        if state == 0:
            try:
                self._matches = list(self.request("complete", text)[0])
            except Exception:  # noqa: BLE001 - completion must never break the prompt
                self._matches = []
        return self._matches[state] if state < len(self._matches) else None

    def close(self) -> None:
        """End the evaluator (the link would end it anyway when this node stops)."""
        primitives.unlink(self.evaluator)
        primitives.exit(self.evaluator, "kill")


def run_shell(node: str, *, stdin: TextIO = sys.stdin) -> None:
    """Run the prompt on ``node`` until end of input (the caller runs a hidden node)."""
    console = RemoteConsole(node)
    try:
        if stdin.isatty():
            _interact(console, node)
        else:
            # A pipe: no banner and no prompts, so the output is only the results.
            for line in stdin:
                console.push(line.rstrip("\n"))
            if console.buffer:
                console.push("")
    except _Leave:
        pass
    except ProcessExit as exc:  # pragma: no cover - exit signals are trapped
        console.write(f"*** shell ended: {exc}\n")
    finally:
        console.close()


def _interact(console: RemoteConsole, node: str) -> None:
    try:
        import readline

        readline.set_completer(console.complete)
        readline.parse_and_bind("tab: complete")
    except ImportError:  # pragma: no cover
        pass
    sys.ps1, sys.ps2 = f"({node})>>> ", f"({node})... "
    banner = (
        f"mpactors shell on {node}, running as process {console.evaluator}.\n"
        "send, receive, spawn, self, node, nodes... are at hand, and so are mpactors and rpc. Ctrl-D or exit() leaves."
    )
    console.interact(banner=banner, exitmsg="")
