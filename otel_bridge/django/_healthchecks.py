"""URL patterns marked as healthchecks → the (name, path, Healthcheck) triples the Cronitor
view turns into monitors.

    from otel_bridge.django import path
    urlpatterns = [path("health/", views.health, name="health", healthcheck=True)]

or ``@otel_bridge.healthcheck`` on the view. Walks the whole URLconf, `include()`s too (a
pattern's key is its name as `reverse()` spells it, ``namespace:name``). A
`path()` template becomes ``/users/{uid}/`` (filled from `path_params`); a `re_path()` pattern
is made concrete by substituting its named groups and dropping the anchors, and refused when
it has unnamed groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from otel_bridge.exporters.cronitor._derive import ATTRIBUTE
from otel_bridge.exporters.cronitor._spec import Healthcheck, HealthcheckError

__all__ = ["django_healthchecks", "mark"]

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")


def mark(pattern: Any, declaration: Any) -> Any:
    """Attach a healthcheck to a URLPattern (raises HealthcheckError for a bad declaration)."""
    if declaration is not None and declaration is not False:
        setattr(pattern, ATTRIBUTE, Healthcheck.of(declaration))
    return pattern


def _template(pattern: Any) -> str:
    text = str(pattern)
    if type(pattern).__name__ == "RegexPattern":
        if text.startswith("^"):
            text = text[1:]
        if text.endswith("$") and not text.endswith("\\$"):
            text = text[:-1]
        text = _NAMED_GROUP.sub(lambda m: "{" + m.group(1) + "}", text)
        if re.search(r"[()\[\]*+?|\\]", text):
            raise HealthcheckError(
                f"re_path {str(pattern)!r}: only named groups can be filled for a healthcheck"
            )
        return text
    return _CONVERTER.sub(lambda m: "{" + m.group(1) + "}", text)


def _walk(
    patterns: Any, prefix: tuple[Any, ...] = (), namespaces: tuple[str, ...] = ()
) -> Iterator[tuple[Any, tuple[Any, ...], tuple[str, ...]]]:
    for entry in patterns:
        inner = getattr(entry, "url_patterns", None)
        if inner is not None and hasattr(entry, "urlconf_name"):  # include()
            namespace = getattr(entry, "namespace", None)
            inside = (*namespaces, namespace) if namespace else namespaces
            yield from _walk(inner, (*prefix, entry.pattern), inside)
        else:
            yield entry, (*prefix, entry.pattern), namespaces


def _spec_of(entry: Any) -> Healthcheck | None:
    callback = getattr(entry, "callback", None)
    for obj in (entry, callback, getattr(callback, "view_class", None)):
        spec = getattr(obj, ATTRIBUTE, None)
        if isinstance(spec, Healthcheck):
            return spec
    return None


def django_healthchecks(urlconf: Any = None) -> list[tuple[str, str, Healthcheck]]:
    """Every marked pattern of the URLconf (Django's settings must be configured).

    Raises:
        HealthcheckError: a marked pattern that cannot be made a URL.
    """
    from django.urls import get_resolver

    found = []
    for entry, patterns, namespaces in _walk(get_resolver(urlconf).url_patterns):
        spec = _spec_of(entry)
        if spec is None:
            continue
        path = "/" + "".join(_template(pattern) for pattern in patterns)
        name = getattr(entry, "name", None) or path.strip("/") or "root"
        # As reverse() names it: an include()d URLconf's patterns under its namespace, so one
        # URLconf included twice gives two monitors.
        found.append((":".join((*namespaces, name)), path, spec))
    return found


def discover_for(app: Any) -> Callable[[], list[tuple[str, str, Healthcheck]]] | None:
    """What the `cronitor` view calls for `app`'s own healthchecks: Django's URL patterns when
    `app` is Django's handler, else nothing (the view reads Starlette routes itself)."""
    from otel_bridge.django._settings import is_django_handler

    return django_healthchecks if is_django_handler(app) else None
