"""The one domain error type. Services raise it; APIs, consumers and the admin render it.

Messages say what was received and how to fix it. ``code`` is stable and machine-readable.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    code = "invalid"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if http_status:
            self.http_status = http_status


class NotFoundError(SwitchboardError):
    code = "not_found"
    http_status = 404


class AgentAccessError(SwitchboardError):
    """An agent's access has ended (logged out, deactivated, no longer an agent): their socket closes."""

    code = "forbidden"
    http_status = 403


class ConflictError(SwitchboardError):
    code = "conflict"
    http_status = 409


class NoModelError(SwitchboardError):
    """No model version is serving (none trained yet, or the active one is unusable)."""

    code = "no_model"
    http_status = 503
