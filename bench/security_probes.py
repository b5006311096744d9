"""Issue 17's security probes, run by hand: a real server of this tree, attacked as a client would.

    .venv/bin/python bench/security_probes.py [--artifact DIR] [--layer redis|memory] [--json FILE]

One uvicorn of this tree on loopback, started as bench/open_world.py starts a release (its
``Release``: temp SQLite database, ``migrate``, the model registered as the active version, the
command of bench/chat_load.py's ``server_command`` with ``--ws-max-size``), with the bench's
production settings (``DEBUG=0``, a real ``SECRET_KEY``, ``ALLOWED_HOSTS=127.0.0.1``; only
``SECURE_SSL_REDIRECT=0``: loopback has no TLS) after ``collectstatic``. The probe also sets
``TRUSTED_PROXY_COUNT=1`` (each probe comes from its own ``X-Forwarded-For`` address, so the
per-address limits of one probe do not touch the next) and ``CHAT_HANDSHAKES_PER_MINUTE=50``.
The model is ``--artifact DIR``, else the tests' tiny artifact (tests/ml_fixtures.py, seconds).

``--layer redis`` (the default when ``redis-server`` is on PATH) starts a private redis-server on
loopback for the channel layer and cache: account changes made in another process (the probe's
``manage.py shell``) then reach the server's open sockets, as in a deployment. With ``memory``
those "pushed at once" rows are NOT RUN (the in-memory layer is one process).

Then issue 17's list (items 1-8), over HTTP and websockets only; the database is touched only
where the issue says an operator changes it (``manage.py shell``) and to count rows. Prints one
table row per probe (PASS / FAIL / NOT RUN, with what was sent, expected and observed) and exits
1 if any probe failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

import jsonschema
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import chat_load  # noqa: E402
import route_bench  # noqa: E402
from open_world import Release, free_port, manage, shell_value  # noqa: E402

HANDSHAKES_PER_MINUTE = 50
PASSWORD = "probe-pass-8472"
LABELS = ["accounts", "billing", "bugs"]
NESTED_100K = "[" * 50_000 + "]" * 50_000  # 100 KB: RecursionError in a plain json.loads
NESTED_FRAME = "[" * 15_000 + "]" * 15_000  # 30 KB: under the chat's 32 KiB frame limit, as deep
CSP_PAGES = ["/", "/agent/login/", "/admin/login/", "/api/docs/"]
PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"

SETUP = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from routing.models import ModelVersion, Team
users, password = get_user_model().objects, __import__("os").environ["PROBE_PASSWORD"]
staff = users.create_user("probe-staff", "s@example.com", password, is_staff=True, is_superuser=True)
plain = users.create_user("probe-user", "u@example.com", password)
teams = list(Team.objects.filter(active=True))
for mode in ("deactivate", "team", "session"):
    agent = users.create_user(f"probe-agent-{mode}", f"{mode}@example.com", password)
    agent.teams.add(*teams)
print("PROBE_SETUP", json.dumps({
    "staff_token": Token.objects.create(user=staff).key,
    "token": Token.objects.create(user=plain).key,
    "version": ModelVersion.objects.get(state="active").pk,
    "artifact_dir": ModelVersion.objects.get(state="active").artifact_dir,
    "teams": sorted(team.slug for team in teams),
}))
"""
REVOKE = """
import os
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from routing.models import Team
mode, user = os.environ["PROBE_MODE"], get_user_model().objects.get(username=os.environ["PROBE_USER"])
if mode == "deactivate":
    user.is_active = False
    user.save()
elif mode == "team":
    Team.objects.get(slug=os.environ["PROBE_TEAM"]).members.remove(user)
else:
    Session.objects.filter(session_key=os.environ["PROBE_SESSION"]).delete()
print("PROBE_DONE", mode)
"""
COUNTS = """
import json, os
from chatbot.models import Conversation, Message
from finetune.models import Ticket, TrainingRun
ids = json.loads(os.environ.get("PROBE_IDS", "[]"))
print("PROBE_COUNTS", json.dumps({
    "conversations": Conversation.objects.count(),
    "training_runs": TrainingRun.objects.count(),
    "agent_messages": Message.objects.filter(conversation_id__in=ids, sender="agent").count(),
    "tickets": Ticket.objects.filter(source="correction").count(),
    "teams": {str(c.pk): c.team.slug if c.team else None for c in Conversation.objects.filter(pk__in=ids)},
}))
"""


