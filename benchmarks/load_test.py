"""Load test: many sessions classify cells at once against one server.

    python benchmarks/load_test.py [--users 10] [--rounds 3] [--explainer]
                                   [--client browser|protocol]

Starts ``streamlit run`` on 127.0.0.1 and has ``--users`` separate Streamlit sessions each
upload ``--rounds`` different held-out PBC cells one after another, all users at the same
time, after one warm-up classification. Each session must see only its own file name (no
cross-talk between sessions). With ``--explainer``, one more user keeps LIME and SHAP busy
on the Explain page meanwhile, to show that long explanations do not block other users'
classifications.

Two clients drive the sessions:

* ``browser`` (default): separate headless Chromium contexts (separate cookies) upload
  into the page; the clock runs from the upload to the moment that user's own answer is
  on screen. On a small machine the browsers themselves dominate these numbers.
* ``protocol``: ``streamlit_protocol.StreamlitSession`` speaks the frontend's websocket
  protocol, one fresh session (websocket) per cell, so the time is the server's. The
  clock runs from the upload (file URL request) until the answer text has arrived and
  that rerun has finished; when the answer text itself arrived is printed as well.

Prints p50/p95/max time to the result, errors, and the server's peak memory (resident
set of the server process and its children, sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.local_server import CHROMIUM, CHROMIUM_FLAGS, start_server, stop_server  # noqa: E402
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.dataset import test_split_files  # noqa: E402
from hematovision.model.card import load_card  # noqa: E402
from hematovision.model.prediction import UNFAMILIAR  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402


def answer_pattern(classes: tuple[str, ...]) -> re.Pattern:
    """A single cell's answer as ``Prediction.headline`` words it in Classify's heading:
    "neutrophil 99.1 %" (marked "· Review" when unsure) or the word Unfamiliar alone.

    Built from the model's classes, not from an example of the wording: the pattern once
    looked for "neutrophil — 99.1 %", the page changed to "neutrophil 99.1 %", and the
    load test reported that no answer was ever shown.
    """
    names = "|".join(map(re.escape, classes))
    return re.compile(rf"^(?:(?:{names}) \d+\.\d %|{re.escape(UNFAMILIAR)}$)")


ANSWER = answer_pattern(load_card(default_model_dir()).config.classes)
DATASETS = datasets_dir()


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


async def user(browser, url: str, number: int, files: list[Path], others: set[str],
               timings: list[float], errors: list[str]) -> None:
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    foreign = others - {path.name for path in files}
    try:
        for path in files:
            # A fresh page per cell: a new session, as when a user opens the app again.
            await page.goto(f"{url}/Classify", timeout=120_000)
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
            await page.goto(f"{url}/Classify", timeout=120_000)
            await page.locator('input[type="file"]').set_input_files(str(path))
            await page.get_by_text("Explain this prediction").click(timeout=120_000)
            await page.get_by_text("Download the panel (PNG)").wait_for(timeout=180_000)
            done += 1
    except Exception as error:
        errors.append(f"explainer user: {type(error).__name__}: {str(error)[:200]}")
    finally:
        await context.close()
    return done


async def _measure(users: list, explainer, stop: asyncio.Event) -> tuple[float, int]:
    """Run all users at once, with the explainer (if any) busy from 5 s before."""
    extra = []
    if explainer is not None:
        extra.append(asyncio.create_task(explainer))
        await asyncio.sleep(5)
    started = time.perf_counter()
    await asyncio.gather(*users)
    wall = time.perf_counter() - started
    stop.set()
    return wall, sum(await asyncio.gather(*extra)) if extra else 0


async def run_browsers(args, url: str, chosen: list[Path], plan: list[list[Path]],
                       names: set[str], timings: list[float], errors: list[str],
                       shown: list[float]) -> tuple[float, int]:
    """The browser driver; ``shown`` stays empty (a page shows no run boundaries)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=CHROMIUM_FLAGS)
        # Warm the server once (model load), as a real deployment would be.
        warm = await browser.new_page()
        await warm.goto(f"{url}/Classify")
        await warm.locator('input[type="file"]').set_input_files(str(chosen[-1]))
        await warm.get_by_text(ANSWER).first.wait_for(timeout=180_000)
        await warm.close()
        stop = asyncio.Event()
        explainer = (explainer_user(browser, url, chosen[-12:-2], stop, errors)
                     if args.explainer else None)
        measured = await _measure(
            [user(browser, url, i, plan[i], names, timings, errors)
             for i in range(args.users)], explainer, stop)
        await browser.close()
    return measured


