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
400 {"error": message} and shown on the page; anything else is 500 {"error": ...}, logged with its
traceback and counted in ``PageServer.internal_errors`` (tests assert it stays 0).
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


class PageServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its PageModel; ``port`` 0 picks a free port (tests)."""
    daemon_threads = True

    def __init__(self, model: PageModel, host: str = "127.0.0.1", port: int = 8000,
                 quiet: bool = False) -> None:
        self.model, self.quiet = model, quiet
        self.internal_errors = 0
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
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
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
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise SSAGANError(f"request of {length} bytes is too large (at most {MAX_BODY}).")
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SSAGANError(f"the request body is not JSON: {e}") from e
        self._json(HTTPStatus.OK, self.server.model.respond(payload))
