"""End to end in headless Chromium: the widget on the demo page and the agent console, against a
real uvicorn process routing with a real (tiny) ONNX model."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from chatbot.models import Conversation, Message
from routing.models import Team
from tests.browser import chromium_launch
from tests.chatbot.servers import asgi_servers
from tests.csp_console import csp_violations
from tests.ml_fixtures import install_active_tiny_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABELS = ["billing", "login", "tech"]
CUSTOMER_TEXT = "Refund my invoice charge payment price bill"
# Sent after the agent's reply, when routing no longer moves the conversation: markup must stay text.
HOSTILE_TEXT = "<img src=x onerror=alert(1)> thanks"


@pytest.fixture
def served_model(tmp_path) -> Path:
    """An active model version in a private model store, trained on synthetic billing/login/tech tickets."""
    store = tmp_path / "models"
    install_active_tiny_version(store, LABELS)
    return store


def _console_and_widget(browser, server: str, username: str):
    """The agent console logged in as ``username`` (password ``<username>-pass-123``) and the demo
    page with the widget opened, each in its own browser context; and the CSP violations both report."""
    from playwright.sync_api import expect

    console = browser.new_context().new_page()
    violations = csp_violations(console)
    console.goto(f"{server}/agent/")
    console.fill("#id_username", username)
    console.fill("#id_password", f"{username}-pass-123")
    console.click("button[type=submit]")
    expect(console.locator("#ag-conn")).to_have_text("online", timeout=15000)
    shop = browser.new_context().new_page()
    violations += csp_violations(shop)
    shop.goto(f"{server}/")
    shop.click(".sb-launcher")
    return console, shop, violations


ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


@contextlib.contextmanager
def lead_console(tmp_path, served_model, *, member_of: tuple[str, ...] = (), extra_teams: int = 0):
    """The LABELS teams (and ``extra_teams`` more), a staff agent "lead" (a member of ``member_of``),
    a server, and the lead's console beside the widget: yields (console, shop); no CSP violation after."""
    from playwright.sync_api import sync_playwright

    teams = {slug: Team.objects.create(slug=slug, name=slug.title()) for slug in LABELS}
    Team.objects.bulk_create([Team(slug=f"product-{i}", name=f"Product {i}") for i in range(extra_teams)])
    lead = get_user_model().objects.create_user("lead", "lead@example.com", "lead-pass-123", is_staff=True)
    for slug in member_of:
        teams[slug].members.add(lead)
    ARTIFACTS.mkdir(exist_ok=True)
    with asgi_servers(tmp_path, ["web"], MODEL_STORE=str(served_model)) as (server,):
        with sync_playwright() as playwright:
            browser = chromium_launch(playwright)
            console, shop, violations = _console_and_widget(browser, server, "lead")
            yield console, shop
            browser.close()
    assert violations == []


def test_widget_message_reaches_agent_console_and_reply_comes_back(tmp_path, served_model):
    """A customer's widget message lands in Billing's inbox; the agent's reply shows in the widget."""
    from playwright.sync_api import expect, sync_playwright

    teams = {slug: Team.objects.create(slug=slug, name=slug.title()) for slug in LABELS}
    agent = get_user_model().objects.create_user("bella", "bella@example.com", "bella-pass-123")
    teams["billing"].members.add(agent)
    ARTIFACTS.mkdir(exist_ok=True)

    with asgi_servers(tmp_path, ["web"], MODEL_STORE=str(served_model)) as (server,):
        with sync_playwright() as playwright:
            browser = chromium_launch(playwright)
            console, shop, violations = _console_and_widget(browser, server, "bella")
            shop.fill(".sb-input", CUSTOMER_TEXT)
            shop.press(".sb-input", "Enter")
            expect(shop.locator(".sb-team")).to_have_text("You're talking to Billing", timeout=15000)

            item = console.locator('[data-inbox="billing"] .ag-item')
            expect(item).to_contain_text("Refund my invoice", timeout=15000)
            item.first.click()
            expect(console.locator("#ag-log .ag-customer")).to_have_text(CUSTOMER_TEXT)
            console.fill("#ag-input", "Refund issued, it arrives in 3 days.")
            console.press("#ag-input", "Enter")

            expect(shop.locator(".sb-agent .sb-text")).to_have_text(
                "Refund issued, it arrives in 3 days.", timeout=15000
            )
            shop.fill(".sb-input", HOSTILE_TEXT)
            shop.press(".sb-input", "Enter")
            expect(console.locator("#ag-log .ag-customer").last).to_have_text(HOSTILE_TEXT, timeout=15000)
            expect(shop.locator(".sb-log .sb-msg").last).to_contain_text(HOSTILE_TEXT)
            # Rendered as text: the markup in the customer's message never became an element.
            assert shop.locator(".sb-log img").count() == 0 and console.locator("#ag-log img").count() == 0
            shop.screenshot(path=str(ARTIFACTS / "chat-widget.png"))
            console.screenshot(path=str(ARTIFACTS / "agent-console.png"))

            shop.reload()
            expect(shop.locator(".sb-log .sb-msg")).to_have_count(3, timeout=15000)
            browser.close()
    assert violations == []

    conversation = Conversation.objects.select_related("team").get()
    assert conversation.team.slug == "billing" and conversation.model_version_id is not None
    assert list(Message.objects.values_list("sender", flat=True)) == ["customer", "agent", "customer"]


