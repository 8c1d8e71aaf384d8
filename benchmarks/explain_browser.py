"""The Explain panel in a real browser, from a fresh `streamlit run` to five new cells.

    python benchmarks/explain_browser.py [--cells 5] [--quick] [--no-naive]

Starts the dashboard afresh (`streamlit run streamlit_app.py` on 127.0.0.1) and drives it
with headless Chromium (Playwright, Debian's `chromium`), as a lecturer would:

1. **launch → first prediction**: from starting the server until the first uploaded
   held-out cell's answer and chart are on screen (target ≤ 6 s). The baseline is the
   naive app (`benchmarks/naive_app.py`: TensorFlow, Keras `model.predict`), started and
   timed the same way in the same run (`--no-naive` leaves it out).
2. **the panel, for each new cell** (held-out cells of different classes, each in a new
   tab, so each is a new session and a cell the server has not explained): the cell is
   uploaded on Classify, and once its answer and its probability chart are drawn,
   "Explain this prediction" is clicked. (A click before the chart is drawn waits for
   it: in a new tab the browser first loads Plotly, 1.0–1.7 s after the answer's text on
   this machine, and until then it draws nothing else; the server had Grad-CAM ready
   within 0.1 s of such clicks. The time from the answer's text to the drawn chart is
   printed beside each cell.) The times run from that click until Grad-CAM's map is on
   screen (target ≤ 1 s; the time to the Explain page's title, the page switch, is
   printed beside it) and until the whole panel is (every map and the download button; target ≤ 3 s
   median, ≤ 4 s for the first cell after launch). They are taken in the page itself
   (``performance.now()`` in a ``MutationObserver``), not by polling from Python. The
   baseline is the floor: the same four maps computed directly in this process with
   ``hematovision.explain.explain`` after the browser part, so the ratio says what
   serving them through Streamlit and a browser adds.
3. **server memory**: the peak resident memory of the streamlit process and its children,
   sampled every 0.2 s while the one user explains (target ≤ 0.9 GiB).

Timings taken while other programs run are slower; the script prints the load average
before and after so that a reader can tell.
``--quick`` explains one cell and skips the naive app (for the test suite).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_test import ANSWER, MemoryWatch  # noqa: E402

from dashboard.local_server import CHROMIUM, CHROMIUM_FLAGS, start_server, stop_server  # noqa: E402
from hematovision.io.dataset import test_split_files  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402

GIB = 1024 ** 2  # KiB per GiB

# Installed in the page before the click: when the Grad-CAM map, then the whole panel
# (the download button comes after the last map), is first in the page with its picture
# loaded. Streamlit's page switch keeps the document, so the observer sees it.
OBSERVER = """() => {
  const marks = window.__marks = {};
  const shown = (title) => [...document.querySelectorAll('[data-testid="stImageCaption"]')]
      .some(c => c.innerText.startsWith(title + ' (')
                 && [...(c.parentElement || c).querySelectorAll('img')].every(i => i.complete));
  const check = () => {
    const now = performance.now();
    if (marks.click === undefined) return;
    if (marks.page === undefined && [...document.querySelectorAll('h1')]
        .some(h => h.innerText.includes('Explain a prediction'))) marks.page = now;
    if (marks.gradcam === undefined && shown('Grad-CAM')) marks.gradcam = now;
    if (marks.done === undefined && shown('SHAP') && [...document.querySelectorAll('button')]
        .some(b => b.innerText.includes('Download the panel'))) marks.done = now;
  };
  document.addEventListener('click', () => { if (marks.click === undefined)
      marks.click = performance.now(); }, true);
  new MutationObserver(check).observe(document.body,
      {childList: true, subtree: true, characterData: true, attributes: true});
  setInterval(check, 20);
}"""


# Resolves after the browser has painted twice: the frame holding the chart is on screen.
DRAWN = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def first_prediction(script: str, page_name: str, image: Path, browser, env: dict,
                     answer: re.Pattern | None) -> tuple[float, object, object]:
    """Seconds from starting ``script``'s server to the first answer and chart on screen;
    returns the server and the tab, still open."""
    from playwright.sync_api import expect

    started = time.perf_counter()
    server, url = start_server(script, env)
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.goto(f"{url}/{page_name}")
    tab.locator('input[type="file"]').set_input_files(str(image))
    expect(tab.locator(".js-plotly-plot").first).to_be_visible(timeout=120_000)
    expect(tab.get_by_text(answer or re.compile(" — ")).first).to_be_visible(timeout=120_000)
    return time.perf_counter() - started, server, (tab, url)


def explain_cell(browser, url: str, image: Path) -> tuple[float, float, float, float]:
    """Upload ``image`` in a new tab, click "Explain this prediction" once the answer and
    its chart are drawn; seconds from the answer's text to the drawn chart, then from the
    click to the Explain page's title, to Grad-CAM on screen and to the whole panel."""
    from playwright.sync_api import expect

    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        tab.goto(f"{url}/Classify")
        tab.locator('input[type="file"]').set_input_files(str(image))
        expect(tab.get_by_text(ANSWER).first).to_be_visible(timeout=120_000)
        answered = time.perf_counter()
        button = tab.get_by_role("button", name="Explain this prediction")
        expect(button).to_be_visible(timeout=60_000)
        expect(tab.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=60_000)
        tab.evaluate(DRAWN)
        chart = time.perf_counter() - answered
        tab.evaluate(OBSERVER)
        button.click()
        tab.wait_for_function("() => window.__marks.done !== undefined", timeout=180_000,
                              polling=50)
        marks = tab.evaluate("() => window.__marks")
        return chart, *((marks[name] - marks["click"]) / 1000
                        for name in ("page", "gradcam", "done"))
    finally:
        tab.close()


