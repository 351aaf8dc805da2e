"""The wheel a user installs: built from the tree, inspected for what must (not) be in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def built_wheel(into: Path, **environment: str) -> tuple[Path, str]:
    """The wheel `python -m build` makes from the tree (in `into`), and what it said on
    stderr; `environment`: variables set for the build."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(into)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **environment},
    )
    assert done.returncode == 0, done.stderr
    [wheel] = into.glob("otel_bridge-*.whl")
    return wheel, done.stderr


@pytest.mark.integration
def test_wheel_ships_the_package_typed_and_nothing_else(tmp_path: Path) -> None:
    wheel, _ = built_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "otel_bridge/py.typed" in names
    assert "otel_bridge/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {
        "otel_bridge",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    )
    assert "Requires-Python: >=3.10" in metadata
    assert "Provides-Extra: django" in metadata
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    assert "otel-bridge = otel_bridge.cli:main" in entry_points


@pytest.mark.integration
def test_wheel_ships_the_dashboard(tmp_path: Path) -> None:
    wheel, _ = built_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "otel_bridge/exporters/expvar/dashboard.html" in names
    assert not [n for n in names if n.endswith((".go", ".pyc"))]


# Installed from a wheel, outside the tree: which code times a request's timers, and what the
# request's record holds.
_TRIAL = """
import asyncio, json, otel_bridge
from otel_bridge.testing import RecordCollector
collector = RecordCollector()

async def app(scope, receive, send):
    with otel_bridge.timer(group="db", op="select"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

wrapped = otel_bridge.instrument(
    app, settings=otel_bridge.Settings(exporters=()), record_exporters=[collector]
)

async def main():
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        pass
    await wrapped(scope, receive, send)

asyncio.run(main())
wrapped.bridge.force_flush(5_000)
print(json.dumps({
    "file": otel_bridge.__file__,
    "core": wrapped.bridge.timer_core(),
    "timers": [[t.name, t.kind, list(map(list, t.tags))] for t in collector.records[0].timers],
}))
"""


@pytest.mark.integration
@pytest.mark.parametrize("compiler", ["found", "failing"])
def test_a_wheel_times_requests_with_or_without_its_c_core(tmp_path: Path, compiler: str) -> None:
    # A failing compiler: as a machine without a working one.
    wheel, said = built_wheel(tmp_path, **({"CC": "/bin/false"} if compiler == "failing" else {}))
    names = zipfile.ZipFile(wheel).namelist()
    compiled = [name for name in names if name.startswith("otel_bridge/_speedups.")]
    assert not [name for name in names if name.endswith(".c")]
    if compiler == "found":
        assert not wheel.name.endswith("-py3-none-any.whl")  # a platform wheel
        assert len(compiled) == 1
    else:
        assert wheel.name.endswith("-py3-none-any.whl")
        assert compiled == []
        assert "the C core was not built" in said
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    trial = subprocess.run(
        [sys.executable, "-c", _TRIAL],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert trial.returncode == 0, trial.stderr
    seen = json.loads(trial.stdout.splitlines()[-1])
    assert seen["file"].startswith(str(target))
    assert seen["timers"] == [["db select", "db", [["group", "db"], ["op", "select"]]]]
    if compiler == "found":
        assert seen["core"] == "c"
    else:
        assert seen["core"].startswith("python (the C core is not built (")
