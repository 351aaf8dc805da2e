"""Build and run Go's own expvar server (Debian `golang-go`) as the reference."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SOURCE = Path(__file__).with_name("goref.go")


def require_go() -> str:
    go = shutil.which("go")
    if go is None:
        message = "Go is not installed (make test installs golang-go)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return go


def build(directory: Path) -> Path:
    go = require_go()
    binary = directory / "goref"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOCACHE": str(directory / "cache"),
        "GOPATH": str(directory / "gopath"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    result = subprocess.run(
        [go, "build", "-o", str(binary), str(SOURCE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return binary


@contextmanager
def serve(binary: Path, spec: dict[str, Any], directory: Path) -> Iterator[str]:
    """Run the reference with `spec`; yields its base URL."""
    spec_file = directory / "spec.json"
    spec_file.write_text(json.dumps(spec))
    process = subprocess.Popen(
        [str(binary), "-addr", "127.0.0.1:0", "-spec", str(spec_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()
        assert address, process.stderr.read() if process.stderr else "no address"
        yield f"http://{address}"
    finally:
        process.terminate()
        process.communicate(timeout=10)
