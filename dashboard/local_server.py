"""The dashboard on 127.0.0.1 and a headless Chromium to drive it, for the browser test,
the benchmarks and the README's screenshots: start the server, wait until it answers, stop
it for sure."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Playwright cannot download its own browser offline; Debian's chromium is driven instead.
CHROMIUM = os.environ.get("HEMATOVISION_CHROMIUM", "/usr/bin/chromium")
# No sandbox (containers), no GPU, and none of Chromium's own network traffic, which
# would otherwise compete with the app for two cores.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(script: str = "streamlit_app.py", env: dict | None = None,
                 wait: float = 90.0) -> tuple[subprocess.Popen, str]:
    """``streamlit run script`` from the repository root; returns once its health check
    answers (polled often: start-up time is itself measured)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return process, url
        except OSError:
            time.sleep(0.05)
    stop_server(process)
    raise RuntimeError(f"streamlit did not start within {wait:.0f} s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        # A server still loading TensorFlow for the Explain warm-up has been seen to
        # ignore SIGTERM for minutes.
        process.kill()
        process.wait(timeout=30)


@contextlib.contextmanager
def running_server(script: str = "streamlit_app.py", env: dict | None = None):
    """The server's URL while the block runs."""
    process, url = start_server(script, env)
    try:
        yield url
    finally:
        stop_server(process)
