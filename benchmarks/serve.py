"""The app a benchmark server serves, chosen by environment (BENCH_APP, BENCH_CONFIG).

BENCH_APP=starlette BENCH_CONFIG=bridge uvicorn benchmarks.serve:app
BENCH_APP=wsgi BENCH_CONFIG=contrib gunicorn benchmarks.serve:app
BENCH_VIEWS=pinba (with BENCH_CONFIG=bridge_all) turns on only the views named: one view's cost.
"""

from __future__ import annotations

import os
from typing import Any

import benchmarks.apps
from benchmarks.apps import build

if os.environ.get("BENCH_VIEWS"):
    benchmarks.apps.ALL_VIEWS = tuple(os.environ["BENCH_VIEWS"].split(","))

app: Any
app, _flush, _exported = build(
    os.environ.get("BENCH_APP", "starlette"), os.environ.get("BENCH_CONFIG", "bare")
)
