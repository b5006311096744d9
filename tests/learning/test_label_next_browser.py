"""Label next in a real headless Chromium, driven only from the keyboard."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.models import Ticket
from tests.browser import CHROMIUM, chromium_launch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _label_with_keyboard(base_url: str) -> list[str]:
    """Log in, open label next, then: 2 + Enter, Enter, S, X. Returns the texts shown, in order."""
    from playwright.sync_api import sync_playwright

    shown = []
    with sync_playwright() as playwright:
        browser = chromium_launch(playwright)
        page = browser.new_page()
        page.goto(f"{base_url}/admin/login/?next=/admin/finetune/label-next/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", "staff-pass-123")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        for keys in (["2", "Enter"], ["Enter"], ["s"], ["x"]):
            shown.append(page.text_content("#ticket-text"))
            for key in keys[:-1]:
                page.keyboard.press(key)
            with page.expect_navigation():
                page.keyboard.press(keys[-1])
        shown.append(page.text_content("#label-next"))
        browser.close()
    return shown


def test_keyboard_only_labelling(live_server, staff_user, teams, make_ticket, scripted_router):
    """Number keys pick a team, Enter labels (accepting the suggestion), S skips, X excludes."""
    assert Path(CHROMIUM).exists(), "install Debian chromium: apt-get install -y chromium"
    texts = ["torn between teams", "fairly unsure", "somewhat sure", "quite sure"]
    first, second, third, fourth = (make_ticket(text) for text in texts)
    scripted_router(
        {
            first.text: {"billing": 0.34, "accounts": 0.30, "bugs": 0.36},
            second.text: {"billing": 0.1, "accounts": 0.5, "bugs": 0.4},
            third.text: {"billing": 0.1, "accounts": 0.2, "bugs": 0.7},
            fourth.text: {"billing": 0.95, "accounts": 0.03, "bugs": 0.02},
        }
    )

    shown = _label_with_keyboard(live_server.url)

    assert shown[:4] == texts
    assert "Nothing left to label except the 1 ticket you skipped" in shown[4]
    rows = {t.text: (t.team.slug if t.team else None, t.labelled_by_id, t.excluded) for t in Ticket.objects.all()}
    assert rows == {
        "torn between teams": ("billing", staff_user.pk, False),
        "fairly unsure": ("accounts", staff_user.pk, False),
        "somewhat sure": (None, None, False),
        "quite sure": (None, None, True),
    }
