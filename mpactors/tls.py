"""Mutual TLS between nodes: the :class:`TLS` settings and the ``ssl`` contexts made from them.

``Node(name, tls=TLS(certfile, keyfile, cafile))`` (or ``--tls-cert``,
``--tls-key``, ``--tls-ca`` on the command line, or ``MPACTORS_TLS_CERT``,
``MPACTORS_TLS_KEY``, ``MPACTORS_TLS_CA``) makes every connection of the node
to another node run over TLS 1.2 or newer, with Python's ``ssl`` only:

* both sides present their certificate and accept only one signed by
  ``cafile`` (mutual TLS);
* the connecting side checks that the accepting node's certificate is issued
  for the host part of its node name (a DNS name or an IP address SAN), or for
  ``server_name`` when one is given (clusters whose addresses change, where
  every node has a certificate for one service name);
* the cookie challenge still runs, inside TLS: the two checks are independent.

A private key file that group or others may access is refused, like the
cookie file (and as ssh does). The files are read when the node starts and
again on ``SIGHUP`` (see :mod:`mpactors.dist._tls`).
"""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any, Optional

from . import config
from .cookie import check_private_file
from .errors import BadArg, NodeError

__all__ = ["TLS"]


@dataclass(frozen=True)
class TLS:
    """TLS settings of a node (a frozen value: compare, hash, pass around).

    Args:
        certfile: the node's certificate (PEM), with any intermediate CAs after it.
        keyfile: its private key (PEM, unencrypted, mode 0400 or 0600).
        cafile: the CA certificate(s) (PEM) a peer's certificate must be signed by.
        server_name: check peers' certificates against this name instead of
            the host part of their node names.

    Paths are made absolute; nothing is read until the node starts.
    """

    certfile: str
    keyfile: str
    cafile: str
    server_name: Optional[str] = None

    def __post_init__(self) -> None:
        for field in ("certfile", "keyfile", "cafile"):
            value = getattr(self, field)
            if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
                raise BadArg(f"TLS `{field}` must be a file path, not {value!r}")
            object.__setattr__(self, field, os.path.abspath(os.fspath(value)))
        name = self.server_name
        if name is not None and (not isinstance(name, str) or not name or any(c.isspace() for c in name)):
            raise BadArg(f"TLS `server_name` must be a host name, not {name!r}")

    @classmethod
    def from_env(cls) -> Optional[TLS]:
        """The settings in ``MPACTORS_TLS_CERT/KEY/CA[/SERVER_NAME]``, or None when none is set.

        Raises:
            BadArg: some of the three files are set and others are not.
        """
        values = config.env_tls()
        files = [values[k] for k in ("cert", "key", "ca")]
        if not any(files):
            if values["server_name"]:
                raise BadArg("MPACTORS_TLS_SERVER_NAME is set without MPACTORS_TLS_CERT, _KEY and _CA")
            return None
        missing = [f"MPACTORS_TLS_{k.upper()}" for k in ("cert", "key", "ca") if not values[k]]
        if missing:
            raise BadArg(f"TLS needs a certificate, a key and a CA: {', '.join(missing)} not set")
        return cls(files[0], files[1], files[2], values["server_name"])  # type: ignore[arg-type]

    # -- ssl contexts ------------------------------------------------------
    def server_context(self) -> ssl.SSLContext:
        """A context for accepted connections: our certificate, the peer's required.

        Raises:
            NodeError: a file is missing, unreadable, malformed, or the key is
                accessible by group or others.
        """
        ctx = self._context(ssl.PROTOCOL_TLS_SERVER)
        ctx.num_tickets = 0  # no post-handshake messages: nodes do not resume sessions
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A context for connections we open: checks the peer's host name too (see :class:`TLS`)."""
        ctx = self._context(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = True
        return ctx

    def _context(self, protocol: Any) -> ssl.SSLContext:
        self._check_key()
        ctx = ssl.SSLContext(protocol)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise NodeError(f"cannot load TLS certificate {self.certfile} with key {self.keyfile}: {_why(exc)}") from None
        try:
            ctx.load_verify_locations(cafile=self.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise NodeError(f"cannot load TLS CA file {self.cafile}: {_why(exc)}") from None
        return ctx

    def _check_key(self) -> None:
        try:
            info = os.stat(self.keyfile)
        except OSError as exc:
            raise NodeError(f"TLS private key {self.keyfile} cannot be examined: {exc.strerror}") from None
        check_private_file(self.keyfile, info, "TLS private key", "give the path of the key file", NodeError)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return getattr(exc, "strerror", None) or str(exc)
