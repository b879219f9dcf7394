"""End to end in headless Chromium: the real server, the real page, a real CXR and a non-image.

Needs Debian's ``chromium`` and ``chromium-driver`` (installed by ``.ci/run``); without them the
test is skipped with the reason shown in the summary (``-ra``). ``CXR_SERVE_RUN`` serves another
run (default: the tiny test run) and ``CXR_SCREENSHOT`` also saves the screenshot there; the
README's picture is made this way from the demo run.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from classifier.inference.load_test import Server

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("headless browser test skipped: Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1300"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_the_page_classifies_an_upload_and_names_a_bad_file(browser, tiny_run, cxr3, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    run = os.environ.get("CXR_SERVE_RUN") or tiny_run[0]
    image = cxr3.select(split="test", label="covid")[0].file
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("meeting notes, not an X-ray\n")
    with Server(run) as server:
        browser.get(server.url)
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: "Model:" in b.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "files").send_keys(str(image))
        card = wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, ".card[data-state=done]")))
        bars = card.find_elements(By.CSS_SELECTOR, ".bar")
        assert [b.get_attribute("data-class") for b in bars] == ["normal", "covid", "pneumonia"]
        for bar in bars:  # each bar is as long as its probability
            shown_percent = float(bar.text.split()[-2])
            fill, track = bar.find_element(By.CSS_SELECTOR, ".fill"), bar.find_element(By.CSS_SELECTOR, ".track")
            assert fill.size["width"] / track.size["width"] == pytest.approx(shown_percent / 100, abs=0.02)
        overlay = card.find_element(By.CSS_SELECTOR, "img.overlay")
        assert overlay.get_attribute("src").startswith("data:image/png;base64,")
        assert browser.execute_script("return arguments[0].naturalWidth", overlay) > 0
        assert "Input check:" in card.find_element(By.CSS_SELECTOR, "[data-role=quality]").text
        card.find_element(By.XPATH, ".//button[text()='pneumonia']").click()
        assert overlay.get_attribute("alt") == "Grad-CAM for pneumonia"
        browser.find_element(By.ID, "files").send_keys(str(not_an_image))
        error = wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, ".card[data-state=error]")))
        assert "notes.png: not a readable image" in error.text
        assert "Refused (422)" in browser.find_element(By.ID, "status").text
        shot = tmp_path / "page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("CXR_SCREENSHOT"):
            Path(os.environ["CXR_SCREENSHOT"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, os.environ["CXR_SCREENSHOT"])
