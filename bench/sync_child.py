"""`python app.py catalog sync` as a child process, for the sync benches: its wall time, what it
printed, and its own peak RSS (read in the child when it ends, so two runs in one bench are
measured apart), optionally under cProfile."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "sync-child peak RSS KB "
CHILD = f"""
import resource, runpy, sys
sys.argv = ["app.py", "catalog", "sync"]
profile = {{profile!r}}
try:
    if profile:
        import cProfile
        cProfile.run("runpy.run_path('app.py', run_name='__main__')", profile)
    else:
        runpy.run_path("app.py", run_name="__main__")
finally:
    print("{MARK}" + str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), flush=True)
"""


@dataclass
class SyncRun:
    seconds: float
    output: str  # what the command printed (its summary and timing lines)
    peak_mb: float
    returncode: int | None

    def report(self, label: str, products: int, variants: int, requests: int) -> str:
        rows = products + products * variants
        return (
            f"{label}: {products} products, {products * variants} variants: {self.seconds:.1f} s, "
            f"{rows / self.seconds:.0f} rows/s, {requests} requests, peak RSS {self.peak_mb:.0f} MB "
            f"(exit {self.returncode}), load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )


async def run_sync(env: dict[str, str], profile: str | None = None) -> SyncRun:
    started = time.perf_counter()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD.format(profile=profile),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await child.communicate()
    seconds = time.perf_counter() - started
    lines = out.decode().strip().splitlines()
    peak = next((int(line.removeprefix(MARK)) for line in lines if line.startswith(MARK)), 0)
    text = "\n".join(line for line in lines if not line.startswith(MARK))
    return SyncRun(seconds, text, peak / 1024, child.returncode)
