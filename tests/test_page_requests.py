"""Malformed requests to the page server (issue 23): each is a 4xx with one line, none a 500 or a hang."""
from __future__ import annotations

import json
import time

import pytest

from tests.helpers import http_exchange
from tests.test_page import call, server, words  # noqa: F401 (fixtures)
from tests.test_sampler import models, setup  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def raw(srv, data: bytes, close_write: bool = True, timeout: float = 30) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one raw HTTP exchange."""
    head, body = http_exchange(*srv.server_address[:2], data, close_write, timeout)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def post(body: bytes, *headers: str) -> bytes:
    head = ["POST /api/generate HTTP/1.1", "Host: x", "Content-Type: application/json", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def one_line_error(status: int, headers: dict, body: bytes, expected: int, needle: str) -> None:
    assert status == expected, (status, body)
    assert headers.get("Content-Type") == "application/json" and b"\n" not in body.strip()
    assert needle in json.loads(body)["error"], body


@pytest.mark.parametrize("seed", ["--5", "²", "1e3", "5.5", " 7 x", "٣"])
def test_numbers_are_parsed_strictly(server, setup, seed):
    status, _, answer = call(server, "/api/generate", {"captions": [words(setup, 1)[0]], "n": 1, "seed": seed})
    assert status == 400 and "seed must be a whole number" in answer["error"], answer
    status, _, answer = call(server, "/api/generate", {"captions": [words(setup, 1)[0]], "n": seed})
    assert status == 400 and "n must be a whole number" in answer["error"], answer
    assert call(server, "/api/generate", {"captions": [words(setup, 1)[0]], "n": " 2 ", "seed": "-0"})[0] == 200


@pytest.mark.parametrize("headers, expected, needle", [
    (("Content-Length: abc",), 400, "Content-Length 'abc' is not a number"),
    (("Content-Length: -1",), 400, "Content-Length '-1' is not a number"),
    (("Content-Length: 1e3",), 400, "is not a number"),
    (("Content-Length: 2", "Content-Length: 3"), 400, "conflicting Content-Length"),
    (("Content-Length: 99999999999",), 413, "too large"),
    (("Transfer-Encoding: chunked",), 411, "chunked"),
    (("Content-Length: 40",), 400, "the request body has 2 bytes, Content-Length says 40"),
])
def test_bad_content_length_headers_are_4xx_with_one_line(server, headers, expected, needle):
    one_line_error(*raw(server, post(b"{}", *headers)), expected, needle)


def test_a_body_shorter_than_its_content_length_times_out_with_408(server):
    server.request_timeout = 1.0
    start = time.monotonic()
    status, headers, body = raw(server, post(b"{}", "Content-Length: 40"), close_write=False)
    one_line_error(status, headers, body, 408, "none came for 1 s")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("request_bytes, expected, needle", [
    (b"PUT /api/generate HTTP/1.1\r\nHost: x\r\n\r\n", 405, "Unsupported method"),
    (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 405, None),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400, "HTTP"),
    (b"GET / HTTP/1.1 extra\r\n\r\n", 400, "Bad request"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "Bad"),
    (b"GET /nowhere%00 HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no page at"),
])
def test_unparsable_requests_are_4xx_json(server, request_bytes, expected, needle):
    status, headers, body = raw(server, request_bytes)
    assert status == expected, (status, body)
    if needle is not None:
        one_line_error(status, headers, body, expected, needle)


@pytest.mark.parametrize("body, needle", [
    (b"[" * 60000, "not JSON"),
    (b"1" * 5000, "not JSON"),
    (b"\xff\xfe{}", "not JSON"),
    (b'{"captions": ["a"], "n": 1e999}', "n must be"),
])
def test_hostile_bodies_are_400(server, body, needle):
    one_line_error(*raw(server, post(body, f"Content-Length: {len(body)}")), 400, needle)
