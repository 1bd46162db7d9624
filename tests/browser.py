"""Headless Chromium for the interactive page: the driver the browser test uses, and the README shot.

    python -m tests.browser --out docs/img/page.png [app.py flags: --cfg, --netG, --gpu ...]

starts the page on the model app.py would load, compares three example captions (one with a word
the model does not know) under the same noise, and saves a screenshot, reduced to 256 colours.
Needs Debian's ``chromium`` and ``chromium-driver`` and the Python package ``selenium``
(requirements-app.txt). The browser runs with every host but this machine unresolvable, so a page
that fetched anything from the network would show it.
"""
from __future__ import annotations

import base64
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

INSTALL_HINT = ("apt-get install -y chromium chromium-driver && "
                "python -m pip install -r requirements-app.txt")


def find_browser() -> Optional[tuple[str, str]]:
    """(chromium, chromedriver) executables, or None."""
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def missing_browser_reason() -> Optional[str]:
    """Why no browser test can run here (with the install lines), or None when one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"the Python package selenium is missing; install: {INSTALL_HINT}"
    if find_browser() is None:
        return f"no chromium + chromedriver on PATH; install: {INSTALL_HINT}"
    return None


def chromium_driver(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium WebDriver that can reach 127.0.0.1 only, console logs kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError(missing_browser_reason())
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--hide-scrollbars", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=found[1]))


def wait_idle(driver: Any, timeout: float = 120) -> None:
    """Until the page is loaded and no request is in flight (page.js keeps body[data-state])."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "return document.body.dataset.ready === '1' && document.body.dataset.state === 'idle'"))


def save_small_png(png: bytes, out: Path, colours: int = 256) -> int:
    """Save a screenshot with a ``colours`` palette (a few times smaller); returns the size in bytes."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        small = im.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    small.save(out, optimize=True)
    return out.stat().st_size


def main(argv: Optional[list[str]] = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import app
    from miscc.config.cli import apply_args
    from miscc.page.model import PageModel
    from miscc.page.server import PageServer

    parser = app.build_parser()
    parser.add_argument("--out", default="docs/img/page.png")
    parser.add_argument("--captions", nargs="+", default=None,
                        help="captions to compare (default: two test examples and one with an unknown word)")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--width", type=int, default=1180)
    parser.add_argument("--max_height", type=int, default=1800, help="the shot is the page's height, at most this")
    args = parser.parse_args(argv)
    apply_args(args)
    model = PageModel.from_config(args.mode, args.netG, args.text_encoder)
    server = PageServer(model, port=0, quiet=True)
    server.start_background()
    driver = chromium_driver(args.width, 900)
    try:
        driver.get(server.url)
        wait_idle(driver)
        captions = args.captions or [model.examples[0], model.examples[0].replace(
            model.examples[0].split()[-1], "grey", 1), model.examples[1]]
        driver.find_element("css selector", "input[name=mode][value=compare]").click()
        for i, text in enumerate(captions):
            driver.find_element("id", f"compare-{i}").send_keys(text)
        n = driver.find_element("id", "n")
        n.clear()
        n.send_keys(str(args.n))
        driver.find_element("id", "generate").click()
        wait_idle(driver)
        height = min(driver.execute_script("return document.documentElement.scrollHeight"), args.max_height)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {  # the whole page, not the window
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": args.width, "height": height, "scale": 1}})
        size = save_small_png(base64.b64decode(shot["data"]), Path(args.out))
        print(f"{args.out}: {size / 1024:.0f} KiB")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
