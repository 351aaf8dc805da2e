"""django-expvar style variables, discovered by otel_bridge.django."""

from __future__ import annotations

from otel_bridge.exporters.expvar import ExpVar


class NoteCount(ExpVar):
    name = "notes"

    def value(self) -> object:
        return {"seen": 3}


class NoteLimit(ExpVar):
    name = "notes"  # same name: dict values merge

    def value(self) -> object:
        return {"limit": 100}


class Version(ExpVar):
    name = "version"

    def value(self) -> object:
        return "1.2.3"
