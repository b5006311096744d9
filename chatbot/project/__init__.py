"""The Django project on top of every package: settings, the URLconf, the ASGI application."""
