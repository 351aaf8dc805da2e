"""Turning a context-manager factory into a decorator for sync and async functions."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

__all__ = ["decorate"]

F = TypeVar("F", bound=Callable[..., Any])


def decorate(func: F, enter: Callable[[], AbstractContextManager[Any]]) -> F:
    """Wrap `func` so every call (or every await of a coroutine function) runs in `enter()`."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with enter():
                return await func(*args, **kwargs)

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with enter():
            return func(*args, **kwargs)

    return cast(F, wrapper)
