"""`Team`: a store on real engines plus the environment that points writer processes and servers at it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from mlkeep.store import Store


@dataclass
class Team:
    """A store on real engines plus the environment that points a writer process at it."""

    store: Store
    env: dict[str, str]
    kind: str

    def run(self, *args: object, timeout: float = 120) -> list[list[str]]:
        """Run `scale_workers.py ARGS` to the end; its output lines, split."""
        proc = subprocess.run([sys.executable, str(WORKERS), *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return [line.split() for line in proc.stdout.splitlines()]

    def start(self, *args: object) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(WORKERS), *map(str, args)], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @contextmanager
    def server(self) -> Iterator[str]:
        """`mlkeep server` over this store on a free loopback port, until the block ends; yields its URL."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "mlkeep.cli", "server", "--port", str(port)],
                                env={**self.env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            _wait_for(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def in_threads(work: Callable[[int], None], n: int) -> None:
    """`work(0)` ... `work(n - 1)`, each in a thread of its own, all at once; re-raises the first error."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "mlkeep server exited")
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"mlkeep server at {url} did not answer in 60 s")


WORKERS = Path(__file__).with_name("scale_workers.py")
