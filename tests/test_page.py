"""The interactive page without a browser: PageModel and the HTTP API of miscc/page/server.py."""
from __future__ import annotations

import base64
import io
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from miscc.config import cfg
from miscc.page.model import PageModel
from miscc.page.server import STATIC_DIR, PageServer
from miscc.sample.sampler import sample
from tests.test_sampler import SIZE, models, setup  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STAGES = [4, 8, 16, 32, 64]


@pytest.fixture
def server(setup):
    srv = PageServer(PageModel.from_config("main"), port=0, quiet=True)
    srv.start_background()
    yield srv
    srv.shutdown()
    srv.server_close()
    assert srv.internal_errors == 0, "the server hit a bug (see the traceback above)"


def call(srv: PageServer, path: str, body=None, raw: bytes | None = None):
    """(status, headers, parsed JSON or bytes) of one request, errors included."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(srv.url.rstrip("/") + path, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, headers, payload = e.code, e.headers, e.read()
    if headers.get("Content-Type") == "application/json":
        payload = json.loads(payload)
    return status, headers, payload


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))) as im:
        return np.asarray(im)


def words(setup, count: int) -> list[str]:
    ds = setup["dataset"]
    return list(dict.fromkeys(ds.ixtoword[t] for c in ds.captions for t in c if len(ds.ixtoword[t]) >= 4))[:count]


def test_page_and_assets_are_served_offline_only(server):
    status, headers, html = call(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]  # the browser may fetch nothing else
    for name in ("page.js", "page.css"):
        assert call(server, f"/static/{name}")[0] == 200
    assert call(server, "/static/../app.py")[0] == 404 and call(server, "/nothing")[0] == 404
    for path in STATIC_DIR.iterdir():  # no external font, script, stylesheet or analytics
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|fonts\.", path.read_text()), path.name


def test_info_describes_the_model_and_offers_test_split_examples(server, setup):
    status, _, info = call(server, "/api/info")
    assert status == 200
    assert info["image_size"] == SIZE and info["stage_sizes"] == STAGES
    assert info["netG"] == str(setup["netG"]) and info["text_encoder"] == str(setup["damsm"])
    ds = setup["dataset"]
    test_captions = {" ".join(ds.ixtoword[t] for t in c) for c in ds.captions}
    assert info["examples"] and set(info["examples"]) <= test_captions
    assert info["vocabulary_size"] == len(ds.wordtoix) and info["seed"] == cfg.SEED


def test_generate_drops_unknown_words_and_returns_images_with_every_stage(server, setup):
    a, b = words(setup, 2)
    status, _, answer = call(server, "/api/generate", {"captions": [f"A {a.upper()} zqxwv {b}!"], "n": 3, "seed": 7})
    assert status == 200, answer
    (row,) = answer["rows"]
    known_a = "a" in setup["dataset"].wordtoix
    assert row["dropped"] == ["zqxwv"]
    assert [w["word"] for w in row["words"]] == ["a", a, "zqxwv", b]
    assert [w["known"] for w in row["words"]] == [known_a, True, False, True]
    assert row["read_as"] == " ".join(["a"] * known_a + [a, b])
    assert len(row["images"]) == 3 and len(row["masks"]) == 3
    assert all(decode(x).shape == (SIZE, SIZE, 3) for x in row["images"])
    assert [[decode(m).shape for m in own] for own in row["masks"]] == [[(s, s) for s in STAGES]] * 3
    assert len({x for x in row["images"]}) == 3, "three noise vectors, three images"
    assert answer["n"] == 3 and answer["seed"] == 7 and answer["stage_sizes"] == STAGES
    assert call(server, "/api/progress")[2] == {"done": 3, "total": 3}


def test_the_page_shows_what_the_sampler_writes(server, setup):
    """Same captions, seed and noise rule: the page's pixels are the sampler's files (shared code)."""
    a, b = words(setup, 2)
    texts = [f"{a} {b}", f"{b} zqxwv"]
    answer = call(server, "/api/generate", {"captions": texts, "n": 2, "seed": 5})[2]
    captions = setup["tmp"] / "page.txt"
    captions.write_text("\n".join(texts) + "\n")
    cfg.SEED = 5
    with pytest.warns(UserWarning, match="zqxwv"):
        out = sample(captions_file=str(captions), per_caption=2, same_noise=True, masks="all",
                     batch_size=server.model.batch)
    for c, row in enumerate(answer["rows"]):
        for j in range(2):
            name = f"{c * 2 + j:06d}"
            assert np.array_equal(decode(row["images"][j]), np.asarray(Image.open(out / "img" / f"{name}.png")))
            last = np.asarray(Image.open(out / "stage_mask" / f"{name}_s4.png"))
            assert np.array_equal(decode(row["masks"][j][-1]), last)


def test_compare_mode_rows_share_the_noise(server, setup):
    a, b = words(setup, 2)
    answer = call(server, "/api/generate", {"captions": [a, b, a], "n": 2, "seed": 3})[2]
    rows = answer["rows"]
    assert len(rows) == 3
    assert rows[0]["images"] == rows[2]["images"] and rows[0]["masks"] == rows[2]["masks"]
    assert all(x != y for x, y in zip(rows[0]["images"], rows[1]["images"]))
    # The seed fixes noise vector j whatever the number of captions (up to a grey level: other batch size).
    again = call(server, "/api/generate", {"captions": [a], "n": 2, "seed": 3})[2]
    for x, y in zip(again["rows"][0]["images"], rows[0]["images"]):
        assert np.abs(decode(x).astype(int) - decode(y)).max() <= 1
    other = call(server, "/api/generate", {"captions": [a], "n": 2, "seed": 4})[2]
    assert all(x != y for x, y in zip(other["rows"][0]["images"], rows[0]["images"]))


def test_grid_download_has_every_stage_per_image(server, setup):
    a, b = words(setup, 2)
    answer = call(server, "/api/generate", {"captions": [a, f"{b} zqxwv"], "n": 2, "seed": 1})[2]
    status, headers, png = call(server, answer["grid"])
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert "ssagan_grid.png" in headers["Content-Disposition"]
    grid = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    cell = SIZE + 2
    assert grid.shape[:2] == (2 + 4 * cell, 3 * SIZE + 6 * cell)  # 2 captions x 2 images, image + 5 masks
    x = 3 * SIZE
    assert np.array_equal(grid[2 + 3 * cell:2 + 3 * cell + SIZE, x:x + SIZE], decode(answer["rows"][1]["images"][1]))
    assert call(server, "/api/grid/0123456789ab.png")[0] == 404


@pytest.mark.parametrize("body, message", [
    ({"captions": [""]}, "caption is empty"),
    ({"captions": ["   "], "n": 2}, "caption is empty"),
    ({"captions": []}, "caption is empty"),
    ({"captions": ["zqxwv florble"]}, "no word the model knows"),
    ({"captions": ["..."]}, "contains no words"),
    ({"captions": ["bird", ""]}, "Caption 2: it is empty"),
    ({"captions": ["x"] * 5}, "at most 4 captions"),
    ({"captions": "bird"}, "list of strings"),
    ({"captions": ["bird"], "n": 0}, "n must be a whole number from 1 to 16"),
    ({"captions": ["bird"], "n": 17}, "n must be"),
    ({"captions": ["bird"], "seed": "abc"}, "seed must be"),
    ({"captions": ["bird"], "seed": -1}, "seed must be"),
    ([1, 2], "JSON object"),
])
def test_user_mistakes_are_messages_not_server_errors(server, setup, body, message):
    body = json.loads(json.dumps(body).replace('"bird"', json.dumps(words(setup, 1)[0])))
    status, _, answer = call(server, "/api/generate", body)
    assert status == 400 and message in answer["error"], answer


def test_too_long_caption_is_cut_and_shown_and_bad_json_is_a_message(server, setup):
    a, b = words(setup, 2)
    status, _, answer = call(server, "/api/generate", {"captions": [" ".join([a] * 18 + [b, b])], "n": 1})
    assert status == 200, answer
    (row,) = answer["rows"]
    assert row["cut"] == [b, b] and row["limit"] == 18 and row["read_as"] == " ".join([a] * 18)
    assert [w.get("cut", False) for w in row["words"]] == [False] * 18 + [True, True]
    assert row["marked"].endswith(f"[{b}] [{b}]")
    status, _, answer = call(server, "/api/generate", raw=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]


def test_app_command_line_errors_are_one_line(setup, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app.main(["--cfg", "cfg/demo.yml", "--gpu", "-1", "--netG", str(setup["tmp"] / "missing.pth")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "missing.pth does not exist" in err and "quickstart" in err
    args = app.build_parser().parse_args([])
    assert (args.cfg_file, args.port, args.host, args.mode) == ("cfg/demo.yml", 8000, "127.0.0.1", "main")
    assert Path(app.__file__).name == "app.py"
