from __future__ import annotations

from django.contrib.auth.middleware import PersistentRemoteUserMiddleware


class HeaderUserMiddleware(PersistentRemoteUserMiddleware):  # type: ignore[misc]
    """Django's documented pattern for a proxy that authenticates: the user from a header."""

    header = "HTTP_X_REMOTE_USER"
    # Django 5.2's async path reads META["HTTP_" + header], the sync one META[header]: one
    # path for both servers.
    async_capable = False
