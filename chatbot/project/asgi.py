"""ASGI entry point: HTTP through Django, websockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from chatbot.project.static_files import static_files_app  # noqa: E402
from chatbot.ws_routing import websocket_urlpatterns  # noqa: E402
from routing.fast_route import RouteFastPath  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The widget's script and the console's assets are served by the app server itself
        # (chatbot.project.static_files), so one <script> tag works against any deployment (a CDN can front /static/).
        # routing.fast_route runs POST /api/v1/route through settings.MIDDLEWARE as a sync chain on
        # one worker thread, without the async handler's thread hops, and passes everything else on.
        "http": RouteFastPath(static_files_app(django_asgi_app)),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# What is loaded now lives as long as the process; freeze it out of the collector's full passes.
# Measured: once the URLconf (admin, scikit-learn) is in, a full collection walks ~185k objects
# and stalls every request in flight for 100-300 ms, about every 8,000 requests per process.
get_resolver().url_patterns  # noqa: B018 - the access loads the URLconf before the freeze
gc.freeze()
