"""Load test: many browser sessions classify cells at once against one server.

    python benchmarks/load_test.py [--users 10] [--rounds 3] [--explainer]

Starts ``streamlit run`` on 127.0.0.1, opens ``--users`` separate browser contexts in
headless Chromium (separate cookies, so separate Streamlit sessions) and has each upload
``--rounds`` different held-out PBC cells one after another, all users at the same time.
The clock runs from the upload to the moment that user's own answer is on screen. Each
session must see only its own file name (no cross-talk between sessions). With
``--explainer``, one more user keeps LIME and SHAP busy on the Explain page meanwhile, to
show that long explanations do not block other users' classifications.

Prints p50/p95/max time to a shown result, errors, and the server's peak memory (resident
set of the server process and its children, sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hematovision.dataset import test_split_files  # noqa: E402
from hematovision.models import default_model_dir  # noqa: E402

CHROMIUM = os.environ.get("HEMATOVISION_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
# A single cell's answer: "neutrophil — 99.1 %" or the Unfamiliar heading.
ANSWER = re.compile(r"( — \d+\.\d %|Unfamiliar image)")
DATASETS = Path(os.environ.get("HEMATOVISION_DATASETS", ROOT.parent / "shared" / "datasets"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            stack += [int(child) for child in children]
        except (OSError, AttributeError):
            continue
    return total


class MemoryWatch(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, _rss_kib(self.pid))
            time.sleep(0.2)


def start_server() -> tuple[subprocess.Popen, str]:
    port = _port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address",
         "127.0.0.1", "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("streamlit did not start")


async def user(browser, url: str, number: int, files: list[Path], others: set[str],
               timings: list[float], errors: list[str]) -> None:
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    foreign = others - {path.name for path in files}
    try:
        for path in files:
            # A fresh page per cell: a new session, as when a user opens the app again.
            await page.goto(f"{url}/Classify")
            uploader = page.locator('input[type="file"]')
            await uploader.wait_for(state="attached", timeout=120_000)
            started = time.perf_counter()
            await uploader.set_input_files(str(path))
            await page.get_by_text(ANSWER).first.wait_for(timeout=120_000)
            await page.get_by_text(path.name, exact=False).first.wait_for(timeout=60_000)
            timings.append(time.perf_counter() - started)
            body = await page.inner_text("body")
            leaked = [name for name in foreign if name in body]
            if leaked:
                errors.append(f"user {number} sees other sessions' files: {leaked}")
            if "Traceback" in body:
                errors.append(f"user {number}: a traceback on the page")
    except Exception as error:  # a timeout or a crashed page counts as an error, not a stop
        errors.append(f"user {number}: {type(error).__name__}: {str(error)[:200]}")
    finally:
        await context.close()


async def explainer_user(browser, url: str, paths: list[Path], stop: asyncio.Event,
                         errors: list[str]) -> int:
    """Keep LIME and SHAP busy: explain one new cell after another until told to stop."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    done = 0
    try:
        for path in paths:
            if stop.is_set():
                break
            await page.goto(f"{url}/Classify")
            await page.locator('input[type="file"]').set_input_files(str(path))
            await page.get_by_text("Explain this prediction").click(timeout=120_000)
            await page.get_by_text("Download the panel (PNG)").wait_for(timeout=180_000)
            done += 1
    except Exception as error:
        errors.append(f"explainer user: {type(error).__name__}: {str(error)[:200]}")
    finally:
        await context.close()
    return done


async def main_async(args) -> int:
    from playwright.async_api import async_playwright

    files = test_split_files(default_model_dir(), DATASETS / "pbc")
    if not files:
        raise SystemExit("the PBC test split is needed: set HEMATOVISION_DATASETS")
    step = max(1, len(files) // (args.users * args.rounds + 1))
    chosen = [path for path, _ in files[::step]]
    plan = [chosen[i * args.rounds : (i + 1) * args.rounds] for i in range(args.users)]
    names = {path.name for group in plan for path in group}
    server, url = start_server()
    watch = MemoryWatch(server.pid)
    watch.start()
    timings: list[float] = []
    errors: list[str] = []
    explained = 0
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            # Warm the server once (model load), as a real deployment would be.
            warm = await browser.new_page()
            await warm.goto(f"{url}/Classify")
            await warm.locator('input[type="file"]').set_input_files(str(chosen[-1]))
            await warm.get_by_text(ANSWER).first.wait_for(timeout=180_000)
            await warm.close()
            stop = asyncio.Event()
            extra = []
            if args.explainer:
                extra.append(asyncio.create_task(
                    explainer_user(browser, url, chosen[-12:-2], stop, errors)))
                await asyncio.sleep(5)
            started = time.perf_counter()
            await asyncio.gather(*[user(browser, url, i, plan[i], names, timings, errors)
                                   for i in range(args.users)])
            wall = time.perf_counter() - started
            stop.set()
            explained = sum(await asyncio.gather(*extra)) if extra else 0
            await browser.close()
    finally:
        watch.running = False
        server.terminate()
        server.wait(timeout=30)
    timings.sort()

    def pct(q: float) -> float:
        return timings[min(len(timings) - 1, int(round(q * (len(timings) - 1))))]

    print(f"users {args.users}, rounds {args.rounds}, explainer busy: {args.explainer}"
          + (f" ({explained} full Explain panels computed meanwhile)" if args.explainer else ""))
    if timings:
        print(f"time to a shown result: p50 {pct(0.5):.2f} s, p95 {pct(0.95):.2f} s, "
              f"max {timings[-1]:.2f} s over {len(timings)} classifications in {wall:.1f} s")
    print(f"server peak memory: {watch.peak / 1024 / 1024:.2f} GiB")
    print(f"errors: {len(errors)}")
    for error in errors:
        print(f"  {error}")
    return 0 if not errors else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--explainer", action="store_true")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
