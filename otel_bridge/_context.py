"""The contextvar that holds the request being recorded (a `RequestBuilder`)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otel_bridge.bridge import RequestBuilder

current: ContextVar[RequestBuilder | None] = ContextVar("otel_bridge.request", default=None)