def test_a_greeting_waits_in_the_console_then_the_question_moves_it_to_its_team(tmp_path, served_model):
    """The customer types "hi": the conversation shows under Waiting, in no team's inbox; the question
    then routes it into Billing's inbox and the widget says so (screenshots of both moments)."""
    from playwright.sync_api import expect

    with lead_console(tmp_path, served_model) as (console, shop):
        shop.fill(".sb-input", "hi")
        shop.press(".sb-input", "Enter")
        expect(console.locator('[data-inbox="waiting"] .ag-item')).to_contain_text("hi", timeout=15000)
        expect(console.locator('[data-inbox="billing"] .ag-item')).to_have_count(0)
        console.screenshot(path=str(ARTIFACTS / "agent-console-waiting.png"))

        shop.fill(".sb-input", "refund my invoice charge payment")
        shop.press(".sb-input", "Enter")
        expect(shop.locator(".sb-team")).to_have_text("You're talking to Billing", timeout=15000)
        expect(console.locator('[data-inbox="billing"] .ag-item')).to_contain_text("hi", timeout=15000)
        expect(console.locator('[data-inbox="waiting"] .ag-item')).to_have_count(0)
        console.screenshot(path=str(ARTIFACTS / "agent-console-routed.png"))

    conversation = Conversation.objects.select_related("team").get()
    assert conversation.team.slug == "billing" and conversation.routing_reason == "routed"


def test_a_staff_agent_of_many_teams_sees_only_the_inboxes_with_conversations(tmp_path, served_model):
    """With 40 teams the console folds the empty team inboxes into one line; the team a customer's
    question reaches appears with it (screenshot)."""
    from playwright.sync_api import expect

    with lead_console(tmp_path, served_model, extra_teams=37) as (console, shop):
        expect(console.locator(".ag-quiet")).to_have_text("40 more team inboxes are empty", timeout=15000)
        shop.fill(".sb-input", CUSTOMER_TEXT)
        shop.press(".sb-input", "Enter")
        expect(console.locator('[data-inbox="billing"] .ag-item')).to_contain_text("Refund", timeout=15000)
        expect(console.locator(".ag-quiet")).to_have_text("39 more team inboxes are empty")
        assert console.locator(".ag-inbox").count() == 3  # billing, triage, waiting
        console.screenshot(path=str(ARTIFACTS / "agent-console-many-teams.png"))