@dataclass
class Result:
    probe: str
    sent: str
    expected: str
    observed: str
    status: str


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table_lines(results: list[Result]) -> list[str]:
    """The results as a Markdown table (readable in a terminal too), one row per probe."""
    lines = ["| probe | sent | expected | observed | result |", "| --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {_cell(r.probe)} | {_cell(r.sent)} | {_cell(r.expected)} | {_cell(r.observed)} | {r.status} |")
    return lines


def summary_line(results: list[Result]) -> str:
    counts = {status: sum(r.status == status for r in results) for status in (PASS, FAIL, NOT_RUN)}
    return f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_RUN]} not run, of {len(results)} probes"


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


# ----- a client of the server -----


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None):
        """(status, headers with lower-case names, set-cookie pairs, body bytes)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            content = response.read()
            cookies = {}
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    pair = value.split(";", 1)[0]
                    cookies[pair.split("=", 1)[0]] = pair.split("=", 1)[1]
            return response.status, {k.lower(): v for k, v in response.getheaders()}, cookies, content
        finally:
            connection.close()

    def api(self, method: str, path: str, token: str | None, body=None, address: str = "198.51.100.1"):
        headers = {"X-Forwarded-For": address, "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        status, headers, _, content = self.request(method, path, body, headers)
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        return status, headers, parsed, content

    def login(self, path: str, username: str, password: str, address: str, cookies: dict | None = None):
        """GET the login form, POST it as a browser does; (status, cookies after, csrf state for reuse)."""
        cookies = dict(cookies or {})
        if "csrftoken" not in cookies or "form_token" not in cookies:
            status, _, set_cookies, content = self.request("GET", path, headers={"X-Forwarded-For": address})
            cookies.update(set_cookies)
            match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', content)
            if status != 200 or match is None:
                raise SystemExit(f"GET {path} answered {status} without a login form")
            cookies["form_token"] = match.group(1).decode()
        form = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": cookies["form_token"]}
        )
        headers = {
            "X-Forwarded-For": address,
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookies['csrftoken']}",
            "Origin": self.http,
            "Referer": self.http + path,
        }
        status, _, set_cookies, _ = self.request("POST", path, form, headers)
        cookies.update(set_cookies)
        return status, set_cookies, cookies


async def frame_wait(ws, match, timeout: float) -> tuple[dict | None, list[dict], int | None]:
    """Read frames until one matches (returned), the socket closes (its code) or timeout."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            frame = json.loads(await asyncio.wait_for(ws.recv(), left))
            seen.append(frame)
            if match(frame):
                return frame, seen, None
    except TimeoutError:
        return None, seen, None
    except ConnectionClosed as exc:
        return None, seen, exc.rcvd.code if exc.rcvd else 1006
    return None, seen, None


@contextlib.asynccontextmanager
async def customer(client: Client, address: str):
    async with connect(
        f"{client.ws}/ws/chat/",
        origin=client.http,
        additional_headers={"X-Forwarded-For": address},
        open_timeout=30,
        max_size=None,
    ) as ws:
        yield ws


@contextlib.asynccontextmanager
async def agent(client: Client, session: str, origin: str | None = None, address: str = "198.51.100.9"):
    headers = {"Cookie": f"sessionid={session}", "X-Forwarded-For": address}
    origin = origin or f"https://127.0.0.1:{client.port}"
    async with connect(f"{client.ws}/ws/agent/", origin=origin, additional_headers=headers, open_timeout=30) as ws:
        yield ws


async def attempt(ws, frame: dict, match, timeout: float = 10) -> tuple[dict | None, int | None]:
    """Send a frame; (the first answer matching, None) or (that answer or None, the close code if it closed)."""
    try:
        await ws.send(json.dumps(frame))
    except ConnectionClosed as exc:
        return None, exc.rcvd.code if exc.rcvd else 1006
    answer, _, code = await frame_wait(ws, match, timeout)
    if answer is not None and answer["type"] == "error" and code is None:
        _, _, code = await frame_wait(ws, lambda f: False, 1)  # an ended access closes right after its error
    return answer, code


def frame_conversation_ids(frame: dict) -> set:
    """The conversation ids a frame from the agent socket is about."""
    nested = frame.get("conversation")
    return {frame.get("conversation_id"), nested.get("id") if isinstance(nested, dict) else None} - {None}


def answer_text(answer: dict | None, code: int | None) -> str:
    said = f"{answer['type']} {answer.get('code', '')}".strip() if answer else "no answer"
    return said + (f", close {code}" if code else "")


