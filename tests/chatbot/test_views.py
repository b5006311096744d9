"""The demo page and the agent console page."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_demo_page_embeds_the_widget(client: Client):
    """The home page is a product page with the widget script and its server address."""
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'src="/static/chatbot/widget.js" data-server="http://testserver"' in body


@pytest.mark.django_db
def test_agent_console_redirects_anonymous_to_login(client: Client):
    """Anonymous visitors are sent to the agent login page, then back to the console."""
    response = client.get("/agent/")
    assert response.status_code == 302 and response["Location"] == "/agent/login/?next=/agent/"


def test_agent_console_forbids_users_outside_teams(client: Client, plain_user):
    """A logged-in user who is neither staff nor in a team gets 403."""
    client.force_login(plain_user)
    assert client.get("/agent/").status_code == 403


def test_team_member_logs_in_and_sees_console(client: Client, agent_user):
    """A non-staff team member logs in through the agent login form and gets their inbox page."""
    response = client.post("/agent/login/", {"username": "agent", "password": "agent-pass-123", "next": "/agent/"})
    assert response.status_code == 302 and response["Location"] == "/agent/"
    page = client.get("/agent/")
    assert page.status_code == 200
    assert '"slug": "billing"' in page.content.decode() and "chatbot/agent.js" in page.content.decode()


def test_the_move_to_list_puts_the_agents_own_teams_first(client: Client, agent_user):
    """With many teams an agent finds their own: two groups, "Your teams" then "Other teams"."""
    client.force_login(agent_user)
    page = client.get("/agent/").content.decode()
    select = page[page.index('id="ag-team-select"') : page.index("</select>")]
    mine, others = select.split('<optgroup label="Other teams">')
    assert '<optgroup label="Your teams">' in mine and 'value="billing"' in mine and 'value="accounts"' not in mine
    assert 'value="accounts"' in others and 'value="bugs"' in others and 'value="billing"' not in others
