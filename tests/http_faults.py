"""A local HTTP server on 127.0.0.1 that serves files with injected faults, for tests.

Each route serves bytes (or a file on disk, streamed) and can misbehave a set
number of times before behaving: drop the connection after N bytes, stall
before the headers or in the middle of the body, answer a fixed error status,
ignore ``Range`` requests. It honours ``Range: bytes=N-`` (206, or 416 past the
end) and ``If-Range`` (a strong ETag), and logs every request it answered,
with the bytes of body it sent, so that tests can check what a client asked
for and how much it re-downloaded. It can also act as a minimal npm registry.

Used by ``tests/test_sources.py`` and ``benchmarks/download_throughput.py``.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 18


@dataclass
class Route:
    """What one path serves, and the faults it injects (each ``*_times`` counts down)."""

    data: bytes | None = None
    file: Path | None = None
    content_type: str = "application/octet-stream"
    status: int = 200  # a status other than 200 answers with `data` as the page, always
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None  # close the connection after this many body bytes...
    drop_times: int = 0  # ...in this many responses
    delay: float = 0.0  # sleep before the status line...
    delay_times: int = 0  # ...in this many responses
    stall_after: int | None = None  # sleep `stall` seconds after this many body bytes...
    stall: float = 0.0
    stall_times: int = 0  # ...in this many responses
    fail_status: int = 503  # answer this status (empty body)...
    fail_times: int = 0  # ...to this many requests (after the drops)
    ignore_range: bool = False  # always answer 200 with the whole file

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.file.stat().st_size

    @property
    def etag(self) -> str:
        if self.data is not None:
            return '"' + hashlib.sha256(self.data).hexdigest()[:20] + '"'
        info = self.file.stat()
        return f'"{info.st_size:x}-{info.st_mtime_ns:x}"'

    def open(self, start: int) -> BinaryIO:
        """The body from byte ``start``, as a file object."""
        handle = io.BytesIO(self.data) if self.data is not None else open(self.file, "rb")  # noqa: SIM115
        handle.seek(start)
        return handle


@dataclass
class Request:
    """One answered request: what was asked and what went back."""

    path: str
    range: str | None
    if_range: str | None
    status: int
    sent: int = 0  # body bytes written before the response ended or broke
    complete: bool = False


def _take(route: Route, counter: str) -> bool:
    """Whether a fault with ``<counter>`` remaining fires now (and count it down)."""
    left = getattr(route, counter)
    if left > 0:
        setattr(route, counter, left - 1)
        return True
    return False


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        with self.server.lock:
            route = self.server.routes.get(path)
            entry = Request(path, self.headers.get("Range"), self.headers.get("If-Range"), 404)
            self.server.requests.append(entry)
            delay = route.delay if route and _take(route, "delay_times") else 0.0
            drop = route.drop_after if route and _take(route, "drop_times") else None
            failing = bool(route) and drop is None and _take(route, "fail_times")
            stalled = bool(route) and route.stall_after is not None and _take(route, "stall_times")
        self.close_connection = True
        try:
            if delay:
                time.sleep(delay)
            if route is None:
                self._simple(entry, 404, b"not found", "text/plain")
            elif failing:
                self._simple(entry, route.fail_status, b"", "text/plain")
            elif route.status != 200:
                self._simple(entry, route.status, route.data or b"", route.content_type, route)
            else:
                self._serve(entry, route, drop, stalled)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout it was meant to hit)

    def _simple(
        self, entry: Request, status: int, body: bytes, ctype: str, route: Route | None = None
    ) -> None:
        entry.status = status
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (route.headers if route else {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        entry.sent, entry.complete = len(body), True

    def _serve(self, entry: Request, route: Route, drop: int | None, stalled: bool) -> None:
        size, etag = route.size, route.etag
        start = 0
        asked = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if asked.startswith("bytes=") and not route.ignore_range and if_range in (None, etag):
            first = asked[len("bytes=") :].split("-")[0]
            start = int(first) if first.isdigit() else 0
            if start >= size:
                entry.status = 416
                self.send_response(416)
                self.send_header("Connection", "close")
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                entry.complete = True
                return
        entry.status = 206 if start else 200
        self.send_response(entry.status)
        # One request per connection: clients must not reuse a socket this server closes.
        self.send_header("Connection", "close")
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(size - start))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "none" if route.ignore_range else "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        for key, value in route.headers.items():
            self.send_header(key, value)
        self.end_headers()
        with route.open(start) as body:
            self._send_body(entry, route, body, start, size, drop, stalled)

    def _send_body(
        self,
        entry: Request,
        route: Route,
        body: BinaryIO,
        start: int,
        size: int,
        drop: int | None,
        stalled: bool,
    ) -> None:
        position = start
        while position < size:
            step = min(BLOCK, size - position)
            if drop is not None:
                step = min(step, start + drop - position)
            if stalled and position < start + route.stall_after:
                step = min(step, start + route.stall_after - position)
            if step <= 0:
                break
            self.wfile.write(body.read(step))
            position += step
            entry.sent += step
            if stalled and position == start + route.stall_after:
                self.wfile.flush()
                time.sleep(route.stall)
                stalled = False
            if drop is not None and position >= start + drop:
                self.wfile.flush()
                # A clean close (FIN) after the bytes sent: the client sees a short body.
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        entry.complete = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()


class FaultServer:
    """A fault-injecting HTTP server on 127.0.0.1 (a context manager)."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return self.base + urllib.parse.quote(path)

    def route(self, path: str, **options: object) -> Route:
        """Serve ``path`` (replacing what it served before); returns the route to adjust."""
        route = Route(**options)  # type: ignore[arg-type]
        with self._server.lock:
            self._server.routes[path] = route
        return route

    def requests(self, path: str | None = None) -> list[Request]:
        """Requests answered so far (for ``path`` only, if given)."""
        with self._server.lock:
            return [r for r in self._server.requests if path is None or r.path == path]

    def sent(self, path: str) -> int:
        """Body bytes sent for ``path`` over all requests."""
        return sum(r.sent for r in self.requests(path))

    def npm_package(self, name: str, version: str, tarball: bytes) -> str:
        """Publish ``name@version`` in a minimal npm registry here; returns the registry URL.

        Serves the packument at ``/<name>`` (npm asks ``/@scope%2fname`` for scoped
        names, which unquotes to the same path) and the tarball under ``/-/``.
        """
        base_name = name.split("/")[-1]
        tar_path = f"/{name}/-/{base_name}-{version}.tgz"
        self.route(tar_path, data=tarball)
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
        manifest = {
            "name": name,
            "version": version,
            "dist": {
                "tarball": self.url(tar_path),
                "shasum": hashlib.sha1(tarball).hexdigest(),
                "integrity": integrity,
            },
        }
        packument = {
            "name": name,
            "dist-tags": {"latest": version},
            "versions": {version: manifest},
        }
        self.route(f"/{name}", data=json.dumps(packument).encode(), content_type="application/json")
        return self.base + "/"