async def conversation_start(client: Client, text: str, address: str) -> tuple[int, dict | None]:
    """A customer's first message, acked and routed; (conversation id, the routed frame)."""
    async with customer(client, address) as ws:
        await ws.send(json.dumps({"type": "message", "text": text, "client_id": "c1"}))
        started, _, _ = await frame_wait(ws, lambda f: f["type"] in ("conversation", "error"), 20)
        if started is None or started["type"] != "conversation":
            raise SystemExit(f"a customer's first message did not start a conversation: {started}")
        routed, _, _ = await frame_wait(ws, lambda f: f["type"] == "routed", 20)
        return started["id"], routed


async def agent_refused(client: Client, session: str, origin: str | None = None) -> str:
    """'' if the console socket opens (an inbox frame), else how it was refused."""
    try:
        async with agent(client, session, origin) as ws:
            inbox, seen, code = await frame_wait(ws, lambda f: f["type"] == "inbox", 10)
            if inbox is not None:
                return ""
            return f"close {code or ws.close_code} after {[f.get('code', f['type']) for f in seen]}"
    except InvalidStatus as exc:
        return f"handshake HTTP {exc.response.status_code}"
    except ConnectionClosed as exc:
        return f"close {exc.rcvd.code if exc.rcvd else 1006}"


# ----- the probes -----