async def protocol_user(url: str, number: int, files: list[Path], others: set[str],
                        timings: list[float], errors: list[str], shown: list[float]) -> None:
    from streamlit_protocol import StreamlitSession

    foreign = others - {path.name for path in files}
    try:
        for path in files:
            # A fresh session per cell, as when a user opens the app again.
            async with StreamlitSession(url, "Classify") as session:
                started = time.perf_counter()
                run = await session.upload("uploads", path)
                answered = run.shown_at(ANSWER)
                if answered is None or path.name not in run.text():
                    said = session.exceptions() or run.alerts or [f"run status {run.status}"]
                    raise RuntimeError(f"no answer for {path.name}: {'; '.join(said)}")
                timings.append(run.finished_at - started)
                shown.append(answered - started)
            leaked = [name for name in foreign if name in session.text()]
            if leaked:
                errors.append(f"user {number} sees other sessions' files: {leaked}")
            if session.exceptions():
                errors.append(f"user {number}: an exception on the page: "
                              f"{'; '.join(session.exceptions())[:300]}")
    except Exception as error:  # as in user(): it ends this user's rounds, not the test
        errors.append(f"user {number}: {type(error).__name__}: {str(error)[:200]}")


async def protocol_explainer_user(url: str, paths: list[Path], stop: asyncio.Event,
                                  errors: list[str]) -> int:
    """The protocol twin of explainer_user: classify, press Explain, await the panel."""
    from streamlit_protocol import StreamlitSession

    done = 0
    try:
        for path in paths:
            if stop.is_set():
                break
            async with StreamlitSession(url, "Classify", timeout=180) as session:
                await session.upload("uploads", path)
                run = await session.click("Explain this prediction")
                if "Download the panel (PNG)" not in run.text():
                    raise RuntimeError(f"no Explain panel for {path.name}")
            done += 1
    except Exception as error:
        errors.append(f"explainer user: {type(error).__name__}: {str(error)[:200]}")
    return done


async def run_protocol(args, url: str, chosen: list[Path], plan: list[list[Path]],
                       names: set[str], timings: list[float], errors: list[str],
                       shown: list[float]) -> tuple[float, int]:
    from streamlit_protocol import StreamlitSession

    # Warm the server once (model load), as a real deployment would be.
    async with StreamlitSession(url, "Classify", timeout=180) as warm:
        if (await warm.upload("uploads", chosen[-1])).shown_at(ANSWER) is None:
            raise RuntimeError("the warm-up classification showed no answer")
    stop = asyncio.Event()
    explainer = (protocol_explainer_user(url, chosen[-12:-2], stop, errors)
                 if args.explainer else None)
    return await _measure(
        [protocol_user(url, i, plan[i], names, timings, errors, shown)
         for i in range(args.users)], explainer, stop)


def _spread(values: list[float]) -> str:
    values = sorted(values)

    def pct(q: float) -> float:
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

    return f"p50 {pct(0.5):.2f} s, p95 {pct(0.95):.2f} s, max {values[-1]:.2f} s"


async def main_async(args) -> int:
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
    shown: list[float] = []  # protocol only: when the answer text itself arrived
    errors: list[str] = []
    drive = run_protocol if args.client == "protocol" else run_browsers
    try:
        wall, explained = await drive(args, url, chosen, plan, names, timings, errors, shown)
    finally:
        watch.running = False
        stop_server(server)

    print(f"client {args.client}, users {args.users}, rounds {args.rounds}, "
          f"explainer busy: {args.explainer}"
          + (f" ({explained} full Explain panels computed meanwhile)" if args.explainer else ""))
    if timings:
        what = "a finished run" if args.client == "protocol" else "a shown result"
        print(f"time to {what}: {_spread(timings)} over {len(timings)} classifications "
              f"in {wall:.1f} s")
    if shown:
        print(f"time to the answer text: {_spread(shown)}")
    print(f"server peak memory: {watch.peak / 1024 / 1024:.2f} GiB")
    print(f"errors: {len(errors)}")
    for error in errors:
        print(f"  {error}")
    return 0 if not errors else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--explainer", action="store_true",
                        help="one more user keeps LIME and SHAP busy on the Explain page")
    parser.add_argument("--client", choices=["browser", "protocol"], default="browser",
                        help="headless Chromium contexts (default), or the Streamlit "
                             "websocket protocol spoken directly (benchmarks/"
                             "streamlit_protocol.py), which times the server, not browsers")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
