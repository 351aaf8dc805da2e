"""`python -m tests.integration.instrument COMMAND ARGS…`: what the `opentelemetry-instrument`
script does (for `serve()`, which starts `python -m` modules)."""

from __future__ import annotations

from opentelemetry.instrumentation.auto_instrumentation import run

if __name__ == "__main__":
    run()