class Probes:
    def __init__(self, release: Release, setup: dict, layer: str, store: Path) -> None:
        self.release, self.setup, self.layer, self.store = release, setup, layer, store
        self.client = Client(release.port)
        self.results: list[Result] = []

    def add(self, probe: str, sent: str, expected: str, observed: str, status: str) -> None:
        self.results.append(Result(probe, sent, expected, observed, status))
        print(f"  {status:<7} {probe}", flush=True)

    def shell(self, script: str, marker: str, **env: str) -> str:
        return shell_value(self.release.tree, {**self.release.env, **env}, script, marker)

    def counts(self, ids: list[int] = ()) -> dict:
        return json.loads(self.shell(COUNTS, "PROBE_COUNTS", PROBE_IDS=json.dumps(list(ids))))

    def routed_text(self) -> tuple[str, str]:
        """A text the served model routes confidently (not triage), and its team."""
        from tests.ml_fixtures import TOPICS

        candidates = [" ".join(words[:4]) for words in TOPICS] + [
            "I was charged twice, please refund my card payment",
            "I cannot log in to my account, the password reset fails",
        ]
        for text in candidates:
            status, _, answer, _ = self.client.api(
                "POST", "/api/v1/route", self.setup["token"], json.dumps({"text": text})
            )
            if status == 200 and answer.get("reason") == "routed" and not answer.get("triage"):
                return text, answer["team"]
        raise SystemExit("the served model routes none of the probe's texts to a team")

    # 1. revoked agent

    async def revoked_agent(self) -> None:
        text, team = self.routed_text()
        others = [slug for slug in self.setup["teams"] if slug != team]
        for index, mode in enumerate(("deactivate", "team", "session")):
            username = f"probe-agent-{mode}"
            status, _, cookies = self.client.login("/agent/login/", username, PASSWORD, f"203.0.113.{10 + index}")
            if status != 302 or "sessionid" not in cookies:
                raise SystemExit(f"{username} could not log in at /agent/login/ ({status})")
            session = cookies["sessionid"]
            conversation_id, _ = await conversation_start(self.client, text, f"203.0.113.{20 + index}")
            await self._revoke_one(mode, username, session, team, others, conversation_id, text)

    async def _revoke_one(self, mode, username, session, team, others, conversation_id, text) -> None:
        label = {"deactivate": "deactivated", "team": f"removed from team {team}", "session": "session deleted"}[mode]
        how = {
            "deactivate": "user.is_active=False; user.save()",
            "team": f"Team({team}).members.remove(user)",
            "session": "Session.objects.filter(session_key=…).delete()",
        }[mode]
        push_expected = {
            "deactivate": "error account_inactive, close 4403",
            "team": f"new inbox frame without {team}",
            "session": "error session_ended, close 4403",
        }[mode]
        before = self.counts([conversation_id])
        async with agent(self.client, session) as ws:
            inbox, _, _ = await frame_wait(ws, lambda f: f["type"] == "inbox", 15)
            await ws.send(json.dumps({"type": "open", "conversation_id": conversation_id}))
            history, _, _ = await frame_wait(ws, lambda f: f["type"] in ("history", "error"), 10)
            control = inbox is not None and history is not None and history["type"] == "history"
            self.shell(
                REVOKE, "PROBE_DONE", PROBE_MODE=mode, PROBE_USER=username, PROBE_TEAM=team, PROBE_SESSION=session
            )
            if mode == "team":
                pushed_frame, seen, code = await frame_wait(ws, lambda f: f["type"] == "inbox", 5)
                pushed = pushed_frame is not None and team not in {t["slug"] for t in pushed_frame["teams"]}
                push_seen = (
                    f"inbox frame, teams {[t['slug'] for t in pushed_frame['teams']]}"
                    if pushed_frame
                    else "no inbox frame"
                )
            else:
                error, seen, code = await frame_wait(ws, lambda f: f["type"] == "error", 5)
                if error is not None and code is None:
                    _, _, code = await frame_wait(ws, lambda f: False, 3)
                want = "account_inactive" if mode == "deactivate" else "session_ended"
                pushed = error is not None and error["code"] == want and code == 4403
                push_seen = f"error {error['code'] if error else None}, close {code}"
            refusals, acted = [], False
            if ws.close_code is None and code is None:
                # Still open: what it may still do. A reply and a reassign on the conversation it could open.
                reply = {"type": "reply", "conversation_id": conversation_id, "text": "hi", "client_id": "r1"}
                answer, code = await attempt(ws, reply, lambda f: f["type"] in ("ack", "error"))
                acted |= answer is not None and answer["type"] == "ack"
                refusals.append(f"reply → {answer_text(answer, code)}")
                if code is None and others:
                    reassign = {"type": "reassign", "conversation_id": conversation_id, "team": others[0]}
                    answer, code = await attempt(
                        ws, reassign, lambda f: f["type"] == "error" or f["type"].startswith("conversation.")
                    )
                    acted |= answer is not None and answer["type"] != "error"
                    refusals.append(f"reassign → {answer_text(answer, code)}")
            leaked: dict | None = None
            if mode == "team" and ws.close_code is None and code is None:
                # After the refused actions: a new conversation of the team it left must not reach it.
                new_id, _ = await conversation_start(self.client, text, "203.0.113.29")
                leaked, _, _ = await frame_wait(ws, lambda f: new_id in frame_conversation_ids(f), 3)
        reconnect = ""
        if mode != "team":
            reconnect = await agent_refused(self.client, session)
            refusals.append(f"reconnect → {reconnect or 'opened'}")
        after = self.counts([conversation_id])
        unchanged = (
            after["agent_messages"] == before["agent_messages"] == 0
            and after["tickets"] == before["tickets"]
            and after["teams"] == before["teams"]
        )
        refused_ok = (
            control
            and unchanged
            and not acted
            and (mode == "team" or bool(reconnect))
            and (mode != "team" or any("not_found" in r for r in refusals))
        )
        write = f"written: {after['agent_messages']} agent messages, {after['tickets'] - before['tickets']} tickets"
        observed = (
            f"before: inbox {'yes' if inbox else 'no'}, open → {history['type'] if history else None}; after: "
            + "; ".join(refusals or ["socket already closed"])
            + f"; {write}, team {before['teams'].get(str(conversation_id))} → {after['teams'].get(str(conversation_id))}"
        )
        self.add(
            f"1 agent {label}: refused",
            f"/ws/agent/ open, then via manage.py shell: {how}; reply, reassign, reconnect",
            "every later action refused (not_found / 4403 / 4401), no message, no ticket, conversation stays",
            observed,
            verdict(refused_ok),
        )
        if mode == "team":
            self.add(
                f"1 agent {label}: stops hearing it",
                f"then a customer starts a new conversation routed to {team}",
                "no frame about it on the agent's socket within 3 s",
                f"frame {leaked['type']} about it delivered" if leaked else "nothing about it delivered",
                verdict(leaked is None),
            )
        if self.layer != "redis":
            self.add(
                f"1 agent {label}: pushed at once",
                how + " in manage.py shell",
                push_expected + " within 5 s",
                "in-memory channel layer: a change in another process cannot reach the server's sockets",
                NOT_RUN,
            )
        else:
            self.add(
                f"1 agent {label}: pushed at once",
                how + " in manage.py shell (Redis layer)",
                push_expected + " within 5 s",
                push_seen,
                verdict(pushed),
            )

    # 2. handshakes

    async def handshakes(self) -> None:
        if time.time() % 60 > 40:  # the limit counts per clock minute: keep the burst inside one
            await asyncio.sleep(61 - time.time() % 60)
        before = self.counts()["conversations"]
        gate = asyncio.Semaphore(50)

        async def one() -> str:
            async with gate:
                try:
                    async with customer(self.client, "203.0.113.50") as ws:
                        first, _, code = await frame_wait(ws, lambda f: True, 10)
                        if first and first["type"] == "error":
                            _, _, code = await frame_wait(ws, lambda f: False, 5)
                            return f"{first['code']}/{code}"
                        return first["type"] if first else f"close {code}"
                except (OSError, WebSocketException) as exc:
                    return type(exc).__name__

        started = time.monotonic()
        outcomes = await asyncio.gather(*(one() for _ in range(200)))
        seconds = time.monotonic() - started
        after = self.counts()["conversations"]
        tally = {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))}
        self.add(
            "2 token-less handshakes store nothing",
            f"200 /ws/chat/ handshakes without a token, one address, {seconds:.1f} s",
            "Conversation rows unchanged",
            f"Conversation rows {before} → {after}",
            verdict(after == before),
        )
        accepted = tally.get("history", 0)
        other = await first_frame_from(self.client)
        self.add(
            "2 handshakes limited per address",
            f"the same 200 (CHAT_HANDSHAKES_PER_MINUTE={HANDSHAKES_PER_MINUTE}, set for the probe; default 60);"
            " then 1 from another address",
            f"≤ {HANDSHAKES_PER_MINUTE} accepted (history), the rest error too_many_connections + close 4429;"
            " the other address accepted",
            f"{tally}; other address → {other}",
            verdict(
                accepted <= HANDSHAKES_PER_MINUTE
                and tally.get("too_many_connections/4429", 0) == 200 - accepted
                and other == "history"
            ),
        )

    # 3. nested JSON

    async def nested_json(self) -> None:
        status, headers, body, _ = self.client.api("POST", "/api/v1/route", self.setup["token"], NESTED_100K)
        self.add(
            "3 nested JSON, REST",
            "POST /api/v1/route, 100 KB of [[[…]]] (token)",
            "400 JSON {code: too_deep}",
            f"{status} {headers.get('content-type')} code={body.get('code') if isinstance(body, dict) else body!r}",
            verdict(status == 400 and isinstance(body, dict) and body.get("code") == "too_deep"),
        )
        async with customer(self.client, "203.0.113.30") as ws:
            await frame_wait(ws, lambda f: f["type"] == "history", 10)
            await ws.send(NESTED_FRAME)
            error, _, code = await frame_wait(ws, lambda f: f["type"] == "error", 10)
            await ws.send(json.dumps({"type": "message", "text": "still there?", "client_id": "after"}))
            ack, _, code2 = await frame_wait(ws, lambda f: f["type"] == "ack", 15)
        self.add(
            "3 nested JSON, chat frame",
            "/ws/chat/ frame of 30 KB [[[…]]] (under the 32 KiB frame limit), then a message",
            "error frame too_deep; the socket stays up and acks the next message",
            f"error {error.get('code') if error else None} (close {code}); next message → "
            f"{'ack' if ack else f'no ack (close {code2})'}",
            verdict(error is not None and error.get("code") == "too_deep" and ack is not None),
        )

    # 4. CSP, static files

    def csp_and_static(self) -> None:
        seen, ok = [], True
        pages = {}
        for path in CSP_PAGES:
            status, headers, _, content = self.client.request("GET", path, headers={"X-Forwarded-For": "203.0.113.40"})
            pages[path] = content
            policy = headers.get("content-security-policy", "")
            script = next((d.strip() for d in policy.split(";") if d.strip().startswith("script-src")), "")
            good = status == 200 and script == "script-src 'self'" and "frame-ancestors 'none'" in policy
            ok &= good
            seen.append(f"{path} {status} {script or 'no CSP'}")
        status, headers, _, _ = self.client.api(
            "POST", "/api/v1/route", self.setup["token"], json.dumps({"text": "hi"})
        )
        route_csp = headers.get("content-security-policy", "") == self.client.request("GET", "/")[1].get(
            "content-security-policy"
        )
        ok &= status == 200 and route_csp
        seen.append(f"POST /api/v1/route {status} {'same CSP' if route_csp else 'CSP differs or missing'}")
        self.add(
            "4 Content-Security-Policy",
            "GET " + ", ".join(CSP_PAGES) + "; POST /api/v1/route (fast path)",
            "every answer: script-src 'self', frame-ancestors 'none'; the route fast path the same header",
            "; ".join(seen),
            verdict(ok),
        )
        status, _, _, content = self.client.request(
            "GET", "/static/..%2f..%2fsettings.py", headers={"X-Forwarded-For": "203.0.113.40"}
        )
        self.add(
            "4 static path traversal",
            "GET /static/..%2f..%2fsettings.py",
            "404, no file content",
            f"{status}, SECRET_KEY in body: {b'SECRET_KEY' in content}",
            verdict(status == 404 and b"SECRET_KEY" not in content),
        )
        hashed = re.search(rb'src="(/static/chatbot/widget\.[0-9a-f]{12}\.js)"', pages["/"])
        rows, ok = [], hashed is not None
        for path in ["/static/chatbot/widget.js"] + ([hashed.group(1).decode()] if hashed else []):
            status, headers, _, _ = self.client.request("GET", path)
            cache = headers.get("cache-control", "")
            nosniff = headers.get("x-content-type-options") == "nosniff"
            want = (
                "immutable" in cache and "max-age=315360000" in cache
                if path != "/static/chatbot/widget.js"
                else ("max-age=60" in cache)
            )
            ok &= status == 200 and nosniff and want
            rows.append(f"{path} {status} nosniff={nosniff} cache-control={cache!r}")
        self.add(
            "4 static file headers",
            "GET /static/chatbot/widget.js and the hashed name the page links",
            "200, nosniff; plain name max-age=60, hashed name 10 years + immutable",
            "; ".join(rows) if rows else "no hashed widget name on /",
            verdict(ok),
        )

    # 5. websocket max size

    async def max_size(self) -> None:
        command = chat_load.server_command("uvicorn", self.release.port, self.release.application)
        option = command[command.index("--ws-max-size") + 1] if "--ws-max-size" in command else None
        code, frames = None, []
        try:
            async with customer(self.client, "203.0.113.55") as ws:
                await frame_wait(ws, lambda f: f["type"] == "history", 10)
                payload = json.dumps({"type": "message", "text": "x" * (1 << 20), "client_id": "big"})
                try:
                    await ws.send(payload)
                    _, frames, code = await frame_wait(ws, lambda f: False, 10)
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else 1006
                code = code or ws.close_code
        except WebSocketException as exc:
            code = repr(exc)[:80]
        self.add(
            "5 1 MiB websocket frame",
            f"/ws/chat/ text frame of 1 MiB; server: {' '.join(Path(c).name for c in command[:2])} … --ws-max-size {option}",
            "the server refuses it before the app: close 1009 (message too big)",
            f"close {code}; frames before: {[f.get('code', f['type']) for f in frames]}",
            verdict(code == 1009),
        )
        documented = {
            "README.md": (ROOT / "README.md").read_text(),
            "scripts/demo.sh": (ROOT / "scripts" / "demo.sh").read_text(),
            "bench/chat_load.py server_command": " ".join(command),
            "bench/route_bench.py server_command": " ".join(route_bench.server_command("uvicorn", 1)),
        }
        missing = [name for name, text in documented.items() if "uvicorn" in text and "--ws-max-size" not in text]
        self.add(
            "5 documented commands pass the max size",
            "read: " + ", ".join(documented),
            "every uvicorn command there passes --ws-max-size",
            "missing in: " + ", ".join(missing) if missing else "all pass it",
            verdict(not missing),
        )

    # 6. login throttling

    def login_throttle(self) -> None:
        for index, path in enumerate(("/agent/login/", "/admin/login/")):
            address = f"203.0.113.{60 + index}"
            statuses, cookies = [], None
            for _ in range(12):
                status, _, cookies = self.client.login(path, "probe-staff", "wrong-password", address, cookies)
                statuses.append(status)
            status, set_cookies, _ = self.client.login(path, "probe-staff", PASSWORD, address, cookies)
            elsewhere, other_cookies, _ = self.client.login(path, "probe-staff", PASSWORD, f"203.0.113.{70 + index}")
            tally = {s: statuses.count(s) for s in sorted(set(statuses))}
            self.add(
                f"6 login throttle {path}",
                "12 wrong passwords for probe-staff from one address, then the right one; then the right one"
                " from another address",
                "right password after 12 wrong: 429, no session; another address: 302 with a session",
                f"wrong: {tally}; right: {status}, session {'set' if 'sessionid' in set_cookies else 'none'};"
                f" other address: {elsewhere}, session {'set' if 'sessionid' in other_cookies else 'none'}",
                verdict(
                    status == 429
                    and "sessionid" not in set_cookies
                    and elsewhere == 302
                    and "sessionid" in other_cookies
                ),
            )
            if index == 1:
                self.staff_session = other_cookies.get("sessionid")

    # 7. health, artifacts, origins

    async def health_and_origin(self) -> None:
        store = str(self.store.resolve())
        status, _, body, content = self.client.api("GET", "/api/v1/health", None, address="203.0.113.80")
        self.add(
            "7 health shows no path",
            "anonymous GET /api/v1/health",
            "200, no absolute path in the body",
            f"{status} {body.get('status') if body else None}; store path in body: {store.encode() in content}",
            verdict(status == 200 and store.encode() not in content and str(ROOT).encode() not in content),
        )
        model = self.store / self.setup["artifact_dir"] / "model.onnx"
        with open(model, "ab") as f:
            f.write(b"corrupted by the probe")
        body, content = None, b""
        for _ in range(20):
            _, _, body, content = self.client.api("GET", "/api/v1/health", None, address="203.0.113.81")
            if body and body.get("status") == "degraded":
                break
            await asyncio.sleep(0.5)
        problem = (body or {}).get("problem", "")
        self.add(
            "7 health after corruption",
            f"append bytes to MODEL_STORE/{self.setup['artifact_dir']}/model.onnx; GET /api/v1/health",
            "degraded, the problem names model.onnx, no absolute path",
            f"{body.get('status') if body else None}: {problem!r}; store path in body: {store.encode() in content}",
            verdict(
                bool(body)
                and body.get("status") == "degraded"
                and "model.onnx" in problem
                and store.encode() not in content
            ),
        )
        status, _, body, content = self.client.api(
            "POST", f"/api/v1/models/{self.setup['version']}/promote", self.setup["staff_token"], address="203.0.113.82"
        )
        self.add(
            "7 promote a corrupt active version",
            f"POST /api/v1/models/{self.setup['version']}/promote (staff token), the version now corrupt",
            "409 artifact_invalid, no absolute path",
            f"{status} {body.get('code') if body else content[:80]!r}; store path in body: {store.encode() in content}",
            verdict(
                status == 409
                and bool(body)
                and body.get("code") == "artifact_invalid"
                and store.encode() not in content
            ),
        )
        session = getattr(self, "staff_session", None)
        if not session:
            self.add("7 agent socket origin", "", "", "no staff session from probe 6", NOT_RUN)
            return
        http_origin = await agent_refused(self.client, session, f"http://127.0.0.1:{self.release.port}")
        https_origin = await agent_refused(self.client, session, f"https://127.0.0.1:{self.release.port}")
        self.add(
            "7 agent socket refuses http:// origins",
            "/ws/agent/ with a staff session, Origin http://127.0.0.1:port, then https://",
            "production settings (DEBUG=0: secure session cookies; SECURE_SSL_REDIRECT=0 on loopback):"
            " http origin refused, https origin opens",
            f"http → {http_origin or 'opened'}; https → {https_origin or 'opened'}",
            verdict(bool(http_origin) and not https_origin),
        )

    # 8. API contract

    def api_contract(self) -> None:
        token = self.setup["staff_token"]
        rows, ok = [], True
        for method, path in (("GET", "/api/v1/models/abc"), ("POST", "/api/v1/training-runs/1.5/cancel")):
            status, headers, body, _ = self.client.api(method, path, token)
            good = (
                status == 404
                and headers.get("content-type") == "application/json"
                and (body or {}).get("code") == "not_found"
            )
            ok &= good
            rows.append(f"{method} {path} → {status} {headers.get('content-type')} {(body or {}).get('code')}")
        self.add(
            "8 non-integer ids",
            "GET /api/v1/models/abc; POST /api/v1/training-runs/1.5/cancel (staff token)",
            "404 application/json {code: not_found}",
            "; ".join(rows),
            verdict(ok),
        )
        before = self.counts()["training_runs"]
        status, _, body, _ = self.client.api("POST", "/api/v1/training-runs", token, "null")
        after = self.counts()["training_runs"]
        self.add(
            "8 training run with body null",
            "POST /api/v1/training-runs, body null (staff token)",
            "400, no run queued",
            f"{status} {(body or {}).get('code')}; runs {before} → {after}",
            verdict(status == 400 and after == before),
        )
        status, _, document, _ = self.client.api("GET", "/api/schema/?format=json", token)
        route, runs = schema_validator(document, "/api/v1/route"), schema_validator(document, "/api/v1/training-runs")
        valid = [{"text": "card"}, {"texts": ["a", "b"]}, {"messages": ["hi", "card refund"]}]
        invalid = [
            {},
            {"text": "a", "texts": ["b"]},
            {"texts": ["a"], "messages": ["b"]},
            {"text": ""},
            {"text": "  "},
            {"texts": []},
            {"texts": ["ok", " "]},
        ]
        wrong = [b for b in valid if not route.is_valid(b)] + [b for b in invalid if route.is_valid(b)]
        bad_runs = [None, {"config": {"epochz": 1}}, {"config": {"epochs": "three"}}]
        wrong_runs = [b for b in bad_runs if runs.is_valid(b)] + (
            [] if runs.is_valid({"config": {"epochs": 3}}) else ["epochs: 3"]
        )
        self.add(
            "8 schema states the route body",
            "GET /api/schema/; the route and training-run body schemas applied to sample bodies",
            "route: exactly one of text / texts / messages, non-blank; training config: known keys and types only",
            f"{status}; route bodies judged wrongly: {wrong or 'none'}; training bodies judged wrongly: {wrong_runs or 'none'}",
            verdict(status == 200 and not wrong and not wrong_runs),
        )

    def server_log(self) -> None:
        text = (self.release.work / "server.log").read_text(errors="replace")
        bad = [word for word in ("Traceback", "RecursionError", " 500") if word in text]
        self.add(
            "server log",
            "everything above",
            "no traceback, no RecursionError, no 500 in the server's log",
            f"found: {bad}" if bad else f"none ({len(text.splitlines())} lines)",
            verdict(not bad),
        )


