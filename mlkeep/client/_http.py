"""The one place that speaks HTTP: requests, streaming, and errors re-raised as mlkeep's own classes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from mlkeep import errors

CHUNK = 1 << 20
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def error_from(response: httpx.Response) -> errors.MlkeepError:
    """The mlkeep error a failed response carries (`{"error": {"code", "message"}}`)."""
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        return errors.MlkeepError(f"The server answered {response.status_code}: {response.text[:200]}")
    cls = errors.error_for_code(code)
    if cls is errors.FilterSyntaxError:
        return errors.FilterSyntaxError(message, body.get("position"))
    if cls is errors.MergeConflictError:
        return errors.MergeConflictError(message, body.get("tensors"))
    return cls(message)


class Http:
    """An httpx client bound to one server, with the bearer token on every request."""

    def __init__(self, url: str, token: str | None = None, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if client is None:
            client = httpx.Client(base_url=self.url, timeout=TIMEOUT)
        client.headers.update(headers)
        self.client = client

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer (None for 204); a failed request raises its mlkeep error."""
        try:
            response = self.client.request(method, "/api" + path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.StoreNotFoundError(f"Cannot reach the mlkeep server at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from(response)
        return None if response.status_code == 204 or not response.content else response.json()

    def get(self, url: str, /, **params: Any) -> Any:
        return self.request("GET", url, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def upload(self, path: str, source: str | os.PathLike[str] | bytes, params: dict[str, Any] | None = None) -> Any:
        """PUT a file (streamed in chunks, never whole in memory) or bytes."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if isinstance(source, bytes):
            return self.request("PUT", path, content=source, params=params)
        return self.request("PUT", path, content=_chunks(Path(source)), params=params)

    def download(self, path: str, dest: str | os.PathLike[str], **params: Any) -> tuple[Path, httpx.Headers]:
        """Stream a response body into `dest` (temporary name, then renamed); returns it and the headers."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        try:
            with self.client.stream("GET", "/api" + path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                with open(tmp, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                headers = response.headers
            os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise errors.StoreNotFoundError(f"Cannot reach the mlkeep server at {self.url}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return dest, headers

    def close(self) -> None:
        self.client.close()


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
