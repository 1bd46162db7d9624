"""HTTP for the interactive page: the standard library's threading server, a static page, a JSON API.

Routes (all on one origin; the page fetches nothing from elsewhere, and the Content-Security-Policy
header forbids it, so the page works offline and cannot phone home):

    GET  /                      the page (miscc/page/static/index.html)
    GET  /static/<file>         page.js, page.css
    GET  /api/info              model description, limits, example captions (PageModel.info)
    POST /api/generate          {"captions": [...], "n": 8, "seed": 100} -> images and masks
    GET  /api/progress          {"done": k, "total": N} of the request being generated
    GET  /api/grid/<id>.png     the grid of a recent answer, for download

A user mistake (an empty caption, a caption without a known word, a bad number) is answered
400 {"error": message} and shown on the page. A malformed request is a 4xx with one line too: a
Content-Length that is not a number, conflicting or too large (413), a body shorter than announced
(408 once ``REQUEST_TIMEOUT_S`` passes without it: every connection has that socket timeout), a
chunked body (411), an unknown method (405), a request line the standard library cannot parse (400).
Anything else is a bug: 500 {"error": ...}, logged with its traceback and counted in
``PageServer.internal_errors`` (tests assert it stays 0).
"""
from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from miscc.errors import SSAGANError
from miscc.page.model import PageModel

STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATIC_TYPES = {"index.html": "text/html; charset=utf-8", "page.js": "text/javascript; charset=utf-8",
                 "page.css": "text/css; charset=utf-8"}
_GRID = re.compile(r"^/api/grid/([0-9a-f]{1,32})\.png$")
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'")
MAX_BODY = 64 * 1024
REQUEST_TIMEOUT_S = 30.0  # a client that stops sending (or never sends its announced body) frees its thread
_DIGITS = re.compile(r"[0-9]{1,12}")


class ClientError(SSAGANError):
    """A malformed request: answered with ``status`` (a 4xx) and one line saying what is wrong."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


class PageServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its PageModel; ``port`` 0 picks a free port (tests)."""
    daemon_threads = True

    def __init__(self, model: PageModel, host: str = "127.0.0.1", port: int = 8000,
                 quiet: bool = False) -> None:
        self.model, self.quiet = model, quiet
        self.internal_errors = 0
        self.request_timeout = REQUEST_TIMEOUT_S
        super().__init__((host, port), PageHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start_background(self) -> threading.Thread:
        """Serve on a daemon thread (tests, notebooks); ``shutdown()`` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="page-server", daemon=True)
        thread.start()
        return thread


class PageHandler(BaseHTTPRequestHandler):
    server: PageServer
    server_version = "SSAGAN-page"

    @property
    def timeout(self) -> float:  # read by StreamRequestHandler.setup for the connection's socket
        return self.server.request_timeout

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """The base class's answers to unparsable requests, as 4xx JSON with one line: an unknown method
        is 405 (not 501), an unsupported HTTP version 400 (not 505): the request is what is wrong."""
        code = int(code)
        extra = {"Connection": "close"}
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, extra["Allow"] = HTTPStatus.METHOD_NOT_ALLOWED, "GET, POST"
        elif code >= 500:
            code = HTTPStatus.BAD_REQUEST
        message = " ".join((message or HTTPStatus(code).phrase).split())
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            # Set when the request line did not parse: the base class would answer with a bare body,
            # and the client could not tell an error from a page.
            self.request_version = "HTTP/1.0"
        body = json.dumps({"error": message}).encode("utf-8")
        try:
            self._send(code, b"" if self.command == "HEAD" else body, "application/json", extra)
        except OSError:
            pass  # the client went away

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _guarded(self, handler) -> None:
        try:
            handler()
        except SSAGANError as e:
            status = getattr(e, "status", HTTPStatus.BAD_REQUEST)
            if status != HTTPStatus.BAD_REQUEST or isinstance(e, ClientError):
                self.close_connection = True  # the rest of the stream cannot be trusted
            self._json(status, {"error": str(e)})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away; nothing to answer
        except Exception as e:  # a bug: answer, log, count, keep serving
            self.server.internal_errors += 1
            traceback.print_exc(file=sys.stderr)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                       {"error": f"internal error: {type(e).__name__}: {e}"})

    def do_GET(self) -> None:  # noqa: N802 (the base class's name)
        self._guarded(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guarded(self._post)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        model = self.server.model
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/") and path[len("/static/"):] in _STATIC_TYPES:
            self._static(path[len("/static/"):])
        elif path == "/api/info":
            self._json(HTTPStatus.OK, model.info())
        elif path == "/api/progress":
            self._json(HTTPStatus.OK, model.progress)
        elif _GRID.match(path):
            png = model.grid_png(_GRID.match(path).group(1))
            if png is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": "that grid is no longer kept: generate again."})
            else:
                self._send(HTTPStatus.OK, png, "image/png",
                           {"Content-Disposition": 'attachment; filename="ssagan_grid.png"'})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page at {path}"})

    def _static(self, name: str) -> None:
        self._send(HTTPStatus.OK, (STATIC_DIR / name).read_bytes(), _STATIC_TYPES[name])

    def _post(self) -> None:
        if self.path.split("?", 1)[0] != "/api/generate":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no API at {self.path}"})
            return
        body = self._read_body()
        try:
            payload = json.loads(body or b"null")
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: JSON, and ints over 4300 digits
            raise SSAGANError(f"the request body is not JSON: {str(e)[:200]}") from e
        self._json(HTTPStatus.OK, self.server.model.respond(payload))

    def _read_body(self) -> bytes:
        """The body of a POST, by a strictly checked Content-Length (no chunked bodies), within MAX_BODY
        and the socket timeout: a wrong length answers 4xx instead of holding the thread."""
        if self.headers.get("Transfer-Encoding"):
            raise ClientError("chunked request bodies are not accepted: send a Content-Length.",
                              HTTPStatus.LENGTH_REQUIRED)
        values = [v.strip() for v in self.headers.get_all("Content-Length") or []]
        if not values:
            return b""
        if len(set(values)) > 1:
            raise ClientError(f"conflicting Content-Length headers {values}.")
        if not _DIGITS.fullmatch(values[0]):
            raise ClientError(f"Content-Length {values[0][:40]!r} is not a number of bytes.")
        length = int(values[0])
        if length > MAX_BODY:
            raise ClientError(f"request of {length} bytes is too large (at most {MAX_BODY}).",
                              HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise ClientError(f"the request body did not arrive: Content-Length says {length} bytes, none came "
                              f"for {self.server.request_timeout:g} s.", HTTPStatus.REQUEST_TIMEOUT) from None
        if len(body) < length:
            raise ClientError(f"the request body has {len(body)} bytes, Content-Length says {length}.")
        return body