async def first_frame_from(client: Client, address: str = "203.0.113.51") -> str:
    """The first frame a token-less /ws/chat/ handshake from ``address`` gets (history when accepted)."""
    async with customer(client, address) as ws:
        first, _, code = await frame_wait(ws, lambda f: True, 10)
    return first["type"] if first else f"close {code}"


def _json_schema(node):
    """OpenAPI 3.0 → JSON Schema: ``nullable: true`` becomes "or null"."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


def schema_validator(document: dict, path: str) -> jsonschema.Draft7Validator:
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft7Validator(
        {"allOf": [_json_schema(schema)], "components": _json_schema(document["components"])}
    )


# ----- the run -----


@contextlib.contextmanager
def redis_server(work: Path):
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def tiny_artifact(work: Path) -> Path:
    from tests.ml_fixtures import make_tiny_artifact

    return make_tiny_artifact(work / "tiny", LABELS)


async def probes_run(probes: Probes) -> None:
    await probes.revoked_agent()
    await probes.handshakes()
    await probes.nested_json()
    probes.csp_and_static()
    await probes.max_size()
    probes.login_throttle()
    probes.api_contract()
    await probes.health_and_origin()  # last: it corrupts the served model's file
    probes.server_log()
    probes.results.sort(key=lambda r: r.probe[0] if r.probe[0].isdigit() else "9")  # stable: run order within one


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--artifact", type=Path, help="a model version directory to serve (default: the tiny test model)"
    )
    parser.add_argument(
        "--layer", choices=["redis", "memory"], default="redis" if shutil.which("redis-server") else "memory"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="security-probes-") as tmp_name, contextlib.ExitStack() as stack:
        work = Path(tmp_name)
        print(f"model: {args.artifact or 'tiny test artifact'}; channel layer: {args.layer}", flush=True)
        artifact = args.artifact or tiny_artifact(work)
        release = Release("current", ROOT, work / "server", None, artifact, team_names={})
        release.env.update(
            {
                "CHAT_HANDSHAKES_PER_MINUTE": str(HANDSHAKES_PER_MINUTE),
                "TRUSTED_PROXY_COUNT": "1",
                "STATIC_ROOT": str(work / "static"),
                "PROBE_PASSWORD": PASSWORD,
            }
        )
        if args.layer == "redis":
            release.env["REDIS_URL"] = stack.enter_context(redis_server(work))
        manage(ROOT, release.env, "collectstatic", "--noinput", "-v", "0")
        try:
            release.start(None)
            setup = json.loads(shell_value(ROOT, release.env, SETUP, "PROBE_SETUP"))
            probes = Probes(release, setup, args.layer, Path(release.env["MODEL_STORE"]))
            print(f"server on port {release.port}; probes:", flush=True)
            try:
                asyncio.run(probes_run(probes))
            except BaseException:
                log = (release.work / "server.log").read_text(errors="replace")
                print(f"a probe could not run; the server's log ends:\n{log[-4000:]}", file=sys.stderr)
                raise
        finally:
            release.stop()
    print("\n" + "\n".join(table_lines(probes.results)))
    print("\n" + summary_line(probes.results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in probes.results], indent=2))
    return 1 if any(r.status == FAIL for r in probes.results) else 0


if __name__ == "__main__":
    sys.exit(main())
