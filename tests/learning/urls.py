"""The project URLconf with the learning-loop admin pages mounted ahead of the admin site.

Mirrors the two lines chatbot/urls.py needs; harmless if the project already has them.
"""

from django.urls import include, path

from chatbot.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("admin/finetune/label-next/", include("finetune.admin_label_next")),
    path("admin/", include("routing.admin_learning")),
    *project_urlpatterns,
]
