"""Take the README's screenshots from the running app (Classify and Explain pages).

    python scripts/screenshots.py [--image PATH] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.local_server import CHROMIUM, CHROMIUM_FLAGS, running_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="a cell image to upload")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    with running_server(env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")) as url:
        from playwright.sync_api import expect, sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.goto(f"{url}/Classify")
            page.locator('input[type="file"]').set_input_files(args.image)
            expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=120_000)
            time.sleep(1.0)
            Path(args.out).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(args.out) / "classify.png"))
            # As a user reading the answer would: meanwhile the server loads TensorFlow for
            # Grad-CAM and compiles SHAP in the background, so the panel's captions show
            # the times of a warm server, not of its first seconds.
            time.sleep(30)
            page.get_by_role("button", name="Explain this prediction").click()
            expect(page.get_by_text("Download the panel (PNG)")).to_be_visible(timeout=180_000)
            time.sleep(1.5)
            page.screenshot(path=str(Path(args.out) / "explain.png"), full_page=True)
            browser.close()


if __name__ == "__main__":
    main()
