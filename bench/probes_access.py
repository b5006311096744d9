"""Issue 17's probes of who may connect and act: revoked agents (1), token-less handshakes (2),
login throttling (6) and the console socket's origins (7)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from probe_kit import (
    NOT_RUN,
    PASSWORD,
    ProbeRun,
    agent,
    agent_refused,
    answer_text,
    attempt,
    conversation_start,
    customer,
    first_frame_from,
    frame_conversation_ids,
    frame_wait,
    verdict,
)
from websockets.exceptions import WebSocketException

HANDSHAKES_PER_MINUTE = 50  # the server's CHAT_HANDSHAKES_PER_MINUTE for the probe (default 60)
MEMORY_RECHECK_SECONDS = 2  # the server's AGENT_ACCESS_RECHECK_SECONDS on the in-memory layer (default 30)
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


@dataclass(frozen=True)
class Revocation:
    label: str  # "{team}" is the team the probe's conversation is in
    how: str
    pushed: str
    error: str = ""  # the error code of a pushed close ("" for a narrowed inbox)


MODES = {
    "deactivate": Revocation(
        "deactivated", "user.is_active=False; user.save()", "error account_inactive, close 4403", "account_inactive"
    ),
    "team": Revocation(
        "removed from team {team}", "Team({team}).members.remove(user)", "new inbox frame without {team}"
    ),
    "session": Revocation(
        "session deleted",
        "Session.objects.filter(session_key=…).delete()",
        "error session_ended, close 4403",
        "session_ended",
    ),
}


@dataclass
class Seen:
    """What one revoked agent's socket showed."""

    control: bool = False  # before the change: an inbox frame, and `open` answered with history
    before: str = ""
    pushed: bool = False
    push_seen: str = ""
    refusals: list[str] = field(default_factory=list)
    acted: bool = False  # an action after the change was carried out
    leaked: dict | None = None  # a frame about a new conversation of the team it left
    code: int | None = None  # the close code, once closed


async def push_watch(ws, mode: str, team: str, seen: Seen) -> None:
    """The frames the change pushes within 5 s: a narrowed inbox, or an error and close 4403."""
    if mode == "team":
        frame, _, seen.code = await frame_wait(ws, lambda f: f["type"] == "inbox", 5)
        slugs = [t["slug"] for t in frame["teams"]] if frame else None
        seen.pushed = frame is not None and team not in slugs
        seen.push_seen = f"inbox frame, teams {slugs}" if frame else "no inbox frame"
        return
    error, _, seen.code = await frame_wait(ws, lambda f: f["type"] == "error", 5)
    if error is not None and seen.code is None:
        _, _, seen.code = await frame_wait(ws, lambda f: False, 3)
    seen.pushed = error is not None and error["code"] == MODES[mode].error and seen.code == 4403
    seen.push_seen = f"error {error['code'] if error else None}, close {seen.code}"


async def actions_try(ws, conversation_id: int, other_team: str | None, seen: Seen) -> None:
    """On a socket still open: a reply and a reassign on the conversation it could open."""
    reply = {"type": "reply", "conversation_id": conversation_id, "text": "hi", "client_id": "r1"}
    answer, seen.code = await attempt(ws, reply, lambda f: f["type"] in ("ack", "error"))
    seen.acted |= answer is not None and answer["type"] == "ack"
    seen.refusals.append(f"reply → {answer_text(answer, seen.code)}")
    if seen.code is None and other_team:
        reassign = {"type": "reassign", "conversation_id": conversation_id, "team": other_team}
        answer, seen.code = await attempt(
            ws, reassign, lambda f: f["type"] == "error" or f["type"].startswith("conversation.")
        )
        seen.acted |= answer is not None and answer["type"] != "error"
        seen.refusals.append(f"reassign → {answer_text(answer, seen.code)}")


