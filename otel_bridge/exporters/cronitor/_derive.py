"""Routes marked as healthchecks → Cronitor `check` monitors.

    @otel_bridge.healthcheck(schedule="every 5 minutes")
    async def health(request): ...

    Route("/users/{uid}", user, name="user")   # then:
    otel_bridge.healthcheck(route, path_params={"uid": 1})

Keys come from route names (so moving a path keeps its monitor), prefixed by the service and
suffixed by the environment outside production. URLs come from the configured public base URL,
never from a Host header, a wildcard or loopback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload
from urllib.parse import urlencode, urlsplit

from otel_bridge.config.parsers import public_url_problem
from otel_bridge.exporters.cronitor._spec import Healthcheck, HealthcheckError, interval

__all__ = ["ATTRIBUTE", "check_public_url", "healthcheck", "monitors_from_app"]

ATTRIBUTE = "__otel_bridge_healthcheck__"
AUTO_TAG = "otel-bridge"
T = TypeVar("T")


@overload
def healthcheck(target: T, /, **options: Any) -> T: ...


@overload
def healthcheck(target: None = None, /, **options: Any) -> Callable[[T], T]: ...


def healthcheck(target: T | None = None, /, **options: Any) -> Any:
    """Mark a route (or its endpoint) as a Cronitor healthcheck.

    As a decorator on an endpoint: ``@healthcheck`` or ``@healthcheck(schedule=300)``. On a
    Starlette ``Route``/``Mount`` object: ``healthcheck(route, path_params={...})``.

    Raises:
        HealthcheckError: an option Cronitor would refuse (raised here, where it is declared).
    """
    spec = Healthcheck.of(options or True)

    def mark(obj: T) -> T:
        try:
            setattr(obj, ATTRIBUTE, spec)
        except AttributeError:  # e.g. a bound method: mark the function
            setattr(obj.__func__, ATTRIBUTE, spec)  # type: ignore[attr-defined]
        return obj

    if target is not None:
        return mark(target)
    return mark


def check_public_url(url: str) -> str:
    """The base URL Cronitor probes: absolute http(s), a real public host.

    Raises:
        HealthcheckError: relative, wildcard, loopback or unspecified host.
    """
    problem = public_url_problem(url)
    if problem is not None:
        raise HealthcheckError(problem)
    return url.rstrip("/")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _routes(routes: Any, prefix: str = "") -> Iterator[tuple[Any, str]]:
    for route in routes or ():
        path_format = getattr(route, "path_format", None)
        candidates = getattr(route, "effective_candidates", None)
        if path_format is None and callable(candidates):
            # FastAPI >= 0.165: include_router() leaves one included-router entry in
            # app.routes; its candidates carry the full path (every include's prefix), and
            # a nested include is another such entry.
            yield from _routes(candidates(), prefix)
            continue
        if path_format is None:
            if _spec_of(route) is not None:
                raise HealthcheckError(
                    f"route {getattr(route, 'name', None) or route!r}: marked as a healthcheck "
                    "but has no path template to probe"
                )
            continue
        inner = getattr(route, "routes", None)
        if inner and getattr(route, ATTRIBUTE, None) is None:
            # A Mount's format ends in its own "/{path}" parameter.
            mount = (
                path_format[: -len("/{path}")] if path_format.endswith("/{path}") else path_format
            )
            yield from _routes(inner, prefix + mount)
        else:
            yield route, prefix + path_format


def _spec_of(route: Any) -> Healthcheck | None:
    spec = getattr(route, ATTRIBUTE, None)
    if spec is None:
        spec = getattr(getattr(route, "endpoint", None), ATTRIBUTE, None)
    return spec


def monitors_from_app(
    app: Any,
    *,
    public_url: str,
    service: str = "app",
    environment: str = "production",
    extra: list[tuple[str, str, Healthcheck]] | None = None,
) -> list[dict[str, Any]]:
    """Every marked route of a Starlette/FastAPI `app` as a Cronitor monitor, sorted by key.

    `extra` adds `(name, path, Healthcheck)` for routes declared elsewhere (Django, a proxy).

    Raises:
        HealthcheckError: a route that cannot become a valid monitor (the route is named).
    """
    base = check_public_url(public_url)
    while not hasattr(app, "routes") and hasattr(app, "app"):
        app = app.app  # through middleware wrappers (ours included)
    found: list[tuple[str, str, Healthcheck]] = []
    for route, path in _routes(getattr(app, "routes", ())):
        spec = _spec_of(route)
        if spec is not None:
            name = getattr(route, "name", None) or path
            found.append((name, path, spec))
    found.extend(extra or [])
    monitors: dict[str, dict[str, Any]] = {}
    for name, path, spec in found:
        monitor = _monitor(name, path, spec, base, service, environment)
        if monitor["key"] in monitors:
            raise HealthcheckError(f"route {name!r}: key {monitor['key']!r} is used twice")
        monitors[monitor["key"]] = monitor
    return [monitors[key] for key in sorted(monitors)]


def _monitor(
    name: str, path: str, spec: Healthcheck, base: str, service: str, environment: str
) -> dict[str, Any]:
    try:
        concrete = path.format(**{k: str(v) for k, v in spec.path_params.items()})
    except (KeyError, IndexError) as exc:
        raise HealthcheckError(
            f"route {name!r} ({path}): give a sample value for {exc} in path_params"
        ) from None
    query = spec.query if isinstance(spec.query, str) else urlencode(spec.query or {})
    url = base + concrete + (f"?{query.lstrip('?')}" if query else "")
    production = environment in ("production", "prod", "")
    key = spec.key or "-".join(
        part
        for part in (_slug(service), _slug(name), "" if production else _slug(environment))
        if part
    )
    host = urlsplit(base).netloc
    request: dict[str, Any] = {
        "url": url,
        "method": spec.method,
        "timeout_seconds": spec.timeout,
        "follow_redirects": spec.follow_redirects,
        "verify_ssl": spec.verify_ssl,
    }
    if spec.headers:
        request["headers"] = {str(k): str(v) for k, v in spec.headers.items()}
    if spec.cookies:
        request["cookies"] = {str(k): str(v) for k, v in spec.cookies.items()}
    if spec.body is not None:
        request["body"] = spec.body
    if spec.regions:
        request["regions"] = list(spec.regions)
    monitor: dict[str, Any] = {
        "type": "check",
        "key": key,
        "name": spec.name or f"{spec.method} {host}{concrete}",
        "schedule": interval(spec.schedule),
        "request": request,
        "assertions": list(spec.assertions),
        "tags": sorted({AUTO_TAG, _slug(service) or "app", *spec.tags}),
        "note": spec.note or f"Derived from route {name!r} ({spec.method} {path})",
    }
    if not production:
        monitor["environments"] = [environment]
    return monitor
