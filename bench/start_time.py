"""Seconds from starting the server (`python app.py`) to `GET /readyz` answering 200, then stops it.

    DATABASE_URL=... NLU_CACHE_DIR=... python bench/start_time.py [--port 38411] [--rounds 2]

Run it with the settings to measure (a filled NLU_CACHE_DIR and a seeded store measure a start
after the first; the first round on a new store also seeds the demo catalog and history).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ready_after(port: int) -> float:
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except OSError:  # not listening yet, or 503 while a part is not ready
                pass
            if proc.poll() is not None:
                raise SystemExit(f"the server stopped with status {proc.returncode}")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=38411)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for n in range(args.rounds):
        print(f"round {n + 1}: ready after {ready_after(args.port):.1f} s", flush=True)


if __name__ == "__main__":
    main()
