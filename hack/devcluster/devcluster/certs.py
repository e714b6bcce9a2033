"""TLS files for loopback test servers (the S3 store, an https model origin): a private CA
of its own per call (openssl), so a server is trusted only where its CA is given."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


def private_ca(work_dir: Path, ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """(CA cert, server cert, server key): a private CA of its own and a certificate for
    ``ip`` signed by it (openssl), as a store behind a private CA has."""
    ca_key, ca, key, csr, cert = (
        work_dir / n for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt")
    )
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=onnxops test CA",
            "-keyout",
            ca_key,
            "-out",
            ca,
        ]
    )
    run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={ip}",
            "-keyout",
            key,
            "-out",
            csr,
        ]
    )
    ext = work_dir / "san.ext"
    ext.write_text(f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n")
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            cert,
        ]
    )
    return ca, cert, key
