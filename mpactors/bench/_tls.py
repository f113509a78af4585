"""Certificates for the TLS benchmarks, made with the ``openssl`` command as the README shows.

:func:`make_certs` writes a CA and one node certificate (for ``localhost``,
``127.0.0.1`` and this host's short name, which is what node names resolve
to) into a directory and returns the ``MPACTORS_TLS_*`` variables that make
a node use them. Every node of the benchmark shares the one certificate, as a
test cluster may.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from typing import Dict, List

from ._util import BenchError

__all__ = ["make_certs"]

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(args: List[str], cwd: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise BenchError("the TLS benchmarks need the openssl command")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise BenchError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()[-500:]}")


def make_certs(directory: str) -> Dict[str, str]:
    """A CA and a node certificate in ``directory``; the ``MPACTORS_TLS_*`` environment for them."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    short = socket.gethostname().split(".")[0] or "localhost"
    _openssl(["req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
              "-subj", "/CN=mpactors bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)
    _openssl(["req", *_EC, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=mpactors bench node"],
             directory)
    with open(os.path.join(directory, "node.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:localhost,DNS:{short},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl(["x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
              "-out", "node.pem", "-days", "2", "-extfile", "node.ext"], directory)
    for key in ("ca.key", "node.key"):
        os.chmod(os.path.join(directory, key), 0o400)
    return {
        "MPACTORS_TLS_CERT": os.path.join(directory, "node.pem"),
        "MPACTORS_TLS_KEY": os.path.join(directory, "node.key"),
        "MPACTORS_TLS_CA": os.path.join(directory, "ca.pem"),
    }
