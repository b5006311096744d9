"""Issue 17's probes of what the server is sent and answers: nested JSON (3), CSP and static files
(4), the websocket max size (5), health and artifacts (7), the API contract (8), the server's log."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import chat_servers
import route_bench
from probe_kit import ProbeRun, customer, frame_wait, schema_validator, verdict
from websockets.exceptions import ConnectionClosed, WebSocketException

ROOT = Path(__file__).resolve().parents[1]
NESTED_100K = "[" * 50_000 + "]" * 50_000  # 100 KB: RecursionError in a plain json.loads
NESTED_FRAME = "[" * 15_000 + "]" * 15_000  # 30 KB: under the chat's 32 KiB frame limit, as deep
CSP_PAGES = ["/", "/agent/login/", "/admin/login/", "/api/docs/"]
PLAIN_WIDGET = "/static/chatbot/widget.js"
ROUTE_VALID = [{"text": "card"}, {"texts": ["a", "b"]}, {"messages": ["hi", "card refund"]}]
ROUTE_INVALID = [
    {},
    {"text": "a", "texts": ["b"]},
    {"texts": ["a"], "messages": ["b"]},
    {"text": ""},
    {"text": "  "},
    {"texts": []},
    {"texts": ["ok", " "]},
]
RUN_INVALID = [None, {"config": {"epochz": 1}}, {"config": {"epochs": "three"}}]


class InputProbes(ProbeRun):
    # 3. nested JSON

    async def nested_json(self) -> None:
        status, headers, body, _ = self.client.api("POST", "/api/v1/route", self.setup["token"], NESTED_100K)
        code = body.get("code") if isinstance(body, dict) else body
        self.add(
            "3 nested JSON, REST",
            "POST /api/v1/route, 100 KB of [[[…]]] (token)",
            "400 JSON {code: too_deep}",
            f"{status} {headers.get('content-type')} code={code!r}",
            verdict(status == 400 and code == "too_deep"),
        )
        async with customer(self.client, "203.0.113.30") as ws:
            await frame_wait(ws, lambda f: f["type"] == "history", 10)
            await ws.send(NESTED_FRAME)
            error, _, closed = await frame_wait(ws, lambda f: f["type"] == "error", 10)
            await ws.send(json.dumps({"type": "message", "text": "still there?", "client_id": "after"}))
            ack, _, closed_after = await frame_wait(ws, lambda f: f["type"] == "ack", 15)
        self.add(
            "3 nested JSON, chat frame",
            "/ws/chat/ frame of 30 KB [[[…]]] (under the 32 KiB frame limit), then a message",
            "error frame too_deep; the socket stays up and acks the next message",
            f"error {error.get('code') if error else None} (close {closed}); next message → "
            f"{'ack' if ack else f'no ack (close {closed_after})'}",
            verdict(error is not None and error.get("code") == "too_deep" and ack is not None),
        )

    # 4. CSP, static files

    def csp(self) -> dict[str, bytes]:
        """Every page's policy, and the fast path's; returns the pages' bodies."""
        seen, ok, pages = [], True, {}
        for path in CSP_PAGES:
            status, headers, _, pages[path] = self.client.request(
                "GET", path, headers={"X-Forwarded-For": "203.0.113.40"}
            )
            policy = headers.get("content-security-policy", "")
            script = next((d.strip() for d in policy.split(";") if d.strip().startswith("script-src")), "")
            ok &= status == 200 and script == "script-src 'self'" and "frame-ancestors 'none'" in policy
            seen.append(f"{path} {status} {script or 'no CSP'}")
        status, headers, _, _ = self.client.api("POST", "/api/v1/route", self.setup["token"], '{"text": "hi"}')
        page_policy = self.client.request("GET", "/")[1].get("content-security-policy")
        same = headers.get("content-security-policy") == page_policy
        ok &= status == 200 and same
        seen.append(f"POST /api/v1/route {status} {'same CSP' if same else 'CSP differs or missing'}")
        self.add(
            "4 Content-Security-Policy",
            "GET " + ", ".join(CSP_PAGES) + "; POST /api/v1/route (fast path)",
            "every answer: script-src 'self', frame-ancestors 'none'; the route fast path the same header",
            "; ".join(seen),
            verdict(ok),
        )
        return pages

    def static_files(self, home_page: bytes) -> None:
        status, _, _, content = self.client.request("GET", "/static/..%2f..%2fsettings.py")
        self.add(
            "4 static path traversal",
            "GET /static/..%2f..%2fsettings.py",
            "404, no file content",
            f"{status}, SECRET_KEY in body: {b'SECRET_KEY' in content}",
            verdict(status == 404 and b"SECRET_KEY" not in content),
        )
        hashed = re.search(rb'src="(/static/chatbot/widget\.[0-9a-f]{12}\.js)"', home_page)
        rows, ok = [], hashed is not None
        for path in [PLAIN_WIDGET] + ([hashed.group(1).decode()] if hashed else []):
            status, headers, _, _ = self.client.request("GET", path)
            cache = headers.get("cache-control", "")
            nosniff = headers.get("x-content-type-options") == "nosniff"
            cached = "max-age=60" in cache if path == PLAIN_WIDGET else "immutable" in cache and "315360000" in cache
            ok &= status == 200 and nosniff and cached
            rows.append(f"{path} {status} nosniff={nosniff} cache-control={cache!r}")
        self.add(
            "4 static file headers",
            f"GET {PLAIN_WIDGET} and the hashed name the page links",
            "200, nosniff; plain name max-age=60, hashed name 10 years + immutable",
            "; ".join(rows) + ("" if hashed else "; no hashed widget name on /"),
            verdict(ok),
        )

    # 5. websocket max size

    async def big_frame_close(self) -> tuple[object, list[dict]]:
        """Send 1 MiB on /ws/chat/: (the close code, the frames before it)."""
        code, frames = None, []
        try:
            async with customer(self.client, "203.0.113.55") as ws:
                await frame_wait(ws, lambda f: f["type"] == "history", 10)
                try:
                    await ws.send(json.dumps({"type": "message", "text": "x" * (1 << 20), "client_id": "big"}))
                    _, frames, code = await frame_wait(ws, lambda f: False, 10)
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else 1006
                code = code or ws.close_code
        except WebSocketException as exc:
            code = repr(exc)[:80]
        return code, frames

    async def max_size(self) -> None:
        command = chat_servers.server_command("uvicorn", self.release.port, self.release.application)
        option = command[command.index("--ws-max-size") + 1] if "--ws-max-size" in command else None
        code, frames = await self.big_frame_close()
        self.add(
            "5 1 MiB websocket frame",
            f"/ws/chat/ text frame of 1 MiB; server: {Path(command[0]).name} {command[1]} … --ws-max-size {option}",
            "the server refuses it before the app: close 1009 (message too big)",
            f"close {code}; frames before: {[f.get('code', f['type']) for f in frames]}",
            verdict(code == 1009),
        )
        documented = {
            "README.md": (ROOT / "README.md").read_text(),
            "scripts/demo.sh": (ROOT / "scripts" / "demo.sh").read_text(),
            "bench/chat_servers.py server_command": " ".join(command),
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

    # 7. health and artifacts (corrupts the served model's file: run it last)

    async def health_degraded(self, store: str) -> None:
        model = self.store / self.setup["artifact_dir"] / "model.onnx"
        with open(model, "ab") as f:
            f.write(b"corrupted by the probe")
        body, content = None, b""
        for _ in range(20):
            _, _, body, content = self.client.api("GET", "/api/v1/health", None, address="203.0.113.81")
            if body and body.get("status") == "degraded":
                break
            await asyncio.sleep(0.5)
        body = body or {}
        problem = body.get("problem", "")
        self.add(
            "7 health after corruption",
            f"append bytes to MODEL_STORE/{self.setup['artifact_dir']}/model.onnx; GET /api/v1/health",
            "degraded, the problem names model.onnx, no absolute path",
            f"{body.get('status')}: {problem!r}; store path in body: {store.encode() in content}",
            verdict(body.get("status") == "degraded" and "model.onnx" in problem and store.encode() not in content),
        )

    async def health_and_artifacts(self) -> None:
        store = str(self.store.resolve())
        status, _, body, content = self.client.api("GET", "/api/v1/health", None, address="203.0.113.80")
        self.add(
            "7 health shows no path",
            "anonymous GET /api/v1/health",
            "200, no absolute path in the body",
            f"{status} {(body or {}).get('status')}; store path in body: {store.encode() in content}",
            verdict(status == 200 and store.encode() not in content and str(ROOT).encode() not in content),
        )
        await self.health_degraded(store)
        path = f"/api/v1/models/{self.setup['version']}/promote"
        status, _, body, content = self.client.api("POST", path, self.setup["staff_token"], address="203.0.113.82")
        code = (body or {}).get("code")
        self.add(
            "7 promote a corrupt active version",
            f"POST {path} (staff token), the version now corrupt",
            "409 artifact_invalid, no absolute path",
            f"{status} {code}; store path in body: {store.encode() in content}",
            verdict(status == 409 and code == "artifact_invalid" and store.encode() not in content),
        )

    # 8. API contract

    def api_not_found(self) -> None:
        rows, ok = [], True
        for method, path in (("GET", "/api/v1/models/abc"), ("POST", "/api/v1/training-runs/1.5/cancel")):
            status, headers, body, _ = self.client.api(method, path, self.setup["staff_token"])
            kind, code = headers.get("content-type"), (body or {}).get("code")
            ok &= status == 404 and kind == "application/json" and code == "not_found"
            rows.append(f"{method} {path} → {status} {kind} {code}")
        self.add(
            "8 non-integer ids",
            "GET /api/v1/models/abc; POST /api/v1/training-runs/1.5/cancel (staff token)",
            "404 application/json {code: not_found}",
            "; ".join(rows),
            verdict(ok),
        )

    def api_contract(self) -> None:
        self.api_not_found()
        token = self.setup["staff_token"]
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
        wrong = [b for b in ROUTE_VALID if not route.is_valid(b)] + [b for b in ROUTE_INVALID if route.is_valid(b)]
        wrong_runs = [b for b in RUN_INVALID if runs.is_valid(b)]
        wrong_runs += [] if runs.is_valid({"config": {"epochs": 3}}) else [{"config": {"epochs": 3}}]
        self.add(
            "8 schema states the route body",
            "GET /api/schema/; the route and training-run body schemas applied to sample bodies",
            "route: exactly one of text / texts / messages, non-blank; training config: known keys and types only",
            f"{status}; route bodies judged wrongly: {wrong or 'none'}; training bodies judged wrongly: "
            f"{wrong_runs or 'none'}",
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
