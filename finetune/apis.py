"""REST API of finetune: ticket ingest (tokens with the ingest permission) and training runs (staff
only: start, list, status, cancel).

Errors (409 one run at a time, 400 not enough data or a bad config, invalid tickets) are
SwitchboardErrors, rendered as ``{"code", "detail"}`` by the shared exception handler.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chatbot.core.rest import AnonThrottle, CanIngestTickets, LimitedJSONParser, UserThrottle
from finetune import serializers as s
from finetune.models import TrainingRun
from finetune.services import ticket_ingest, tickets_ingest_many
from finetune.training_queue import training_run_cancel, training_run_start
from finetune.training_selectors import training_run_list
from routing.apis import ApiView, validated
from routing.serializers import ErrorSerializer

TICKET_ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409, 413, 429, 503)}
TicketInput = PolymorphicProxySerializer(
    component_name="TicketIngest",
    serializers=[s.TicketInputSerializer, s.TicketBulkInputSerializer],
    resource_type_field_name=None,
)
TicketResult = PolymorphicProxySerializer(
    component_name="TicketIngestResult",
    serializers=[s.TicketResultSerializer, s.TicketBulkResultSerializer],
    resource_type_field_name=None,
)


def _ticket_result(result) -> dict:
    ticket = result.ticket
    team = ticket.team.slug if ticket.team_id else None
    return {"id": ticket.pk, "created": result.created, "team": team, "external_id": ticket.external_id}


class TicketIngestApi(ApiView):
    permission_classes = [IsAuthenticated, CanIngestTickets]

    @extend_schema(request=TicketInput, responses={200: TicketResult, 201: TicketResult, **TICKET_ERRORS})
    def post(self, request):
        """Ingest one ticket or `{"tickets": [...]}` (up to 500, all or nothing); idempotent on external_id.

        201 when anything was created, 200 when every ticket already existed. The token's user
        needs the `finetune.add_ticket` permission (403 `ingest_not_allowed` otherwise).
        """
        if isinstance(request.data, dict) and "tickets" in request.data:
            items = validated(s.TicketBulkInputSerializer, request.data)["tickets"]
            results = [_ticket_result(r) for r in tickets_ingest_many(items=items, user=request.user)]
            created = sum(r["created"] for r in results)
            body = {"results": results, "created": created, "existing": len(results) - created}
        else:
            item = validated(s.TicketInputSerializer, request.data)
            result = ticket_ingest(
                text=item["text"],
                team_slug=item.get("team") or None,
                external_id=item.get("external_id") or None,
                user=request.user,
            )
            body, created = _ticket_result(result), result.created
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409, 429)}


class TrainingRunApi(APIView):
    parser_classes = [LimitedJSONParser]
    throttle_classes = [AnonThrottle, UserThrottle]
    permission_classes = [IsAdminUser]


class TrainingRunListApi(TrainingRunApi):
    @extend_schema(responses={200: s.TrainingRunSerializer(many=True), **ERRORS})
    def get(self, request):
        """Recent training runs, newest first (at most 100)."""
        return Response(s.TrainingRunSerializer(training_run_list()[:100], many=True).data)

    @extend_schema(request=s.TrainingRunStartSerializer, responses={202: s.TrainingRunSerializer, **ERRORS})
    def post(self, request):
        """Queue a training run on every labelled ticket; a worker executes it (poll the run for progress)."""
        serializer = s.TrainingRunStartSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        run = training_run_start(user=request.user, config=serializer.validated_data.get("config"))
        return Response(s.TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(TrainingRunApi):
    @extend_schema(responses={200: s.TrainingRunSerializer, **ERRORS})
    def get(self, request, pk: int):
        """One run: status, stage, percent, ETA, metrics, error and the model version it produced."""
        return Response(s.TrainingRunSerializer(get_object_or_404(training_run_list(), pk=pk)).data)


class TrainingRunCancelApi(TrainingRunApi):
    @extend_schema(request=None, responses={202: s.TrainingRunSerializer, **ERRORS})
    def post(self, request, pk: int):
        """Cancel a queued run at once, or ask a running one to stop at its next step."""
        run = training_run_cancel(run=get_object_or_404(TrainingRun, pk=pk), user=request.user)
        return Response(s.TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
