from csp.constants import SELF
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from chatbot import views
from routing.apis import NotFoundApi

admin.site.site_header = "Switchboard admin"
admin.site.site_title = "Switchboard"
admin.site.index_title = "Label, train, promote"

# Redoc's search runs in a Web Worker made from a blob: URL, which script-src 'self' refuses: this
# page alone allows such workers (worker-src). Its template has no inline script and no outside asset.
redoc_view = csp_update({"worker-src": [SELF, "blob:"]})(
    SpectacularRedocView.as_view(url_name="api-schema", template_name="chatbot/redoc.html")
)

urlpatterns = [
    path("admin/finetune/label-next/", include("chatbot.learning.label_next")),
    path("admin/", include("chatbot.learning.admin_pages")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("routing.urls")),
    path("api/v1/", include("finetune.urls")),
    re_path(r"^api/v1/", NotFoundApi.as_view(), name="api-not-found"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's set-up script as a file: no inline script, as the CSP requires.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", redoc_view, name="api-redoc"),
    # Prometheus scrapes this (token-protected; chatbot.core.metrics).
    path("metrics", views.metrics_page, name="metrics"),
    path("", include("chatbot.web_urls")),
]
