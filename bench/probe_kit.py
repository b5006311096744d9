"""What bench/security_probes.py's probes share: the result table, an HTTP and websocket client
of the server, and the base of the probe classes (rows, ``manage.py shell``, row counts)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import jsonschema
from releases import Release, shell_value
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
PASSWORD = "probe-pass-8472"
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


async def first_frame_from(client: Client, address: str = "203.0.113.51") -> str:
    """The first frame a token-less /ws/chat/ handshake from ``address`` gets (history when accepted)."""
    async with customer(client, address) as ws:
        first, _, code = await frame_wait(ws, lambda f: True, 10)
    return first["type"] if first else f"close {code}"


def schema_validator(document: dict, path: str) -> jsonschema.Draft7Validator:
    from tests.openapi import json_schema  # the schema tests' converter (the bench runs from the repo root)

    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft7Validator(
        {"allOf": [json_schema(schema)], "components": json_schema(document["components"])}
    )


class ProbeRun:
    """The server, what the set-up made (tokens, the version, teams), and the rows so far."""

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
