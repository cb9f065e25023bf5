"""Server fixtures: an app over an in-memory store, called in-process; a real server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import mlkeep
from mlkeep.client import RemoteStore
from mlkeep.server import create_app
from mlkeep.store import Store

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    """The REST API of an in-memory store, called in-process (no socket)."""
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def remote(store: Store) -> Iterator[RemoteStore]:
    """A RemoteStore talking to the in-memory store's app in-process."""
    client = TestClient(create_app(store), raise_server_exceptions=False)
    with RemoteStore("http://testserver", client=client) as r:
        yield r


@pytest.fixture
def auth_api(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, auth=True), raise_server_exceptions=False) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`mlkeep server` in a subprocess on a free loopback port, over a folder store."""

    def __init__(self, root: Path, auth: bool = False) -> None:
        self.root = root
        mlkeep.init(root).close()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "mlkeep.cli", "--store", str(root), "server", "--port", str(self.port)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("MLKEEP_URI", None)
        self.proc = subprocess.Popen(args + (["--auth"] if auth else []), env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stdout.read().decode() if self.proc.stdout else "server died")
        raise RuntimeError("mlkeep server did not start in 30 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live"))
    yield server
    server.stop()
