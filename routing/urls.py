from django.urls import path

from routing import apis

urlpatterns = [
    path("route", apis.RouteApi.as_view(), name="route"),
    path("teams", apis.TeamListApi.as_view(), name="team-list"),
    path("models", apis.ModelListApi.as_view(), name="model-list"),
    path("models/rollback", apis.ModelRollbackApi.as_view(), name="model-rollback"),
    path("models/<int:pk>", apis.ModelDetailApi.as_view(), name="model-detail"),
    path("models/<int:pk>/promote", apis.ModelPromoteApi.as_view(), name="model-promote"),
    path("health", apis.HealthApi.as_view(), name="health"),
]