def cells_of_different_classes(model: str, data: str, count: int) -> list[Path]:
    """The first launch cell, then ``count`` held-out cells, one class after another."""
    by_class: dict[str, list[Path]] = {}
    for path, label in test_split_files(model, data):
        by_class.setdefault(label, []).append(path)
    turns = [paths[len(paths) // 3 + turn] for turn in range(count + 1)
             for paths in by_class.values()]
    return turns[: count + 1]


def floor_seconds(model: str, cells: list[Path]) -> list[float]:
    """The same four maps per cell, computed in this process (no server, no browser), as
    the page computes them for a new cell: frame and classify once, then each method."""
    import numpy as np

    from hematovision.explain import available_methods, coalitions, explain
    from hematovision.io.images import read_image
    from hematovision.model.classifier import Classifier

    classifier = Classifier(model)
    methods = [m.name for m in available_methods()]
    blank = np.full((64, 64, 3), 200, np.uint8)
    for method in methods:  # warm, as the server's warm-up does
        explain(method, blank, classifier, 0)
    seconds = []
    for path in cells:
        image = read_image(path)
        coalitions._memo.clear()
        started = time.perf_counter()
        box = classifier.frame(image)
        index = int(np.argmax(classifier.predict_proba(classifier.prepare(image, box)[None])))
        for method in methods:
            explain(method, image, classifier, index, box=box)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "pbc"))
    parser.add_argument("--cells", type=int, default=5, help="new cells to explain")
    parser.add_argument("--quick", action="store_true",
                        help="one cell, no naive app (for the test suite)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive app")
    args = parser.parse_args()
    count = 1 if args.quick else args.cells
    first, *cells = cells_of_different_classes(args.model, args.data, count)
    env = dict(os.environ, HEMATOVISION_MODEL=str(Path(args.model).resolve()),
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    print(f"load average before: {load_average()}; {os.cpu_count()} CPU cores; "
          f"model {Path(args.model).name}", flush=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        naive = None
        if not (args.quick or args.no_naive):
            naive, server, (tab, _) = first_prediction("benchmarks/naive_app.py", "", first,
                                                        browser, env, None)
            tab.close()
            stop_server(server)
        launch, server, (tab, url) = first_prediction("streamlit_app.py", "Classify", first,
                                                      browser, env, ANSWER)
        tab.close()
        watch = MemoryWatch(server.pid)
        watch.start()
        try:
            results = []
            for path in cells:
                chart, page, gradcam, panel = explain_cell(browser, url, path)
                results.append((page, gradcam, panel))
                print(f"  {path.parent.name}/{path.name}: answer → chart drawn {chart:.2f} s; "
                      f"click → Explain page {page:.2f} s, "
                      f"Grad-CAM {gradcam:.2f} s, whole panel {panel:.2f} s", flush=True)
        finally:
            watch.running = False
            watch.join()
            stop_server(server)
        browser.close()
    print(f"load average after the browser part: {load_average()}", flush=True)
    floors = floor_seconds(args.model, cells)
    pages, gradcams, panels = ([r[i] for r in results] for i in range(3))
    line = f"launch → first prediction: {launch:.2f} s (target ≤ 6 s)"
    if naive is not None:
        line += f"; naive app {naive:.2f} s, ratio naive/ours {naive / launch:.1f}×"
    print(line)
    print(f"click → the Explain page's title (the page switch): median "
          f"{statistics.median(pages):.2f} s, max {max(pages):.2f} s")
    print(f"click → Grad-CAM on screen: median {statistics.median(gradcams):.2f} s, "
          f"max {max(gradcams):.2f} s over {len(gradcams)} cells (target ≤ 1 s)")
    print(f"click → whole panel: median {statistics.median(panels):.2f} s, "
          f"max {max(panels):.2f} s, first cell after launch {panels[0]:.2f} s "
          f"(targets ≤ 3 s median, ≤ 4 s first)")
    print(f"the same four maps in this process (the floor): median "
          f"{statistics.median(floors):.2f} s; browser panel / floor "
          f"{statistics.median(panels) / statistics.median(floors):.2f}×")
    print(f"server peak memory, one user explaining: {watch.peak / GIB:.2f} GiB "
          f"(target ≤ 0.9 GiB)")
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
