"""A Streamlit server on 127.0.0.1 for the benchmarks: start it, wait until it answers,
stop it for sure."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
         "--server.port", str(port), "--server.headless", "true"],
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
