"""The wheel a user installs: built from the tree, inspected for what must (not) be in it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_wheel_ships_the_package_typed_and_nothing_else(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    [wheel] = tmp_path.glob("otel_bridge-*.whl")
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
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("otel_bridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "otel_bridge/exporters/expvar/dashboard.html" in names
    assert not [n for n in names if n.endswith((".go", ".pyc"))]
