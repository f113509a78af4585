"""Large local messages through shared memory, not through the pipe in PIPE_BUF pieces.

A mailbox pipe carries frames of at most ``PIPE_BUF`` bytes (so concurrent
writers never interleave inside one), which cuts a 16 MiB message into 4,096
writes, reassembled in Python by the reader. Above :data:`THRESHOLD` bytes (above
``_ring.BIG_MAX`` for the remote path's writers, which have a big ring) a
writer instead puts the pickled message in a file of its node's directory in
``/dev/shm`` (tmpfs: memory, never a disk) with one ``write``, and sends a
small *bulk frame* naming that file through the pipe. The bulk frame travels
with the sender's other frames, so the order of one sender's messages is
kept; the reader maps the file, unlinks it at once and unpickles from the
mapping (one copy on each side, as the pipe makes, but no chunking).

Why files and not memfds: a pipe cannot carry descriptors, and sending a
memfd with SCM_RIGHTS needs a Unix socket per mailbox (one more descriptor
per actor in the node) or a hop through the node's kernel thread. A named
file needs neither; what it needs is care that no file outlives its message:

* the reader unlinks a file as soon as it has opened it;
* a writer whose frame cannot be written (the reader is gone: ``EPIPE``, or
  its backlog is dropped) unlinks the files of the frames it drops;
* files are named ``<pipe inode>-<writer pid>-<sequence>``: when the node
  closes the writer of an actor that died (the pipe has no reader left), it
  removes whatever files were still addressed to that pipe (:func:`sweep`);
* each node has its own directory ``mpactors-bulk-<uid>-<node pid>`` (mode
  0700), removed when the node stops; a node that starts removes those of
  nodes that no longer run (a node killed with SIGKILL leaves its own).

Without a usable ``/dev/shm`` (or before a node has told this process its
directory) :func:`store` returns None and the writer falls back to chunks.
"""
from __future__ import annotations

import errno
import itertools
import logging
import mmap
import os
import re
import select
import shutil
import stat
from typing import Any, Optional

__all__ = [
    "THRESHOLD", "start_node", "stop_node", "set_node", "store", "load", "remove", "sweep", "directory", "current_dir",
    "reader_gone",
]

log = logging.getLogger(__name__)

#: Pickled messages of at least this many bytes go through shared memory.
THRESHOLD = 128 * 1024
_ROOT = "/dev/shm"
_PREFIX = f"mpactors-bulk-{os.getuid()}-" if hasattr(os, "getuid") else "mpactors-bulk-"
_REF = re.compile(rb"[0-9a-f]{1,16}-[0-9a-f]{1,8}-[0-9a-f]{1,16}\Z")
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


class _State:
    """This process's node directory (None: the bulk path is off here)."""

    dir: Optional[str] = None
    seq = itertools.count()


def _after_fork() -> None:
    _State.seq = itertools.count()


os.register_at_fork(after_in_child=_after_fork)


def directory(node_os_pid: int) -> str:
    """The bulk directory of the node running in OS process ``node_os_pid``."""
    return os.path.join(_ROOT, f"{_PREFIX}{node_os_pid}")


def current_dir() -> Optional[str]:
    """This process's node directory, or None (no shared-memory path here); ``_ring`` uses it too."""
    return _State.dir


def set_node(node_os_pid: int) -> None:
    """Use the directory of node ``node_os_pid`` (an actor: its node's; set at bootstrap)."""
    path = directory(node_os_pid)
    _State.dir = path if _owned_dir(path) else None


def _owned_dir(path: str) -> bool:
    """True if ``path`` is a real directory of ours that only we can use."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def start_node() -> None:
    """In a node's process as it starts: make its directory, remove those of dead nodes."""
    _State.dir = None
    if not os.path.isdir(_ROOT) or not os.access(_ROOT, os.W_OK | os.X_OK):
        log.debug("no writable %s: large messages go through the pipe in chunks", _ROOT)
        return
    _remove_stale()
    path = directory(os.getpid())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:  # a node of this process ran before, or a stale one of a reused pid
        if not _owned_dir(path):
            log.warning("%s exists and is not a private directory of ours: large messages use the pipe", path)
            return
        _clear(path)
    except OSError as exc:
        log.debug("cannot create %s (%s): large messages go through the pipe in chunks", path, exc)
        return
    _State.dir = path


