"""The exceptions mpactors raises: one shallow tree under :class:`MpactorsError`.

Every exception pickles (they cross process and node boundaries), and each
docstring says when it is raised and how it differs from its neighbours.
"""
from __future__ import annotations

__all__ = [
    "MpactorsError",
    "BadArg",
    "Timeout",
    "RemoteError",
    "CookieError",
    "EpmdError",
    "NodeError",
    "NotAlive",
    "ProcessExit",
    "NoProc",
    "AlreadyStarted",
    "WouldBlock",
]


class MpactorsError(Exception):
    """Root of every error raised by mpactors itself."""


class BadArg(MpactorsError, ValueError):
    """A call was given an argument it cannot act on.

    Raised by ``send`` to an unregistered local name (Erlang's ``badarg``), by
    ``send`` of a message that cannot be pickled (nothing is sent), by
    ``register`` of a name already taken, and by malformed pids or patterns.
    It is *not* raised for a message to a dead pid: that is dropped silently,
    as in Erlang.
    """


class Timeout(MpactorsError, TimeoutError):
    """A blocking call reached its deadline.

    Raised by ``receive(timeout=...)``, ``GenServer.call`` and ``rpc.call``;
    the message names the timeout value and what was awaited.
    """


class RemoteError(MpactorsError):
    """Code run on behalf of the caller elsewhere raised an exception.

    ``type_name`` names the remote exception type and ``remote_traceback``
    carries the remote traceback text, since the exception object itself may
    not exist on this side.
    """

    def __init__(self, message: str, type_name: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple:
        return (type(self), (self.args[0], self.type_name, self.remote_traceback))

    def __str__(self) -> str:
        text = str(self.args[0])
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback
        return text


class CookieError(MpactorsError):
    """The cluster cookie could not be found, created or trusted.

    Raised when the cookie file is readable by group or others, is not a
    regular file, or is empty. A *wrong* cookie at connect time is not this
    error: that is a refused connection (``ping`` answers ``'pang'``).
    """


class EpmdError(MpactorsError):
    """The port mapper could not be reached, or refused a request.

    Raised when no port mapper answers and none can be started, when a node
    name is already registered on this host, or on a malformed reply.
    """


class NodeError(MpactorsError):
    """A node could not be started, reached or used as asked.

    Raised for an invalid node name, a second ``Node`` in one process, a
    name already in use on the host, or an operation that needs a running
    node when none is.
    """


class NotAlive(NodeError):
    """An mpactors function was called from a process that is not a node or actor."""


class ProcessExit(MpactorsError):
    """The calling process was ended by an exit signal it does not trap.

    Actors simply stop. The node's main process (the script that created
    the ``Node``) cannot be torn down under the user's feet, so a pending
    ``receive`` raises this instead; ``reason`` is the exit reason.
    """

    def __init__(self, reason: object) -> None:
        super().__init__(f"process exited with reason {reason!r}")
        self.reason = reason

    def __reduce__(self) -> tuple:
        return (type(self), (self.reason,))


class NoProc(MpactorsError):
    """The target process does not exist (Erlang's ``noproc``).

    Raised by ``genserver.stop`` for a server that is not running (a dead
    pid or a name nobody holds), and by ``link`` to a dead local pid from a
    caller that does not trap exits. A *call* to a dead server raises
    :class:`RemoteError` instead, as it always did.
    """


class AlreadyStarted(MpactorsError):
    """A process (or a supervisor child) with that name or id is already running.

    Raised by ``GenServer.start(name=N)`` when ``N`` is taken and by
    ``supervisor.start_child`` for a running child id; ``pid`` is the
    process that holds the name (or the running child).
    """

    def __init__(self, message: str, pid: object = None) -> None:
        super().__init__(message)
        self.pid = pid

    def __reduce__(self) -> tuple:
        return (type(self), (self.args[0], self.pid))


class WouldBlock(MpactorsError):
    """A blocking wait was called where it would stop an event loop (``mpactors.aio``).

    Raised by blocking ``receive`` (and so ``GenServer.call``, ``rpc.call``)
    with a timeout other than 0 in the thread of an async actor's running
    event loop: waiting there stops every task of the actor, including the
    one that might produce the awaited message. Use ``await
    mpactors.aio.receive(...)`` / ``aio.call``, or run blocking code with
    ``await asyncio.to_thread(...)``. It is *not* raised in the node's main
    process, where a blocking call in a web app's loop only stalls that loop.
    """
