"""One idempotent batch `PUT /api/monitors` to Cronitor, within a time budget.

Retries connection errors, timeouts, 429 (honouring `Retry-After` / `retry_after_seconds`),
502, 503 and 504 with exponential backoff and jitter; never retries 400 (the validation errors
are reported per monitor) or 403 (the key). Never raises: the result says what happened.
"""

from __future__ import annotations

import base64
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_bridge._version import __version__

__all__ = ["SyncResult", "put_monitors"]

RETRY_STATUSES = (429, 502, 503, 504)


@dataclass
class SyncResult:
    ok: bool
    status: int | None
    attempts: int
    message: str
    errors: list[Any] = field(default_factory=list)


def payload(monitors: Sequence[dict[str, Any]], rollback: bool = False) -> bytes:
    """The exact request body: `{"monitors": [...]}` (+ `"rollback": true`), keys sorted."""
    document: dict[str, Any] = {"monitors": list(monitors)}
    if rollback:
        document["rollback"] = True
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _retry_after(error: urllib.error.HTTPError, body: bytes) -> float | None:
    header = error.headers.get("Retry-After") if error.headers else None
    if header:
        try:
            return float(header)
        except ValueError:
            pass
    try:
        value = json.loads(body).get("retry_after_seconds")
        return float(value) if value is not None else None
    except (ValueError, AttributeError, TypeError):
        return None


def put_monitors(
    monitors: Sequence[dict[str, Any]],
    *,
    api_key: str,
    endpoint: str = "https://cronitor.io/api",
    api_version: str | None = None,
    rollback: bool = False,
    budget: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SyncResult:
    """PUT every monitor at once; Cronitor upserts by key. Never raises."""
    deadline = clock() + budget
    body = payload(monitors, rollback)
    token = base64.b64encode(f"{api_key}:".encode()).decode()
    headers = {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"otel-bridge/{__version__}",
    }
    if api_version:
        headers["Cronitor-Version"] = api_version
    url = endpoint.rstrip("/") + "/monitors"
    attempt = 0
    delay = 0.5
    while True:
        attempt += 1
        remaining = deadline - clock()
        if remaining <= 0:
            return SyncResult(False, None, attempt - 1, f"gave up: {budget:g} s budget spent")
        request = urllib.request.Request(url, data=body, headers=headers, method="PUT")
        wait: float | None = None
        try:
            with urllib.request.urlopen(request, timeout=min(10.0, remaining)) as response:
                answer = response.read()
                try:
                    saved = json.loads(answer).get("monitors", [])
                except (ValueError, AttributeError):
                    # Not Cronitor's answer (a proxy's or a captive portal's page): nothing
                    # says the monitors were saved.
                    detail = answer.decode("utf-8", "replace")[:200]
                    return SyncResult(
                        False, response.status, attempt, f"unexpected answer: {detail!r}"
                    )
                word = "validated" if rollback else "synced"
                return SyncResult(
                    True,
                    response.status,
                    attempt,
                    f"{word} {len(monitors)} monitors ({len(saved)} confirmed)",
                )
        except urllib.error.HTTPError as error:
            try:
                answer = error.read()
            except (OSError, ValueError):
                answer = b""
            if error.code == 400:
                try:
                    errors = json.loads(answer).get("errors", [])
                except (ValueError, AttributeError):
                    errors = [answer.decode("utf-8", "replace")[:2000]]
                return SyncResult(False, 400, attempt, "Cronitor refused the monitors", errors)
            if error.code not in RETRY_STATUSES:
                detail = answer.decode("utf-8", "replace")[:500]
                return SyncResult(False, error.code, attempt, f"HTTP {error.code}: {detail}")
            wait = _retry_after(error, answer) if error.code == 429 else None
            last = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            last = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        pause = wait if wait is not None else delay * (0.5 + random.random())
        delay = min(delay * 2, 8.0)
        if clock() + pause >= deadline:
            return SyncResult(False, None, attempt, f"gave up after {attempt} attempts ({last})")
        sleep(pause)
