"""From `streamlit run` to the first prediction shown in a real browser, ours vs naive.

    python benchmarks/startup.py [--rounds 2]

Each round starts a fresh server, opens the Classify page in headless Chromium, uploads a
held-out PBC cell and stops the clock when the label and the chart are visible. The naive
app (benchmarks/naive_app.py) imports TensorFlow and runs Keras ``model.predict``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.local_server import CHROMIUM, CHROMIUM_FLAGS, start_server, stop_server  # noqa: E402
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.dataset import test_split_files  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402


def time_to_first_prediction(script: str, page: str, image: Path, browser, env: dict) -> float:
    from playwright.sync_api import expect

    started = time.perf_counter()
    server, url = start_server(script, env)
    try:
        tab = browser.new_page()
        tab.goto(f"{url}/{page}")
        tab.locator('input[type="file"]').set_input_files(str(image))
        expect(tab.locator(".js-plotly-plot").first).to_be_visible(timeout=120_000)
        expect(tab.get_by_text(" — ").first).to_be_visible(timeout=120_000)
        elapsed = time.perf_counter() - started
        tab.close()
        return elapsed
    finally:
        stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(datasets_dir() / "pbc"))
    args = parser.parse_args()
    image = test_split_files(args.model, args.data)[0][0]
    env = dict(os.environ, HEMATOVISION_MODEL=str(Path(args.model).resolve()),
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        results = {}
        for name, script, page in (("naive", "benchmarks/naive_app.py", ""),
                                   ("ours", "streamlit_app.py", "Classify")):
            times = [time_to_first_prediction(script, page, image, browser, env)
                     for _ in range(args.rounds)]
            results[name] = statistics.median(times)
            rounds = ", ".join(f"{t:.2f}" for t in times)
            print(f"{name:<6} {results[name]:.2f} s  (rounds: {rounds})")
        browser.close()
    print(f"ratio naive/ours: {results['naive'] / results['ours']:.1f}×")


if __name__ == "__main__":
    main()