class AccessProbes(ProbeRun):
    # 1. revoked agent

    async def revoked_agent(self) -> None:
        text, team = self.routed_text()
        other = next((slug for slug in self.setup["teams"] if slug != team), None)
        for index, mode in enumerate(MODES):
            username = f"probe-agent-{mode}"
            status, _, cookies = self.client.login("/agent/login/", username, PASSWORD, f"203.0.113.{10 + index}")
            if status != 302 or "sessionid" not in cookies:
                raise SystemExit(f"{username} could not log in at /agent/login/ ({status})")
            conversation_id, _ = await conversation_start(self.client, text, f"203.0.113.{20 + index}")
            await self.revoke_one(mode, username, cookies["sessionid"], (team, other), conversation_id, text)

    async def revoke_one(self, mode, username, session, teams, conversation_id, text) -> None:
        """Open the console, revoke in manage.py shell, watch the push, try to act, count what was written."""
        team, other = teams
        before, seen = self.counts([conversation_id]), Seen()
        async with agent(self.client, session) as ws:
            inbox, _, _ = await frame_wait(ws, lambda f: f["type"] == "inbox", 15)
            opened = {"type": "open", "conversation_id": conversation_id}
            history, _ = await attempt(ws, opened, lambda f: f["type"] in ("history", "error"))
            seen.control = inbox is not None and history is not None and history["type"] == "history"
            seen.before = f"inbox {'yes' if inbox else 'no'}, open → {answer_text(history, None)}"
            env = {"PROBE_MODE": mode, "PROBE_USER": username, "PROBE_TEAM": team, "PROBE_SESSION": session}
            self.shell(REVOKE, "PROBE_DONE", **env)
            await push_watch(ws, mode, team, seen)
            if ws.close_code is None and seen.code is None:
                await actions_try(ws, conversation_id, other, seen)
            if mode == "team" and ws.close_code is None and seen.code is None:
                # After the refused actions: a new conversation of the team it left must not reach it.
                new_id, _ = await conversation_start(self.client, text, "203.0.113.29")
                seen.leaked, _, _ = await frame_wait(ws, lambda f: new_id in frame_conversation_ids(f), 3)
        reconnect = ""
        if mode != "team":
            reconnect = await agent_refused(self.client, session)
            seen.refusals.append(f"reconnect → {reconnect or 'opened'}")
        after = self.counts([conversation_id])
        refused = (mode == "team" and any("not_found" in r for r in seen.refusals)) or bool(reconnect)
        self.revocation_rows(mode, team, seen, refused, (before, after, str(conversation_id)))

    def revocation_rows(self, mode: str, team: str, seen: Seen, refused: bool, counts) -> None:
        before, after, key = counts
        revocation = MODES[mode]
        label, how = revocation.label.format(team=team), revocation.how.format(team=team)
        unchanged = after["agent_messages"] == 0 and after["tickets"] == before["tickets"]
        unchanged &= after["teams"] == before["teams"]
        written = f"written: {after['agent_messages']} agent messages, {after['tickets'] - before['tickets']} tickets"
        self.add(
            f"1 agent {label}: refused",
            f"/ws/agent/ open, then via manage.py shell: {how}; reply, reassign, reconnect",
            "every later action refused (not_found / 4403 / 4401), no message, no ticket, conversation stays",
            f"before: {seen.before}; after: "
            + "; ".join(seen.refusals or ["socket already closed"])
            + f"; {written}, team {before['teams'].get(key)} → {after['teams'].get(key)}",
            verdict(seen.control and unchanged and not seen.acted and refused),
        )
        if mode == "team":
            self.add(
                f"1 agent {label}: stops hearing it",
                f"then a customer starts a new conversation routed to {team}",
                "no frame about it on the agent's socket within 3 s",
                f"frame {seen.leaked['type']} about it delivered" if seen.leaked else "nothing about it delivered",
                verdict(seen.leaked is None),
            )
        expected = revocation.pushed.format(team=team) + " within 5 s"
        if self.layer == "redis":
            sent, name = how + " in manage.py shell (Redis layer)", "pushed at once"
        else:  # no signal crosses processes on the in-memory layer: the server's timer finds the change
            sent = how + f" in manage.py shell (in-memory layer: the {MEMORY_RECHECK_SECONDS} s access re-check)"
            name = "closed or narrowed by the re-check"
        self.add(f"1 agent {label}: {name}", sent, expected, seen.push_seen, verdict(seen.pushed))

    # 2. handshakes

    async def handshake_first_frames(self, count: int, address: str) -> list[str]:
        """``count`` token-less /ws/chat/ handshakes at once (50 in flight): what each got first."""
        gate = asyncio.Semaphore(50)

        async def one() -> str:
            async with gate:
                try:
                    async with customer(self.client, address) as ws:
                        first, _, code = await frame_wait(ws, lambda f: True, 10)
                        if first and first["type"] == "error":
                            _, _, code = await frame_wait(ws, lambda f: False, 5)
                            return f"{first['code']}/{code}"
                        return first["type"] if first else f"close {code}"
                except (OSError, WebSocketException) as exc:
                    return type(exc).__name__

        return await asyncio.gather(*(one() for _ in range(count)))

    async def handshakes(self) -> None:
        if time.time() % 60 > 40:  # the limit counts per clock minute: keep the burst inside one
            await asyncio.sleep(61 - time.time() % 60)
        before = self.counts()["conversations"]
        started = time.monotonic()
        outcomes = await self.handshake_first_frames(200, "203.0.113.50")
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
        accepted, other = tally.get("history", 0), await first_frame_from(self.client)
        self.add(
            "2 handshakes limited per address",
            f"the same 200 at once (CHAT_HANDSHAKES_PER_MINUTE={HANDSHAKES_PER_MINUTE}, set for the probe;"
            " default 60); then 1 from another address",
            f"≤ {HANDSHAKES_PER_MINUTE} accepted (history), the rest error too_many_connections + close 4429;"
            " the other address accepted",
            f"{tally}; other address → {other}",
            verdict(
                accepted <= HANDSHAKES_PER_MINUTE
                and tally.get("too_many_connections/4429", 0) == 200 - accepted
                and other == "history"
            ),
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
            self.staff_session = other_cookies.get("sessionid")

    # 7. the console socket's origins

    async def console_origin(self) -> None:
        session = getattr(self, "staff_session", None)
        if not session:
            self.add("7 agent socket refuses http:// origins", "", "", "no staff session from probe 6", NOT_RUN)
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
