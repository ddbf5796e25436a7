"""The Flask example in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by selenium; nothing is downloaded) types a prompt, sees the
tokens stream in, and closing the tab cancels the upstream request."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.test_web import EXAMPLES, PYTHON, Subprocess, Upstream, example_env, free_port

pytestmark = pytest.mark.timeout(120)

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and os.path.exists(p)), None)
DRIVER = next((p for p in (os.environ.get("CHROMEDRIVER"), shutil.which("chromedriver"), "/usr/bin/chromedriver")
               if p and os.path.exists(p)), None)


@pytest.fixture
def browser():
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("chromium / chromium-driver not found and not installable here "
                    "(.ci/run installs them with apt-get when run as root): apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1000,700", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_flask_chat_page_streams_then_closing_the_tab_cancels_upstream(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upstream = Upstream(interval=0.05)
    port = free_port()
    server = Subprocess([PYTHON, str(EXAMPLES / "flask_chat" / "app.py")], port, tmp_path,
                        example_env(upstream, port), ready="/")
    try:
        home = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(f"http://127.0.0.1:{port}/")
        assert "llmlib chat" in browser.title
        box = browser.find_element(By.ID, "prompt")
        box.send_keys("talk to me")
        browser.find_element(By.ID, "send").click()
        answer = WebDriverWait(browser, 20).until(
            lambda d: d.find_element(By.ID, "answer-1") if "tok3" in d.find_element(By.ID, "answer-1").text
            else False)
        assert answer.text.startswith("tok0 tok1 tok2 tok3")
        shot = tmp_path / "flask_chat.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
        record = upstream.records[-1]
        assert record["mode"] == "talk" and record["closed_at"] is None
        closed_tab = time.monotonic()
        browser.close()  # the tab; the browser session goes on
        browser.switch_to.window(home)
        closed = upstream.wait_closed(record, 10)
        assert closed is not None, "closing the tab did not cancel the upstream request"
        assert closed - closed_tab < 1.0, closed - closed_tab
    finally:
        server.close()
        upstream.close()
