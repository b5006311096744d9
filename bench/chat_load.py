"""Load test of the live chat: N customer sockets against two server processes (daphne or uvicorn) sharing Redis and PostgreSQL.

    .venv/bin/python bench/chat_load.py --clients 50,200,500 [--artifact DIR] [--json out.json]

Creates (drops first) a PostgreSQL database, migrates it, loads the demo teams and tickets, and
serves ``--artifact`` as the active model (else whatever version is active there; if none, every
conversation goes to triage, and the table says so). Two server processes (``--server``) run on loopback; one
staff agent listens on every team inbox and triage on each process. One warm-up conversation per
server runs first (first-use imports). Customers connect to alternating processes at ``--ramp``
sockets per second (a failed handshake is retried with backoff and reported, not counted as lost);
once all are connected, each sends ``--messages`` messages paced ``--interval`` seconds apart,
starting at a random point in its first interval.

Reports, per N: acks, messages stored in the database (must equal sent: zero lost, zero doubled),
p50/p99 of send->ack and send->agent-receive, handshake p99 and retries, the servers' peak RSS,
the CPU time per message sent (both servers together, this load generator, PostgreSQL + Redis) and the 1-minute
load average (other work on the machine skews every latency here; CPU per message much less). The channel layer
is whatever the settings give the servers with ``REDIS_URL`` set; DJANGO_SETTINGS_MODULE (and
PYTHONPATH) pass through to them, so another layer can be compared without editing the project.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from chat_servers import (  # noqa: E402
    agent_cookie,
    database_create,
    django_setup,
    model_activate,
    servers_start,
    wait_listening,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="50,200,500", help="Comma-separated socket counts, one run each.")
    parser.add_argument("--messages", type=int, default=10, help="Messages each customer sends.")
    parser.add_argument("--interval", type=float, default=1.0, help="Seconds between one customer's messages.")
    parser.add_argument(
        "--ramp", type=float, default=200.0, help="Customer sockets opened per second, before any sends."
    )
    parser.add_argument("--artifact", help="A model artifact directory to serve as the active version.")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="Server URL, no db.")
    parser.add_argument("--database", default="switchboard_bench", help="Dropped and recreated.")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--timeout", type=float, default=120.0, help="Upper bound per run (seconds).")
    parser.add_argument("--json", help="Also write the results here.")
    parser.add_argument(
        "--server",
        choices=("daphne", "uvicorn"),
        default="uvicorn",
        help="ASGI server for the two processes (uvicorn as the README runs it, or daphne).",
    )
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ----- the load -----


class Run:
    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.at_agent: dict[str, float] = {}
        self.conversations: list[int] = []
        self.errors: list[str] = []
        self.connect_ms: list[float] = []
        self.handshake_retries: list[str] = []
        self.connect_failed = 0
        self.ready = 0  # customers connected, or given up on


async def agent(url: str, cookie: str, run: Run, stop: asyncio.Event) -> None:
    async with connect(
        # The servers run with the production settings (DEBUG=0): the console socket takes https origins only.
        f"{url}/ws/agent/",
        origin=url.replace("ws", "https", 1),
        additional_headers={"Cookie": cookie},
        max_queue=None,
    ) as ws:
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            now = time.perf_counter()
            found = frame.get("messages", []) if frame["type"] == "conversation.assigned" else [frame]
            for message in found:
                if message.get("sender") == "customer" and message.get("client_id"):
                    run.at_agent.setdefault(message["client_id"], now)


async def connect_retrying(url: str, run: Run, attempts: int = 6):
    """A customer socket; a failed handshake is retried with backoff (and reported), never counted as lost."""
    delay = 0.25
    for _ in range(attempts):
        begun = time.perf_counter()
        try:
            ws = await connect(f"{url}/ws/chat/", origin=url.replace("ws", "http", 1), open_timeout=30)
        except (OSError, TimeoutError, WebSocketException) as exc:
            run.handshake_retries.append(type(exc).__name__)
            await asyncio.sleep(delay * (1 + random.random()))
            delay *= 2
            continue
        run.connect_ms.append(1000 * (time.perf_counter() - begun))
        return ws
    run.connect_failed += 1
    return None


async def read_acks(ws, run: Run, pending: set[str], done: asyncio.Event) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "ack":
                run.acked.setdefault(frame["client_id"], time.perf_counter())
                pending.discard(frame["client_id"])
                if not pending:
                    done.set()
            elif frame["type"] == "conversation":
                run.conversations.append(frame["id"])
            elif frame["type"] == "error":
                run.errors.append(frame["code"])


async def customer(url: str, index: int, args, texts: list[str], run: Run, go: asyncio.Event) -> None:
    """Connect, wait until every customer is connected, then send ``--messages`` paced messages."""
    ws = await connect_retrying(url, run)
    run.ready += 1
    if ws is None:
        return
    async with ws:
        await ws.recv()  # the empty history: the first message starts the conversation
        client_ids = [f"b{index}-{number}" for number in range(args.messages)]
        done = asyncio.Event()
        reader = asyncio.create_task(read_acks(ws, run, set(client_ids), done))
        await go.wait()
        await asyncio.sleep(random.random() * args.interval)
        for client_id in client_ids:
            run.sent[client_id] = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "text": random.choice(texts), "client_id": client_id}))
            await asyncio.sleep(args.interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 15)
        reader.cancel()


async def warm_up(servers, texts: list[str]) -> None:
    """One conversation per server before measuring: first-use imports (onnxruntime) and pools happen here."""
    for _, url in servers:
        async with connect(f"{url}/ws/chat/", origin=url.replace("ws", "http", 1), open_timeout=60) as ws:
            await ws.send(json.dumps({"type": "message", "text": texts[0], "client_id": "warm-up"}))
            while json.loads(await ws.recv())["type"] != "routed":
                pass


async def ramp(clients: int, args, servers, texts: list[str], run: Run, go: asyncio.Event) -> list[asyncio.Task]:
    """Open the customer sockets at ``--ramp`` per second; return once all are connected (or given up on)."""
    tasks, batch = [], 10
    for index in range(clients):
        tasks.append(asyncio.create_task(customer(servers[index % 2][1], index, args, texts, run, go)))
        if index % batch == batch - 1:
            await asyncio.sleep(batch / args.ramp)
    deadline = time.monotonic() + args.timeout
    while run.ready < clients and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return tasks


async def one_level(clients: int, args, servers, cookie: str, texts: list[str]) -> dict:
    run, stop, go = Run(), asyncio.Event(), asyncio.Event()
    agents = [asyncio.create_task(agent(url, cookie, run, stop)) for _, url in servers]
    await asyncio.sleep(1.0)
    peak = {process.pid: 0 for process, _ in servers}

    async def sample_rss() -> None:
        while not stop.is_set():
            for process, _ in servers:
                peak[process.pid] = max(peak[process.pid], psutil.Process(process.pid).memory_info().rss)
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    tasks = await ramp(clients, args, servers, texts, run, go)
    cpu_before = cpu_seconds(servers)
    started = time.perf_counter()
    go.set()
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for task in pending:
        task.cancel()
    failures = [task.exception() for task in done if task.exception() is not None]
    drain = time.monotonic() + 10
    while len(run.at_agent) < len(run.acked) and time.monotonic() < drain:
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - started
    cpu = [after - before for before, after in zip(cpu_before, cpu_seconds(servers))]
    stop.set()
    await asyncio.gather(*agents, sampler, return_exceptions=True)
    from asgiref.sync import sync_to_async

    return await sync_to_async(report)(clients, run, elapsed, peak, failures, len(pending), cpu)


def stored_counts(conversation_ids: list[int]) -> tuple[int, int]:
    from chatbot.models import Message

    rows = Message.objects.filter(conversation_id__in=conversation_ids, sender="customer")
    return rows.count(), rows.values("client_id").distinct().count()


def cpu_seconds(servers) -> list[float]:
    """CPU time (user + system) used so far by each server, this load generator, and every
    PostgreSQL and Redis process on the machine (whoever else uses them is counted too)."""
    used = [sum(psutil.Process(process.pid).cpu_times()[:2]) for process, _ in servers]
    services = 0.0
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "").startswith(("postgres", "redis-server")):
            with contextlib.suppress(psutil.Error):
                services += sum(process.cpu_times()[:2])
    return [*used, sum(os.times()[:2]), services]


def report(clients: int, run: Run, elapsed: float, peak: dict, failures: list, unfinished: int, cpu: list) -> dict:
    stored, distinct = stored_counts(run.conversations)
    ack_ms = [1000 * (run.acked[c] - run.sent[c]) for c in run.acked if c in run.sent]
    agent_ms = [1000 * (run.at_agent[c] - run.sent[c]) for c in run.at_agent if c in run.sent]
    # A conversation's first message waits for routing (inference + the assignment); later ones do not.
    first_ms = [1000 * (run.at_agent[c] - run.sent[c]) for c in run.at_agent if c in run.sent and c.endswith("-0")]
    later_ms = [1000 * (run.at_agent[c] - run.sent[c]) for c in run.at_agent if c in run.sent and not c.endswith("-0")]
    return {
        "clients": clients,
        "sent": len(run.sent),
        "acked": len(run.acked),
        "stored": stored,
        "lost": len(run.sent) - distinct,
        "doubled": stored - distinct,
        "at_agent": len(run.at_agent),
        "ack_p50_ms": percentile(ack_ms, 0.5),
        "ack_p99_ms": percentile(ack_ms, 0.99),
        "agent_p50_ms": percentile(agent_ms, 0.5),
        "agent_p99_ms": percentile(agent_ms, 0.99),
        "agent_first_p50_ms": percentile(first_ms, 0.5),
        "agent_first_p99_ms": percentile(first_ms, 0.99),
        "agent_later_p50_ms": percentile(later_ms, 0.5),
        "agent_later_p99_ms": percentile(later_ms, 0.99),
        "rss_mb": [round(value / 2**20) for value in peak.values()],
        "seconds": round(elapsed, 1),
        "errors": sorted(set(run.errors)),
        "client_failures": [repr(f)[:120] for f in failures[:3]],
        "unfinished": unfinished,
        "connect_p99_ms": percentile(run.connect_ms, 0.99),
        "handshake_retries": len(run.handshake_retries),
        "retry_reasons": sorted(set(run.handshake_retries)),
        "connect_failed": run.connect_failed,
        "load1": round(os.getloadavg()[0], 1),
        # CPU per message sent, from the first send to the drain: both servers, then the load generator.
        "server_cpu_ms_per_msg": round(1000 * sum(cpu[:-2]) / max(1, len(run.sent)), 2),
        "loadgen_cpu_ms_per_msg": round(1000 * cpu[-2] / max(1, len(run.sent)), 2),
        "pg_redis_cpu_ms_per_msg": round(1000 * cpu[-1] / max(1, len(run.sent)), 2),
    }


# The table's columns: heading, and the cell of one row.
COLUMNS = (
    ("clients", lambda r: r["clients"]),
    ("sent", lambda r: r["sent"]),
    ("acked", lambda r: r["acked"]),
    ("stored", lambda r: r["stored"]),
    ("lost", lambda r: r["lost"]),
    ("doubled", lambda r: r["doubled"]),
    ("at_agent", lambda r: r["at_agent"]),
    ("ack p50", lambda r: f"{r['ack_p50_ms']:.1f}"),
    ("ack p99", lambda r: f"{r['ack_p99_ms']:.1f}"),
    ("agent p50", lambda r: f"{r['agent_p50_ms']:.1f}"),
    ("agent p99", lambda r: f"{r['agent_p99_ms']:.1f}"),
    ("conn p99", lambda r: f"{r['connect_p99_ms']:.0f}"),
    ("retries", lambda r: r["handshake_retries"]),
    ("conn failed", lambda r: r["connect_failed"]),
    ("RSS MB (A,B)", lambda r: ",".join(map(str, r["rss_mb"]))),
    ("s", lambda r: r["seconds"]),
    ("load1", lambda r: r["load1"]),
    (
        "CPU ms/msg (servers, loadgen, pg+redis)",
        lambda r: f"{r['server_cpu_ms_per_msg']},{r['loadgen_cpu_ms_per_msg']},{r['pg_redis_cpu_ms_per_msg']}",
    ),
)


def print_table(rows: list[dict], routing: str, server: str) -> None:
    print(f"\nrouting: {routing}; server: {server}; settings: {os.environ.get('DJANGO_SETTINGS_MODULE')}")
    print(" | ".join(heading for heading, _ in COLUMNS))
    for r in rows:
        print(" | ".join(str(cell(r)) for _, cell in COLUMNS))
        print(
            f"   send->agent: first messages (routed then) p50 {r['agent_first_p50_ms']:.1f} p99 "
            f"{r['agent_first_p99_ms']:.1f} ms; later messages p50 {r['agent_later_p50_ms']:.1f} p99 {r['agent_later_p99_ms']:.1f} ms"
        )
        if r["errors"] or r["client_failures"] or r["unfinished"] or r["retry_reasons"]:
            print(
                f"   errors={r['errors']} failures={r['client_failures']} unfinished={r['unfinished']} "
                f"retried={r['retry_reasons']}"
            )


async def main() -> None:
    args = parse_args()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    store = out / "models"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir()
    database_url = database_create(args)
    django_setup(database_url, store)
    from asgiref.sync import sync_to_async

    routing = await sync_to_async(model_activate)(args.artifact, store)
    cookie = await sync_to_async(agent_cookie)()
    texts = [json.loads(line)["text"] for line in (ROOT / "finetune" / "demo" / "tickets.jsonl").open()][:2000]
    servers = servers_start(database_url, args, store, out)
    try:
        await wait_listening(servers)
        await warm_up(servers, texts)
        rows = []
        for clients in [int(n) for n in args.clients.split(",")]:
            row = await one_level(clients, args, servers, cookie, texts)
            rows.append(row)
            print_table([row], routing, args.server)
        print_table(rows, routing, args.server)
        if args.json:
            Path(args.json).write_text(json.dumps({"routing": routing, "server": args.server, "rows": rows}, indent=2))
    finally:
        for process, _ in servers:
            process.terminate()
        for process, _ in servers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # still chewing on a backlog: not worth waiting for
                process.kill()
                process.wait()


if __name__ == "__main__":
    asyncio.run(main())
