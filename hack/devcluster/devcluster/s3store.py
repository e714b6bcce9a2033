"""versitygw (a real S3 gateway over a directory, built by hack/gotool.sh) on a
loopback port, started and stopped by PID, for the storage tests. Buckets are directories."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from . import certs

ROOT = Path(__file__).resolve().parents[3]
ACCESS_KEY = "ONNXOPSTESTKEY"
SECRET_KEY = "onnxops-test-secret-key"  # a test credential for a loopback server
REGION = "us-east-1"


def binary() -> Path:
    built = subprocess.run(
        [
            "bash",
            str(ROOT / "hack" / "gotool.sh"),
            str(ROOT / "hack" / "versitygw"),
            "github.com/versity/versitygw",
            "github.com/versity/versitygw/cmd/versitygw",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(built.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """One versitygw process; `stop()` and `start()` again keep the port and the data.
    `tls`: https with a certificate from a private CA (`ca_file`)."""

    def __init__(self, work_dir: Path, *, tls: bool = False) -> None:
        self.data = work_dir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.log_path = work_dir / "versitygw.log"
        self.port = _free_port()
        self.tls = certs.private_ca(work_dir) if tls else None
        self.ca_file = self.tls[0] if self.tls else None
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.binary = binary()
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """What a client needs (the AWS_* variables the runtime and `onnxops push` read)."""
        env = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }
        if self.ca_file is not None:
            env["AWS_CA_BUNDLE"] = str(self.ca_file)
        else:
            env["AWS_ALLOW_HTTP"] = "true"
        return env

    def bucket(self, name: str) -> Path:
        path = self.data / name
        path.mkdir(exist_ok=True)
        return path

    def start(self) -> None:
        argv = [str(self.binary), "--access", ACCESS_KEY, "--secret", SECRET_KEY]
        argv += ["--region", REGION, "--port", f"127.0.0.1:{self.port}"]
        if self.tls is not None:
            argv += ["--cert", str(self.tls[1]), "--key", str(self.tls[2])]
        argv += ["posix", str(self.data)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"versitygw exited: {self.log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("versitygw did not listen in 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def running(work_dir: Path, *, tls: bool = False) -> Iterator[S3Server]:
    server = S3Server(work_dir, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
