"""A real browser uploads a real cell through the dashboard and sees the answer."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from dashboard.local_server import CHROMIUM, CHROMIUM_FLAGS, running_server

from .conftest import ROOT

OUTPUT = ROOT / "test-output"


@pytest.fixture(scope="module")
def server():
    with running_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def test_upload_a_cell_and_see_its_class_and_chart(server, browser, pbc_examples):
    from playwright.sync_api import expect

    path, label = next((p, lab) for p, lab in pbc_examples if lab == "neutrophil")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Classify")
    page.locator('input[type="file"]').set_input_files(str(path))
    # The heading: the class and its probability, e.g. "neutrophil 99.1 %".
    expect(page.get_by_text(re.compile(rf"^{label} \d+\.\d %"))).to_be_visible(timeout=90_000)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "classify.png"), full_page=True)
    page.close()


def test_a_webp_cell_is_accepted_like_any_other(server, browser, pbc_examples, tmp_path):
    # Figures saved from the web are often WebP; the uploader must not turn them away.
    from PIL import Image
    from playwright.sync_api import expect

    path, label = next((p, lab) for p, lab in pbc_examples if lab == "eosinophil")
    webp = tmp_path / "textbook-figure.webp"
    Image.open(path).save(webp, format="WEBP", lossless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Classify")
    page.locator('input[type="file"]').set_input_files(str(webp))
    expect(page.get_by_text(re.compile(rf"^{label} \d+\.\d %"))).to_be_visible(timeout=90_000)
    page.close()


def test_a_non_image_upload_shows_an_error(server, browser, tmp_path):
    from playwright.sync_api import expect

    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a picture")
    page = browser.new_page()
    page.goto(f"{server}/Classify")
    page.locator('input[type="file"]').set_input_files(str(fake))
    expect(page.get_by_text("Could not classify")).to_be_visible(timeout=90_000)
    page.close()


def test_the_sidebar_names_every_page_and_leads_to_it(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # Opened at a page's own address, as a bookmark would, not through the home page.
    page.goto(f"{server}/Batch")
    expect(page.get_by_role("heading", name="Batch differential")).to_be_visible(
        timeout=90_000)
    sidebar = page.get_by_test_id("stSidebar")
    for name in ("Home", "Classify", "Explain", "Batch", "Model audit", "Atlas and quiz",
                 "Adapt to your lab"):
        expect(sidebar.get_by_text(name, exact=True)).to_be_visible()
    expect(sidebar.get_by_text("streamlit app")).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # Streamlit's own list
    sidebar.get_by_text("Home", exact=True).click()
    expect(page.get_by_role("heading", name="HematoVision", exact=True)).to_be_visible(
        timeout=90_000)
    sidebar.get_by_text("Classify", exact=True).click()
    expect(page.get_by_role("heading", name="Classify cells")).to_be_visible(timeout=90_000)
    assert page.url.rstrip("/").endswith("/Classify")
    page.close()


def test_an_uploaded_cell_is_still_there_after_a_visit_to_another_page(server, browser,
                                                                        pbc_examples):
    # Streamlit empties an uploader when its page is left; a teacher going back and forth
    # between pages must not have to upload the cell again.
    from playwright.sync_api import expect

    path, label = next((p, lab) for p, lab in pbc_examples if lab == "lymphocyte")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Classify")
    page.locator('input[type="file"]').set_input_files(str(path))
    answer = page.get_by_text(re.compile(rf"^{label} \d+\.\d %"))
    expect(answer).to_be_visible(timeout=90_000)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Batch", exact=True).click()
    expect(page.get_by_role("heading", name="Batch differential")).to_be_visible(
        timeout=90_000)
    sidebar.get_by_text("Classify", exact=True).click()
    expect(page.get_by_text("Cells uploaded before you opened another page")).to_be_visible(
        timeout=90_000)
    expect(answer).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Remove them").click()
    expect(page.get_by_text("Upload one or more cell images")).to_be_visible(timeout=30_000)
    page.close()


def test_the_server_stops_promptly_on_sigterm_after_classifying(browser, pbc_examples):
    # Once a cell is classified the server holds TensorFlow's and Keras' objects; Python's
    # last garbage collections at exit walked them all, 4–13 s after SIGTERM on a busy
    # machine (dashboard/__init__.py freezes them at exit instead).
    import signal
    import time

    from playwright.sync_api import expect

    from dashboard.local_server import start_server

    path, label = next((p, lab) for p, lab in pbc_examples if lab == "monocyte")
    process, url = start_server()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/Classify")
        page.locator('input[type="file"]').set_input_files(str(path))
        expect(page.get_by_text(re.compile(rf"^{label} \d+\.\d %"))).to_be_visible(
            timeout=90_000)
        page.wait_for_timeout(10_000)  # the Explain warm-up loads the Keras graph
        page.close()
        started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        stopped = time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert stopped < 3.0, f"{stopped:.1f} s from SIGTERM to exit"


def test_eleven_uploads_show_every_chip_and_thumbnail_names_stay_whole(server, browser):
    # Streamlit's chip box was 2½ rows high: the 11th chip was cut in half. Eight thumbnail
    # columns broke "BA_186830.jpg" into "BA_186830.jp" / "g: basophil".
    from playwright.sync_api import expect

    from .conftest import PBC

    files = sorted((PBC / "basophil").glob("*.jpg"))[:11]
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{server}/Batch")
    page.locator('input[type="file"]').set_input_files([str(path) for path in files])
    chips = page.get_by_test_id("stFileChip")
    expect(chips).to_have_count(11, timeout=90_000)
    box = page.get_by_test_id("stFileChips").bounding_box()
    for index in range(11):
        chip = chips.nth(index).bounding_box()
        assert box["y"] <= chip["y"] and chip["y"] + chip["height"] <= box["y"] + box["height"]
    page.get_by_role("button", name="Classify all").click()
    page.get_by_text("Thumbnails", exact=True).click(timeout=120_000)
    captions = page.get_by_test_id("stImageCaption")
    expect(captions).to_have_count(11, timeout=60_000)
    names = []
    for index in range(11):
        lines, height, line_height, fits, name = captions.nth(index).evaluate(
            "e => [e.innerText.split('\\n').length, e.getBoundingClientRect().height, "
            "parseFloat(getComputedStyle(e).lineHeight), e.scrollWidth <= e.clientWidth, "
            "e.innerText.split('\\n')[0]]")
        names.append(name)  # the name alone on the first line
        assert round(height / line_height) == lines  # no line wrapped
        assert fits  # and none cut at the column's edge
    assert sorted(names) == [path.name for path in files]
    page.close()


def test_the_value_in_the_answer_s_bar_is_readable(server, browser, pbc_examples):
    # Plotly shrank "100.0 %" to fit inside the red bar: about 8 px in a small chart.
    from playwright.sync_api import expect

    from hematovision.io.images import read_image
    from hematovision.model.classifier import Classifier
    from hematovision.model.prediction import UNFAMILIAR
    from hematovision.model.store import default_model_dir

    # Cells the default model finds familiar: an Unfamiliar cell shows no chart.
    candidates = [path for path, label in pbc_examples if label == "eosinophil"]
    answers = Classifier(default_model_dir()).predict([read_image(p) for p in candidates])
    paths = [p for p, a in zip(candidates, answers) if a.status != UNFAMILIAR][:3]
    assert len(paths) == 3
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Classify")
    page.locator('input[type="file"]').set_input_files([str(path) for path in paths])
    charts = page.locator(".js-plotly-plot")
    expect(charts.nth(len(paths) - 1)).to_be_visible(timeout=120_000)
    heights = charts.evaluate_all(
        "charts => charts.flatMap(c => [...c.querySelectorAll('text.bartext')])"
        ".filter(t => getComputedStyle(t).fill === 'rgb(255, 255, 255)')"  # inside: white
        ".map(t => t.getBoundingClientRect().height)")
    assert heights and min(heights) >= 12, heights
    page.close()
