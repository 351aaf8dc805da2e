"""Where a request's CPU goes: py-spy samples of an in-process cell, by component.

`python -m benchmarks.profile APP CONFIG [N]` runs `benchmarks.inprocess APP CONFIG N` under
py-spy (1,000 samples a second, only the thread that holds the GIL, so a sample is CPU spent on
Python's behalf in some thread) and prints one JSON line: the share of samples per component.

A sample counts for the component of the innermost frame that belongs to one: a JSON encoder
called by the wide-event view counts for the view, the SDK's `Histogram.record` called by
otel_bridge counts for the SDK. Samples of start-up (imports, building the app) do not count.
The garbage collector has no frame of its own; its time counts where the allocation that
triggered it was.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["COMPONENTS", "classify", "profile", "shares"]

# (path fragment, component): the first that matches a frame's file wins.
_RULES = (
    ("otel_bridge/exporters/pinba/", "Pinba"),
    ("otel_bridge/exporters/wide_events/", "wide events"),
    ("otel_bridge/exporters/expvar/", "expvar"),
    ("otel_bridge/exporters/cronitor/", "Cronitor"),
    ("otel_bridge/", "otel_bridge core"),
    ("benchmarks/floor.py", "floor"),
    ("opentelemetry/instrumentation/", "contrib middleware"),
    ("opentelemetry/", "OpenTelemetry SDK + API"),
    ("starlette/", "app"),
    ("benchmarks/apps.py", "app"),
    ("benchmarks/inprocess.py", "driver + event loop"),
    ("asyncio/", "driver + event loop"),
)
COMPONENTS = (*dict.fromkeys(name for _, name in _RULES), "other")
_OUTSIDE = "importlib"
_SETUP = ("build (", "providers (", "pinba_collector (")


def _file_of(frame: str) -> str:
    # py-spy's raw frames read "function (path/to/file.py:line)".
    start = frame.rfind(" (")
    return frame[start + 2 : -1] if start != -1 and frame.endswith(")") else ""


def classify(stack: list[str]) -> str | None:
    """The component of one sample (frames outermost first, the thread first); None for a
    sample outside the measured work (start-up, imports, the harness)."""
    frames = stack[1:]
    if not frames or any(_OUTSIDE in frame or frame.startswith(_SETUP) for frame in frames):
        # A thread with no Python frame (start-up, shutdown), imports, or the harness
        # building the app.
        return None
    for frame in reversed(frames):
        path = _file_of(frame)
        for fragment, component in _RULES:
            if fragment in path:
                return component
    return "other"


def shares(raw: str) -> dict[str, float]:
    """Share of the measured samples per component, from py-spy's raw (collapsed) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        component = classify(stack_text.split(";"))
        if component is not None:
            counts[component] += int(count)
    total = sum(counts.values())
    if not total:
        raise RuntimeError("py-spy recorded no sample of the measured loop")
    return {name: counts[name] / total for name in COMPONENTS} | {"samples": float(total)}


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile(app: str, config: str, n: int = 20_000) -> dict[str, float]:
    """Run one cell under py-spy; the shares of its samples (raises if py-spy cannot)."""
    spy = _py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed")
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "raw.txt")
        command = [
            spy, "record", "--gil", "--nonblocking", "--threads", "--full-filenames",
            "--rate", "1000",
            "--format", "raw", "--output", out, "--",
            sys.executable, "-m", "benchmarks.inprocess", app, config, str(n),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        return shares(Path(out).read_text(encoding="utf-8", errors="replace"))


if __name__ == "__main__":
    app_name, config_name = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
    print(json.dumps(profile(app_name, config_name, count)))
