"""Drive the server's page in headless Chromium: type a question, wait for the rewrite, optionally screenshot.

    python -m qrewrite serve --model weights/<run> &
    python scripts/serve_screenshot.py --url http://127.0.0.1:8000/ --out docs/serve.png

Uses Debian's Chromium and chromedriver through Selenium (`apt-get install -y chromium chromium-driver`,
`pip install selenium`); the test suite uses the same functions. Nothing is downloaded: both paths are given
to Selenium, so its driver manager never runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

INSTALL_HINT = ("install them with `apt-get update && apt-get install -y chromium chromium-driver` (Debian/Ubuntu; "
                "`bash .ci/run` does this) and `pip install selenium`")
# Chromium as root in a closed network: no sandbox, no GPU, nothing that phones home
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=900,620"]


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either (or selenium) is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError(f"Chromium, chromedriver or selenium not found: {INSTALL_HINT}")
    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="qrewrite-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def rewrite_in_page(driver, url: str, question: str, timeout: float = 60) -> dict:
    """Open the page, type ``question``, press Enter; -> the shown rewrite, time line and model name."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.find_element(By.ID, "model").text not in ("", "…"))
    box = driver.find_element(By.ID, "question")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: d.find_element(By.ID, "result").is_displayed() or d.find_element(By.ID, "error").text)
    text = lambda i: driver.find_element(By.ID, i).get_property("textContent")  # noqa: E731 - exact, unnormalised
    return {"rewrite": text("rewrite"), "time": text("time"), "model": text("model"), "error": text("error")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000/")
    p.add_argument("--question", default="What year no sorry which city hosted the 1996 summer games?")
    p.add_argument("--out", default="docs/serve.png", help="screenshot file (PNG)")
    args = p.parse_args(argv)
    with chromium() as driver:
        shown = rewrite_in_page(driver, args.url, args.question)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(args.out)
    print(f"{args.question!r} -> {shown['rewrite']!r} ({shown['time']}); screenshot: {args.out}")
    return 0 if not shown["error"] else 1


if __name__ == "__main__":
    sys.exit(main())
