"""What the browser tests watch for: Content-Security-Policy violations reported in the console."""

from __future__ import annotations


def csp_violations(page) -> list[str]:
    """A list that fills with every CSP violation ``page`` reports from now on (empty: none)."""
    violations: list[str] = []

    def seen(message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", seen)
    return violations
