"""REST API under /api/v1/: route, teams, models (list, detail, promote, roll back), health.

Views validate with a serializer, call one service or selector, and render. Errors of every kind
are rendered by ``exception_handler`` as ``{"code", "detail"[, "errors"]}``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from django.db import DatabaseError
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chatbot.core import metrics
from chatbot.core.errors import NoModelError, NotFoundError
from chatbot.core.rest import AnonThrottle, CachedTokenAuthentication, LimitedJSONParser, UserThrottle
from routing import selectors
from routing import serializers as s
from routing.conversation import conversation_predict
from routing.router import get_router, texts_validate
from routing.services import model_version_promote, model_version_rollback

logger = logging.getLogger(__name__)

ERRORS = {code: s.ErrorSerializer for code in (400, 401, 403, 404, 409, 413, 429, 503)}

RouteResult = PolymorphicProxySerializer(
    component_name="RouteResult",
    serializers=[s.PredictionSerializer, s.RouteBatchSerializer],
    resource_type_field_name=None,
)


def validated(serializer_class, data) -> dict:
    """The serializer's validated data (raises DRF's ValidationError, a 400)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ApiView(APIView):
    authentication_classes = [CachedTokenAuthentication, SessionAuthentication]
    parser_classes = [LimitedJSONParser]
    throttle_classes = [AnonThrottle, UserThrottle]
    permission_classes = [IsAuthenticated]


# One bound instance for every route request: building a serializer deep-copies its fields (about
# 0.1 ms of CPU a request, bench/request_cost.py); run_validation keeps no state on the instance (is_valid's
# _validated_data/_errors are what it leaves out), and raises the same ValidationError detail.
_ROUTE_INPUT = s.RouteInputSerializer()


def validated_route_input(data) -> dict:
    """The route request body, validated (raises DRF's ValidationError)."""
    return _ROUTE_INPUT.run_validation(data)


NO_MODEL_ANSWER = {
    "team": None,
    "team_name": None,
    "confidence": 0.0,
    "triage": True,
    "reason": "no_model",
    "language": None,
    "scores": {},
    "model_version": None,
}


def route_body(router, data: dict) -> dict:
    """The route response body for a validated request (``routing.fast_route`` answers with it too).

    With no model serving every answer is ``reason: no_model`` (200): the caller's own fallback
    (a human queue) takes it, as the chat's triage does. Recorded here, so for both paths: the
    latency and each answer's decision (chatbot.core.metrics).
    """
    started = time.perf_counter()
    body = _route_answer(router, data)
    kind = "texts" if "texts" in data else "messages" if "messages" in data else "text"
    answers = body["results"] if kind == "texts" else [body]
    metrics.route_observe(kind=kind, seconds=time.perf_counter() - started, answers=answers)
    return body


def _route_answer(router, data: dict) -> dict:
    try:
        if "messages" in data:
            # Every turn is checked, not only the newest ones the rule reads: a bad one is named.
            return asdict(conversation_predict(router, texts_validate(data["messages"], field="messages")))
        predictions = router.predict([data["text"]]) if "text" in data else router.predict(data["texts"], field="texts")
    except NoModelError:
        if "texts" in data:
            return {"results": [dict(NO_MODEL_ANSWER) for _ in data["texts"]], "model_version": None}
        return dict(NO_MODEL_ANSWER)
    if "text" in data:
        return predictions[0].as_dict()
    return {"results": [p.as_dict() for p in predictions], "model_version": predictions[0].model_version}


class RouteApi(ApiView):
    """Most requests never reach this view: ``routing.fast_route`` answers them with the same
    classes, serializer and ``route_body``, and hands this view every request it does not."""

    @extend_schema(request=s.RouteInputSerializer, responses={200: RouteResult, **ERRORS})
    def post(self, request):
        """Route one message (`text`), up to 64 separate ones (`texts`), or one conversation (`messages`).

        Every answer says why (`reason`): `routed`, `no_intent`, `out_of_scope`, `unsupported_language`,
        `low_confidence` or `no_model`; `team` is null for all but `routed` and `low_confidence`.
        """
        return Response(route_body(get_router(), validated_route_input(request.data)))


class TeamListApi(ApiView):
    @extend_schema(responses={200: s.TeamSerializer(many=True), **ERRORS})
    def get(self, request):
        return Response(s.TeamSerializer(selectors.team_list(), many=True).data)


class ModelListApi(ApiView):
    @extend_schema(responses={200: s.ModelVersionSerializer(many=True), **ERRORS})
    def get(self, request):
        return Response(s.ModelVersionSerializer(selectors.model_version_list(), many=True).data)


class ModelDetailApi(ApiView):
    @extend_schema(responses={200: s.ModelVersionDetailSerializer, **ERRORS})
    def get(self, request, pk: int):
        """One model version with its metrics and model card."""
        return Response(s.ModelVersionDetailSerializer(selectors.model_version_get(pk=pk)).data)


class ModelPromoteApi(ApiView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={200: s.ModelVersionDetailSerializer, **ERRORS})
    def post(self, request, pk: int):
        """Make this version active (staff). Every process switches within ROUTER_RELOAD_SECONDS."""
        version = model_version_promote(version=selectors.model_version_get(pk=pk), user=request.user)
        return Response(s.ModelVersionDetailSerializer(version).data)


class ModelRollbackApi(ApiView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={200: s.ModelVersionDetailSerializer, **ERRORS})
    def post(self, request):
        """Re-activate the version promoted before the active one (staff)."""
        return Response(s.ModelVersionDetailSerializer(model_version_rollback(user=request.user)).data)


class HealthApi(ApiView):
    # Load balancers poll this unauthenticated and often: no auth, no throttle.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(responses={200: s.HealthSerializer, 503: s.HealthSerializer})
    def get(self, request):
        """200 while this process can answer (status ok, degraded or no_model); 503 when its DB is unreachable."""
        try:
            return Response(selectors.router_health())
        except DatabaseError:
            # Anonymous callers see that the database is down, not where it is (host, file): that goes to the log.
            logger.exception("health: the database is unreachable")
            problem = "This process cannot reach its database; the details are in its log."
            body = {"status": "unavailable", "serving_version": None, "active_version": None, "problem": problem}
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)


class NotFoundApi(ApiView):
    """Any other path under /api/v1/ (an unknown endpoint, a non-integer id): the JSON 404 every
    API error has, instead of Django's HTML page."""

    permission_classes = [AllowAny]
    schema = None  # not an endpoint

    def get_view_name(self) -> str:
        return "API v1"  # the browsable API's breadcrumb for /api/v1/

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise NotFoundError(
            f"No API endpoint at {request.path}; ids are integers and /api/schema/ lists the endpoints."
        )
