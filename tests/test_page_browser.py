"""The interactive page in a real headless Chromium (Debian's chromium + chromium-driver, selenium).

Skipped, saying how to install them, where they are missing. The screenshot is kept as an artefact in
``$SSAGAN_TEST_ARTIFACTS`` (default ``test-artifacts/``): page_browser.png.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from miscc.page.model import PageModel
from miscc.page.server import PageServer
from tests.test_sampler import SIZE, models, setup  # noqa: F401 (fixtures)
from tests.browser import chromium_driver, missing_browser_reason, wait_idle

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(missing_browser_reason() is not None,
                                 reason=f"browser test skipped: {missing_browser_reason()}")]

ARTIFACTS = Path(os.environ.get("SSAGAN_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
STAGES = [4, 8, 16, 32, 64]
N = 3


@pytest.fixture
def page(setup):
    server = PageServer(PageModel.from_config("main"), port=0, quiet=True)
    server.start_background()
    driver = chromium_driver(1280, 1000)
    try:
        driver.get(server.url)
        wait_idle(driver)
        yield driver, server
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


def js(driver, script: str):
    return driver.execute_script(script)


def submit(driver) -> None:
    driver.find_element("id", "generate").click()
    wait_idle(driver)


def rows(driver) -> list[dict]:
    """Per result row: image sources, natural sizes of images and masks, struck words."""
    return js(driver, """return [...document.querySelectorAll('#results .row')].map(row => ({
        images: [...row.querySelectorAll('.sample .image')].map(i => i.src),
        sizes: [...row.querySelectorAll('.sample .image')].map(i => [i.naturalWidth, i.complete]),
        masks: [...row.querySelectorAll('.sample')].map(s =>
            [...s.querySelectorAll('.stage .mask')].map(m => m.naturalWidth)),
        dropped: [...row.querySelectorAll('del.dropped')].map(d => d.textContent),
        noise: [...row.querySelectorAll('.sample')].map(s => s.dataset.noise)}));""")


def test_the_page_in_chromium(page, setup):
    from selenium.webdriver.support.ui import Select

    driver, server = page
    ds = setup["dataset"]
    known = [ds.ixtoword[t] for t in ds.captions[0][:4]]
    examples = [o.get_attribute("value") for o in driver.find_elements("css selector", "#examples option")]
    assert len(examples) > 1 and examples[0] == "", "example captions from the test split are offered"
    Select(driver.find_element("id", "examples")).select_by_index(1)
    assert driver.find_element("id", "caption").get_attribute("value") == examples[1]
    driver.find_element("id", "caption").clear()

    # One caption with one unknown word, N images.
    driver.find_element("id", "caption").send_keys(" ".join(known[:2] + ["zqxwv"] + known[2:]))
    n = driver.find_element("id", "n")
    n.clear()
    n.send_keys(str(N))
    submit(driver)
    (row,) = rows(driver)
    assert len(row["images"]) == N and all(w == SIZE and done for w, done in row["sizes"])
    assert row["masks"] == [STAGES] * N, "the mask of every stage, at its own size, under each image"
    assert row["dropped"] == ["zqxwv"]
    note = driver.find_element("css selector", "#results .dropped-note").text
    assert "zqxwv" in note
    assert driver.find_element("css selector", "#results del.dropped").value_of_css_property(
        "text-decoration-line") == "line-through"
    assert driver.find_element("id", "download").get_attribute("href").endswith(".png")

    # Masks as an overlay on the image.
    under = driver.find_element("css selector", "#results .stage .under")
    assert not under.is_displayed()
    driver.find_element("css selector", "input[name=view][value=overlay]").click()
    assert under.is_displayed()

    # An empty caption: a message on the page, no server error, the earlier results stay.
    driver.find_element("id", "caption").clear()
    submit(driver)
    message = driver.find_element("id", "message")
    assert message.is_displayed() and "empty" in message.text
    assert server.internal_errors == 0

    # Compare mode: rows one above the other under the same noise; a repeated caption repeats its row.
    # (2 images per caption: the 6 images are one generator batch, so equal inputs give equal bytes.)
    driver.find_element("css selector", "input[name=mode][value=compare]").click()
    n.clear()
    n.send_keys("2")
    a, b = " ".join(known[:3]), " ".join(known[1:])
    for i, text in enumerate([a, b, a]):
        driver.find_element("id", f"compare-{i}").send_keys(text)
    submit(driver)
    assert not driver.find_element("id", "message").is_displayed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "page_browser.png"))
    compared = rows(driver)
    assert len(compared) == 3 and all(len(r["images"]) == 2 for r in compared)
    assert [r["noise"] for r in compared] == [["0", "1"]] * 3
    assert compared[0]["images"] == compared[2]["images"], "same caption, same noise: same images"
    assert all(x != y for x, y in zip(compared[0]["images"], compared[1]["images"]))
    tops = [r["y"] for r in js(driver, "return [...document.querySelectorAll('#results .row')]"
                                       ".map(r => r.getBoundingClientRect())")]
    assert tops == sorted(tops) and len(set(tops)) == 3, "rows one above the other"

    # Nothing was fetched from anywhere but this server (data: URLs are the images themselves).
    fetched = js(driver, "return performance.getEntriesByType('resource').map(e => e.name)")
    assert fetched and all(u.startswith(server.url) for u in fetched), fetched
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert all("status of 400" in m for m in severe), severe  # only the empty caption's answer
    assert server.internal_errors == 0
