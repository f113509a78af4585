"""Test certificates made with the ``openssl`` command, as the README shows (no hand-rolled X.509).

:func:`make_certs` writes into a directory:

* ``ca.pem``/``ca.key`` - the cluster CA; ``other-ca.pem`` - an unrelated CA;
* ``node.pem``/``node.key`` - signed by the CA for ``localhost``, ``127.0.0.1``,
  this host's short name and ``extra_ips``;
* ``service.pem`` - for one service name only (``SERVICE_NAME``);
* ``wronghost.pem`` - for ``elsewhere.invalid`` only;
* ``expired.pem`` - like ``node.pem`` but expired yesterday;
* ``stranger.pem`` - like ``node.pem`` but signed by the other CA.

Every certificate has its own ``.key`` (mode 0400).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List

import mpactors

__all__ = ["SERVICE_NAME", "make_certs", "tls_env", "tls_for", "OPENSSL"]

OPENSSL = shutil.which("openssl")
SERVICE_NAME = "mpactors.cluster.test"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _run(args: List[str], cwd: Path) -> None:
    assert OPENSSL is not None
    proc = subprocess.run([OPENSSL] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr}")


def _ca(d: Path, name: str) -> None:
    _run(["req", "-x509", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30",
          "-subj", f"/CN=mpactors test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)


def _leaf(d: Path, name: str, sans: Iterable[str], ca: str = "ca", days: str = "30") -> None:
    _run(["req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"], d)
    (d / f"{name}.ext").write_text(
        f"subjectAltName={','.join(sans)}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _run(["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
          "-out", f"{name}.pem", "-days", days, "-extfile", f"{name}.ext"], d)
    os.chmod(d / f"{name}.key", 0o400)


def make_certs(d: Path, extra_ips: Iterable[str] = ()) -> Path:
    """Write the CAs and certificates listed above into ``d``; returns ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    short = socket.gethostname().split(".")[0] or "localhost"
    node_sans = ["DNS:localhost", f"DNS:{short}", "IP:127.0.0.1"] + [f"IP:{ip}" for ip in extra_ips]
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "node", node_sans)
    _leaf(d, "service", [f"DNS:{SERVICE_NAME}"])
    _leaf(d, "wronghost", ["DNS:elsewhere.invalid"])
    _leaf(d, "expired", node_sans, days="-1")
    _leaf(d, "stranger", node_sans, ca="other-ca")
    os.chmod(d / "ca.key", 0o400)
    os.chmod(d / "other-ca.key", 0o400)
    return d


def tls_for(d: Path, cert: str = "node", ca: str = "ca", server_name: object = None) -> mpactors.TLS:
    """``TLS`` settings using certificate ``cert`` (and its key) and CA ``ca`` from ``d``."""
    return mpactors.TLS(d / f"{cert}.pem", d / f"{cert}.key", d / f"{ca}.pem", server_name)  # type: ignore[arg-type]


def tls_env(d: Path, cert: str = "node", ca: str = "ca", server_name: object = None) -> Dict[str, str]:
    """The ``MPACTORS_TLS_*`` variables for the same settings (for node subprocesses)."""
    env = {"MPACTORS_TLS_CERT": str(d / f"{cert}.pem"), "MPACTORS_TLS_KEY": str(d / f"{cert}.key"),
           "MPACTORS_TLS_CA": str(d / f"{ca}.pem")}
    if server_name:
        env["MPACTORS_TLS_SERVER_NAME"] = str(server_name)
    return env