def test_admin_api_docs_and_browsable_api_run_under_the_csp(tmp_path, served_model):
    """Every page's scripts are files: the admin, a training run's live progress, Swagger UI and DRF's
    browsable API render and run with the strict script-src, and the browser reports no violation."""
    from playwright.sync_api import expect, sync_playwright

    from finetune.models import TrainingRun

    staff = get_user_model().objects.create_user(
        "lead", "lead@example.com", "lead-pass-123", is_staff=True, is_superuser=True
    )
    run = TrainingRun.objects.create(started_by=staff)
    with asgi_servers(tmp_path, ["web"], MODEL_STORE=str(served_model)) as (server,):
        with sync_playwright() as playwright:
            browser = chromium_launch(playwright)
            page = browser.new_page()
            violations = csp_violations(page)
            response = page.goto(f"{server}/admin/login/")
            assert "script-src 'self'" in response.headers["content-security-policy"]
            page.fill("#id_username", "lead")
            page.fill("#id_password", "lead-pass-123")
            with page.expect_navigation():
                page.click("input[type=submit]")
            page.goto(f"{server}/admin/auth/user/add/")  # the admin's own scripts (related-object popups, ...)
            expect(page.locator("#user_form")).to_be_visible()
            page.goto(f"{server}/admin/finetune/trainingrun/{run.pk}/change/")
            expect(page.locator("#run-stage")).to_have_text("waiting for a worker")
            with page.expect_response(lambda r: "/progress" in r.url, timeout=15000):
                pass  # run_progress.js polls the run's JSON progress
            page.goto(f"{server}/api/docs/")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Switchboard API", timeout=15000)
            page.goto(f"{server}/api/v1/teams")
            expect(page.locator(".response-info")).to_contain_text("HTTP 200 OK")
            assert page.evaluate("typeof jQuery") == "function"  # its scripts ran
            browser.close()
    assert violations == []


def test_an_agent_marks_small_talk_not_a_request_and_it_waits_again(tmp_path, served_model):
    """Thanks the model took for a billing request: the agent clicks "Not a request" under it; the
    conversation leaves Billing's inbox for Waiting, the message shows as no intent, and a no-intent
    ticket is recorded (screenshot)."""
    from playwright.sync_api import expect

    from finetune.models import Ticket

    with lead_console(tmp_path, served_model, member_of=("billing",)) as (console, shop):
        shop.fill(".sb-input", "thanks for the invoice refund payment")
        shop.press(".sb-input", "Enter")
        expect(shop.locator(".sb-team")).to_have_text("You're talking to Billing", timeout=15000)
        item = console.locator('[data-inbox="billing"] .ag-item')
        expect(item).to_contain_text("thanks for the invoice", timeout=15000)
        item.first.click()
        console.click("#ag-log .ag-not-request")
        expect(console.locator("#ag-log .ag-no-intent")).to_have_text("no intent", timeout=15000)
        expect(console.locator('[data-inbox="waiting"] .ag-item')).to_contain_text("thanks", timeout=15000)
        expect(console.locator('[data-inbox="billing"] .ag-item')).to_have_count(0)
        expect(shop.locator(".sb-team")).to_have_text("Finding the right team for you\u2026", timeout=15000)
        console.screenshot(path=str(ARTIFACTS / "agent-console-not-a-request.png"))

    conversation = Conversation.objects.get()
    assert conversation.routed_at is None and conversation.routing_reason == "no_intent"
    ticket = Ticket.objects.get()
    assert (ticket.text, ticket.no_intent, ticket.team_id, ticket.labelled_by) == (
        "thanks for the invoice refund payment",
        True,
        None,
        get_user_model().objects.get(username="lead"),
    )


def test_redoc_renders_the_api_offline_under_the_csp(tmp_path, served_model):
    """/api/redoc/ shows the API (title, operations) from local files only, its search (a blob: Web
    Worker) answers, the browser asks no other origin for anything and reports no CSP violation
    (screenshot)."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with asgi_servers(tmp_path, ["web"], MODEL_STORE=str(served_model)) as (server,):
        with sync_playwright() as playwright:
            browser = chromium_launch(playwright)
            page = browser.new_page()
            violations = csp_violations(page)
            elsewhere: list[str] = []
            own = (f"{server}/", f"blob:{server}/")  # the search worker's script is a blob: of the page
            page.on("request", lambda r: r.url.startswith(own) or elsewhere.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            response = page.goto(f"{server}/api/redoc/")
            assert "worker-src 'self' blob:" in response.headers["content-security-policy"]
            expect(page.locator(".api-info h1")).to_contain_text("Switchboard API", timeout=15000)
            expect(page.locator("h2", has_text="Route")).not_to_have_count(0)
            page.fill(".search-input", "route")
            expect(page.locator('[data-role="search:results"]')).to_contain_text("route", timeout=15000)
            page.screenshot(path=str(ARTIFACTS / "redoc.png"))
            browser.close()
    assert violations == [] and errors == [] and elsewhere == []