def stop_node() -> None:
    """In a node's process once it stopped (every actor is gone): remove its directory."""
    path, _State.dir = _State.dir, None
    if path is not None and path == directory(os.getpid()):
        shutil.rmtree(path, ignore_errors=True)


def _remove_stale() -> None:
    try:
        names = os.listdir(_ROOT)
    except OSError:
        return
    for name in names:
        if not name.startswith(_PREFIX):
            continue
        try:
            pid = int(name[len(_PREFIX):])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        path = os.path.join(_ROOT, name)
        if _owned_dir(path):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clear(path: str) -> None:
    for name in os.listdir(path):
        try:
            os.unlink(os.path.join(path, name))
        except OSError:
            pass


def store(payload: Any, pipe_ino: int) -> Optional[bytes]:
    """Write ``payload`` to a new file for the pipe ``pipe_ino``; its reference, or None (use chunks)."""
    path = _State.dir
    if path is None:
        return None
    ref = f"{pipe_ino:x}-{os.getpid():x}-{next(_State.seq):x}"
    full = os.path.join(path, ref)
    try:
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        log.debug("bulk file %s: %s; using the pipe", full, exc)
        return None
    try:
        view = memoryview(payload)
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
    except OSError as exc:  # ENOSPC, EFBIG: the pipe still works
        log.debug("bulk file %s: %s; using the pipe", full, exc)
        _unlink(full)
        return None
    finally:
        os.close(fd)
    return ref.encode()


def load(ref: bytes, copy: bool = False) -> Any:
    """The payload a bulk frame names (an mmap, or bytes with ``copy``); the file is unlinked.

    Raises OSError if the file is gone (or ValueError for a malformed reference).
    The caller closes an mmap once it has unpickled it.
    """
    path = _State.dir
    if path is None:
        raise OSError(errno.ENOENT, "no bulk directory in this process")
    if not _REF.match(ref):
        raise ValueError(f"malformed bulk reference {ref[:40]!r}")
    full = os.path.join(path, ref.decode())
    fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        _unlink(full)
        size = os.fstat(fd).st_size
        if size == 0:
            return b""
        if copy:
            return _read_all(fd, size)
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _MAP_POPULATE, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    data = os.read(fd, size)  # one read for a tmpfs file below 2 GiB
    if len(data) < size:
        parts = [data]
        got = len(data)
        while got < size:
            part = os.read(fd, size - got)
            if not part:
                raise OSError(errno.EIO, "bulk file shorter than its size")
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
    return data


def remove(ref: bytes) -> None:
    """Unlink the file of a bulk frame that will never be read."""
    path = _State.dir
    if path is not None and _REF.match(ref):
        _unlink(os.path.join(path, ref.decode()))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def reader_gone(write_fd: int) -> bool:
    """True if the pipe whose write end is ``write_fd`` has no reader left (``POLLERR``)."""
    poller = select.poll()
    poller.register(write_fd, select.POLLOUT)
    try:
        events = poller.poll(0)
    except OSError:
        return False
    return bool(events) and bool(events[0][1] & select.POLLERR)


def sweep(write_fd: int, pipe_ino: int) -> None:
    """Remove the files still addressed to pipe ``pipe_ino`` if its reader is gone.

    Called as a writer closes. A pipe whose write end reports ``POLLERR`` has
    no reader left: nothing will ever read those files. (A writer that
    creates one after this gets ``EPIPE`` for its frame and removes it.)
    """
    path = _State.dir
    if path is None or not pipe_ino or not reader_gone(write_fd):
        return
    prefix = f"{pipe_ino:x}-"
    try:
        with os.scandir(path) as it:
            stale = [e.path for e in it if e.name.startswith(prefix)]
    except OSError:
        return
    for p in stale:
        _unlink(p)
