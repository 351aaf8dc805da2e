"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .postgres import Postgres, postgres_server


@pytest.fixture(scope="module")
def database() -> Iterator[Postgres]:
    """A private PostgreSQL server for the module's tests (a module may override it, to
    prepare its database)."""
    with postgres_server() as server:
        yield server
