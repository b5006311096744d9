"""django-csp's middleware with the policy header built once, not on every response.

Building it (``build_policy`` over the settings' directives) took about 0.1 ms of every request,
the route fast path's included. Only the Redoc page changes the policy per response (its
``csp_update`` adds ``worker-src 'self' blob:``, chatbot/project/urls.py); such a response, like a
request that asked for a nonce, gets django-csp's own path.
"""

from __future__ import annotations

from csp.constants import HEADER
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings

PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)


class CachedCSPMiddleware(CSPMiddleware):
    _built: tuple[object, str] | None = None

    def process_response(self, request, response):
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None)
        report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        if (
            not policy
            or policy.get("EXCLUDE_URL_PREFIXES")
            or report_only
            or getattr(request, "_csp_nonce", None) is not None
            or HEADER in response
            or any(hasattr(response, name) for name in PER_RESPONSE)
            or (settings.DEBUG and response.status_code in (404, 500))
        ):
            return super().process_response(request, response)
        response[HEADER] = self._header(policy)
        # As django-csp does: a nonce asked for after the header is written is an error, not a silent no-op.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response

    @classmethod
    def _header(cls, policy: dict) -> str:
        built = cls._built
        if built is None or built[0] is not policy:  # settings changed (tests): build again
            built = cls._built = (policy, build_policy(**vars(PolicyParts())))
        return built[1]
