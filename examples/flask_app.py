"""Flask: `gunicorn examples.flask_app:app` (from the repository root).

Wrapping `app.wsgi_app` keeps `app` the Flask object (for `flask run`, tests, extensions).
"""

from __future__ import annotations

from flask import Flask

import otel_bridge

app = Flask(__name__)


@app.get("/hello/<name>")
def hello(name: str) -> str:
    otel_bridge.tag(greeting="plain")
    return f"hello {name}"


app.wsgi_app = otel_bridge.instrument_wsgi(app.wsgi_app)  # type: ignore[method-assign,assignment]
