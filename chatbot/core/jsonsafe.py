"""The one JSON loader for untrusted input (REST bodies, websocket frames): nesting is limited.

Python's json module recurses once per nesting level, so 100 KB of ``[[[...]]]`` raises
RecursionError, which no caller expects. The depth is measured first, on the brackets outside
strings (a regex pass, not a Python loop per character), and only then is the text parsed.
Core module: it imports no app.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from chatbot.core.errors import SwitchboardError

# Deeper than any payload this API accepts (a route or ticket body is 3 levels deep).
MAX_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings' contents don't count)."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    depth = deepest = 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def json_loads_guarded(
    text: str | bytes, *, max_depth: int = MAX_DEPTH, parse_constant: Callable[[str], Any] | None = None
) -> Any:
    """``json.loads(text)``, refusing input nested deeper than ``max_depth``.

    Raises SwitchboardError ``too_deep`` or ``bad_json`` (with json's reason); never RecursionError.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SwitchboardError(f"JSON must be UTF-8 text: {exc}.", code="bad_json") from None
    # Fewer opening brackets than the limit cannot nest past it: skip the scan.
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise SwitchboardError(
            f"JSON is nested more than {max_depth} levels deep; send flatter data "
            f"(this API never needs more than a few levels).",
            code="too_deep",
        )
    try:
        return json.loads(text, parse_constant=parse_constant)
    except ValueError as exc:
        raise SwitchboardError(f"JSON parse error - {exc}", code="bad_json") from None
    except RecursionError:  # the scan above makes this unreachable; kept as the last line of defence
        raise SwitchboardError(f"JSON is nested too deeply (limit {max_depth}).", code="too_deep") from None
