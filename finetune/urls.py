from django.urls import path

from finetune import apis

urlpatterns = [
    path("tickets", apis.TicketIngestApi.as_view(), name="ticket-ingest"),
    path("training-runs", apis.TrainingRunListApi.as_view(), name="training-run-list"),
    path("training-runs/<int:pk>", apis.TrainingRunDetailApi.as_view(), name="training-run-detail"),
    path("training-runs/<int:pk>/cancel", apis.TrainingRunCancelApi.as_view(), name="training-run-cancel"),
]
