"""REST API for training runs (staff only): start, list, status, cancel.

Errors (409 one run at a time, 400 not enough data or a bad config) are SwitchboardErrors,
rendered as ``{"code", "detail"}`` by the shared exception handler.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from finetune.models import TrainingRun
from finetune.serializers import TrainingRunSerializer, TrainingRunStartSerializer
from finetune.training import training_run_cancel, training_run_start
from finetune.training_selectors import training_run_list
from chatbot.core.rest import AnonThrottle, LimitedJSONParser, UserThrottle
from routing.serializers import ErrorSerializer

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409, 429)}


class TrainingRunApi(APIView):
    parser_classes = [LimitedJSONParser]
    throttle_classes = [AnonThrottle, UserThrottle]
    permission_classes = [IsAdminUser]


class TrainingRunListApi(TrainingRunApi):
    @extend_schema(responses={200: TrainingRunSerializer(many=True), **ERRORS})
    def get(self, request):
        """Recent training runs, newest first (at most 100)."""
        return Response(TrainingRunSerializer(training_run_list()[:100], many=True).data)

    @extend_schema(request=TrainingRunStartSerializer, responses={202: TrainingRunSerializer, **ERRORS})
    def post(self, request):
        """Queue a training run on every labelled ticket; a worker executes it (poll the run for progress)."""
        serializer = TrainingRunStartSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        run = training_run_start(user=request.user, config=serializer.validated_data.get("config"))
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(TrainingRunApi):
    @extend_schema(responses={200: TrainingRunSerializer, **ERRORS})
    def get(self, request, pk: int):
        """One run: status, stage, percent, ETA, metrics, error and the model version it produced."""
        return Response(TrainingRunSerializer(get_object_or_404(training_run_list(), pk=pk)).data)


class TrainingRunCancelApi(TrainingRunApi):
    @extend_schema(request=None, responses={202: TrainingRunSerializer, **ERRORS})
    def post(self, request, pk: int):
        """Cancel a queued run at once, or ask a running one to stop at its next step."""
        run = training_run_cancel(run=get_object_or_404(TrainingRun, pk=pk), user=request.user)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
