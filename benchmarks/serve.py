"""The app a benchmark server serves, chosen by environment (BENCH_APP, BENCH_CONFIG).

BENCH_APP=starlette BENCH_CONFIG=bridge uvicorn benchmarks.serve:app
BENCH_APP=wsgi BENCH_CONFIG=contrib gunicorn benchmarks.serve:app
BENCH_VIEWS=pinba (with BENCH_CONFIG=bridge_all) turns on only the views named: one view's cost.
BENCH_REQUESTS_PER_WORKER=1 counts `requests` per worker even with the scoreboard on.
"""

from __future__ import annotations

import os
from typing import Any

import benchmarks.apps
from benchmarks.apps import build

if os.environ.get("BENCH_VIEWS"):
    benchmarks.apps.ALL_VIEWS = tuple(os.environ["BENCH_VIEWS"].split(","))

if os.environ.get("BENCH_REQUESTS_PER_WORKER"):
    # benchmarks/server_wide.py: the scoreboard on, but `requests` counted in each worker's
    # memory only, as without it: what is left is what the server-wide figures cost.
    from otel_bridge.exporters.expvar._stats import RequestStats

    def _per_worker(self: RequestStats, records: Any) -> None:
        with self._lock:
            self._count(records, self._figures_for, self._total, False)

    RequestStats.export = _per_worker  # type: ignore[method-assign]

app: Any
app, _flush, _exported = build(
    os.environ.get("BENCH_APP", "starlette"), os.environ.get("BENCH_CONFIG", "bare")
)
