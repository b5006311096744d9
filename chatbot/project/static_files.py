"""Static files in front of Django: ServeStatic in production, Django's development handler with DEBUG.

With DEBUG off the app serves what ``manage.py collectstatic`` wrote to STATIC_ROOT, listed once at
start-up: only those files are served (any other /static/ path, ``..`` tricks included, falls
through to Django's 404), each with nosniff and Cache-Control — a year and immutable for the
manifest's hashed names, STATIC_MAX_AGE for the plain ones (the widget's embed URL). It is an ASGI
wrapper, not a middleware, so settings.MIDDLEWARE and the route fast path do not change.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from servestatic import ServeStaticASGI


def _security_headers(headers, path: str, url: str) -> None:
    # What SecurityMiddleware adds to Django's responses; files never pass through it.
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = settings.SECURE_REFERRER_POLICY or "same-origin"


def static_files_app(app):
    """``app`` behind the static file server the settings call for."""
    if settings.DEBUG:
        # Development: files straight from the apps' static/ directories, no collectstatic needed.
        return ASGIStaticFilesHandler(app)
    return ServeStaticASGI(
        app,
        root=settings.STATIC_ROOT,
        prefix=settings.STATIC_URL,
        max_age=settings.STATIC_MAX_AGE,
        add_headers_function=_security_headers,
    )
