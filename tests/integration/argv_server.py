"""`python -m tests.integration.argv_server PORT ARGS…`: uvicorn serving the test app on
127.0.0.1:PORT, whatever else the command line holds (the redaction tests put secrets there,
for `/debug/vars` to show as `cmdline`)."""

from __future__ import annotations

import sys

import uvicorn

from tests.integration.apps import asgi_app

if __name__ == "__main__":
    uvicorn.run(asgi_app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
