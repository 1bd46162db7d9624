"""Fault probe sections added for issue 23 (``bench/faults/fault_probe.py`` runs them):

(c) Two starts in one folder. The same tiny training is started twice, 1 s apart, with different
    seeds, in one run folder. Good: exactly one exits 0, the other exits 2 with one ``error:`` line
    naming the folder, and the folder holds the winner's run only (its seed in config.yaml and
    latest.pth, one TensorBoard event file, no config_history.yaml, no lock file left).
(d) Hostile requests to the page. ``python app.py`` serves the probe's trained generator; each request
    of ``PAGE_REQUESTS`` is sent over a raw socket. Good: a 2xx or a 4xx whose body is one JSON line,
    within 40 s (the server's socket timeout is 30 s), and the server still answers afterwards.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from bench.faults.fault_fixture import ROOT, Fixture
from tests.helpers import http_exchange


def two_starts(fixture: Fixture, epochs: int, env: dict, timeout: float) -> dict:
    """Section (c); returns the figures and a verdict."""
    import torch
    import yaml
    seeds = (11, 22)
    procs = []
    for seed in seeds:
        argv = fixture.gan(flags=("--manualSeed", str(seed)), epochs=epochs)
        procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, errors="replace"))
        time.sleep(1.0)
    outputs = [p.communicate(timeout=timeout) for p in procs]
    codes = [p.returncode for p in procs]
    run = fixture.out / "run"
    result = {"exit_codes": codes, "problems": []}
    if sorted(codes) != [0, 2]:
        result["problems"].append(f"exit codes {codes}, expected one 0 and one 2")
        return result
    winner = codes.index(0)
    errors = [line for line in outputs[1 - winner][1].splitlines() if line.startswith("error:")]
    result["refusal"] = errors[0] if errors else None
    if len(errors) != 1 or str(run) not in errors[0] or "Traceback" in outputs[1 - winner][1]:
        result["problems"].append("the refusal is not one line naming the folder")
    seed = seeds[winner]
    config_seed = yaml.safe_load((run / "config.yaml").read_text())["SEED"]
    latest_seed = torch.load(run / "models" / "latest.pth", weights_only=True)["config"]["SEED"]
    events = len(list((run / "tb").iterdir()))
    leftovers = sorted(p.name for p in fixture.out.iterdir() if p.name != "run")
    result.update(config_seed=config_seed, latest_seed=latest_seed, winner_seed=seed, tb_event_files=events,
                  config_history=(run / "config_history.yaml").exists(), other_files=leftovers)
    if not (config_seed == latest_seed == seed) or events != 1 or result["config_history"] or leftovers:
        result["problems"].append("the folder mixes the two runs' files")
    return result


# (name, raw request, acceptable statuses)
def _post(body: bytes, *headers: str) -> bytes:
    head = ["POST /api/generate HTTP/1.1", "Host: probe", "Content-Type: application/json", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _gen(**fields) -> bytes:
    body = json.dumps({"captions": ["this bird is red"], "n": 1, **fields}).encode()
    return _post(body, f"Content-Length: {len(body)}")


_INF_BODY = b'{"captions": ["this bird is red"], "n": 1e999}'
PAGE_REQUESTS: list[tuple[str, bytes, bool]] = [
    # (what, request, close the write side after sending)
    ("a valid request", _gen(seed=3), True),
    ("seed '--5'", _gen(seed="--5"), True),
    ("seed '²'", _gen(seed="²"), True),
    ("n '1e3'", _gen(n="1e3"), True),
    ("n 1e999 (a JSON float overflowing to inf)", _post(_INF_BODY, f"Content-Length: {len(_INF_BODY)}"), True),
    ("Content-Length: abc", _post(b"{}", "Content-Length: abc"), True),
    ("Content-Length: -1", _post(b"{}", "Content-Length: -1"), True),
    ("two different Content-Length headers", _post(b"{}", "Content-Length: 2", "Content-Length: 3"), True),
    ("Content-Length over the 64 KiB cap", _post(b"{}", "Content-Length: 99999999"), True),
    ("Content-Length larger than the body, client closes", _post(b"{}", "Content-Length: 50"), True),
    ("Content-Length larger than the body, client waits", _post(b"{}", "Content-Length: 50"), False),
    ("Transfer-Encoding: chunked", _post(b"2\r\n{}\r\n0\r\n\r\n", "Transfer-Encoding: chunked"), True),
    ("60,000 nested '['", _post(b"[" * 60000, "Content-Length: 60000"), True),
    ("a 5,000-digit number as body", _post(b"7" * 5000, "Content-Length: 5000"), True),
    ("invalid UTF-8 body", _post(b"\xff\xfe{}", "Content-Length: 4"), True),
    ("PUT", b"PUT /api/generate HTTP/1.1\r\nHost: probe\r\n\r\n", True),
    ("HEAD /", b"HEAD / HTTP/1.1\r\nHost: probe\r\n\r\n", True),
    ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\nHost: probe\r\n\r\n", True),
    ("garbage request line (a TLS hello)", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", True),
    ("an unknown path", b"GET /etc/passwd HTTP/1.1\r\nHost: probe\r\n\r\n", True),
]


def _exchange(port: int, data: bytes, close_write: bool, timeout: float) -> tuple[Optional[int], bytes, float]:
    start = time.monotonic()
    try:
        head, body = http_exchange("127.0.0.1", port, data, close_write, timeout)
    except OSError:  # socket.timeout is an OSError
        return None, b"", time.monotonic() - start
    match = re.match(rb"HTTP/\d\.\d (\d{3})", head)
    return (int(match.group(1)) if match else None), body, time.monotonic() - start


def page_requests(fixture: Fixture, netg: Path, env: dict) -> dict:
    """Section (d); returns one row per request and the problems."""
    argv = [sys.executable, str(ROOT / "app.py"), "--cfg", str(ROOT / "cfg" / "bird.yml"), "--gpu", "-1",
            "--data_dir", str(fixture.birds), "--netG", str(netg), "--port", "0", "--opts",
            "TEXT.DAMSM_NAME", str(fixture.text_encoder), "TREE.BASE_SIZE", "64", "TRAIN.NF", "4"]
    server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace")
    rows, problems = [], []
    try:
        port = None
        for line in server.stdout:
            found = re.search(r"serving http://[^:]+:(\d+)/", line)
            if found:
                port = int(found.group(1))
                break
        if port is None:
            return {"rows": [], "problems": ["the page server did not start"]}
        for what, data, close_write in PAGE_REQUESTS:
            status, body, seconds = _exchange(port, data, close_write, timeout=40)
            one_line = body.strip().count(b"\n") == 0
            try:
                json_ok = status is not None and (status < 300 or "error" in json.loads(body))
            except ValueError:
                json_ok = what.startswith("HEAD") and not body  # HEAD answers carry no body
            good = status is not None and status < 500 and one_line and json_ok
            rows.append({"request": what, "status": status, "seconds": round(seconds, 1), "good": good,
                         "answer": body[:160].decode("utf-8", "replace")})
            if not good:
                problems.append(f"{what}: status {status}")
        alive, _, _ = _exchange(port, b"GET /api/info HTTP/1.1\r\nHost: probe\r\n\r\n", True, timeout=20)
        if alive != 200:
            problems.append("the server no longer answers")
    finally:
        server.kill()
        server.wait()
    log = server.stdout.read() if server.stdout else ""
    if "Traceback" in log:
        problems.append("the server printed a traceback")
    return {"rows": rows, "problems": problems}
