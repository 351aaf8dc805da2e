"""Django: the route template of every request, for apps wrapped by `instrument_wsgi()` or
`instrument()`.

Add ``"otel_bridge.django"`` to ``INSTALLED_APPS`` and
``"otel_bridge.django.middleware.RouteMiddleware"`` to ``MIDDLEWARE``, and wrap the handler::

    application = otel_bridge.instrument_wsgi(get_wsgi_application())   # wsgi.py
    application = otel_bridge.instrument(get_asgi_application())        # asgi.py
"""
