"""Open-world routing benchmark: this release beside the one before, each against its own real server.

    .venv/bin/python bench/open_world.py --train [--clinc-artifact DIR] [--json var/open_world.json]
    .venv/bin/python bench/open_world.py --artifact DIR [--baseline-artifact DIR] [--questions 100]

Each release (this tree, and ``--baseline-ref`` checked out into a temporary git worktree) gets
its own database (SQLite in a temp dir, or ``--database-url`` / ``--baseline-database-url``), its
own model (``--artifact DIR`` registered as the active version, or ``--train``: the user's flow,
``import_tickets`` of 3,000 stratified Banking77 tickets with ``--create-teams`` then ``train``
with defaults) and one uvicorn on loopback. Measured per release:
  1. Banking77 test questions (``--questions``, seeded) as /ws/chat/ conversations: alone, after
     ``--opener``, opener + question + ``--closer``, the question split over two messages.
     Accuracy = the last ``routed`` frame (``--settle`` s after the last ack) names the right team
     and routes it (a triage frame counts as wrong). Also as many two-turn conversations no team
     should take, of each kind: two openers/closers, an opener then an off-topic line (held back:
     no routed frame, or one without a team).
  2. Held-back share over REST of bench/sets (openers/closers, off-topic, foreign requests; for
     those also "held back or routed right"). Held back = reason other than ``routed``; an answer
     without ``reason`` (older releases) is routed unless ``triage`` is true.
     With ``--clinc-artifact``: CLINC150 in-scope vs out-of-scope test texts over REST, scored by
     the answer's confidence, 0 where the answer names no team (the model set the text aside).
  3. Route latency: whole REST requests for single texts, and the release's own Router.predict
     per text on one thread, in a ``manage.py shell`` of that release.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path

from django.utils.text import slugify
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import open_world_sets as sets  # noqa: E402
from common import load_banking77, load_clinc150  # noqa: E402
from releases import Release, shell_value, worktree  # noqa: E402

SHAPES = ("alone", "opener", "opener_closer", "split", "context")
LATENCY = """
import json, os, time
from routing.router import Router
texts, router, seconds = json.load(open(os.environ["BENCH_TEXTS"])), Router(), []
for text in texts[:20]:
    router.predict([text])
for text in texts:
    start = time.perf_counter()
    router.predict([text])
    seconds.append(time.perf_counter() - start)
print("BENCH_LATENCY", json.dumps(seconds))
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument(
        "--artifact", type=Path, help="a model version directory to serve (both releases, unless --baseline-artifact)"
    )
    model.add_argument("--train", action="store_true", help="import 3,000 Banking77 tickets and `manage.py train`")
    parser.add_argument("--baseline-artifact", type=Path, help="the baseline's model (default: as --artifact/--train)")
    parser.add_argument("--baseline-ref", default="b2d4983", help="the release to compare with ('none': skip it)")
    parser.add_argument("--clinc-artifact", type=Path, help="a model trained on CLINC150 in-scope (optional)")
    parser.add_argument(
        "--baseline-clinc-artifact", help="default: --clinc-artifact; 'none': no CLINC150 row for the baseline"
    )
    parser.add_argument("--keep", type=Path, help="copy each release's trained model into DIR/<release> (--train)")
    parser.add_argument("--clinc-in-scope", type=int, default=4500, help="in-scope CLINC150 test texts (seeded)")
    parser.add_argument("--questions", type=int, default=300, help="Banking77 test questions (seeded sample)")
    parser.add_argument("--train-tickets", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--opener", default="Hi")
    parser.add_argument("--closer", default="thanks")
    parser.add_argument("--gap", type=float, default=0.4, help="seconds between a customer's messages")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds to wait for routing after the last ack")
    parser.add_argument("--concurrency", type=int, default=24, help="conversations in flight at once")
    parser.add_argument("--latency-texts", type=int, default=300)
    parser.add_argument("--database-url", help="this release's database (default: SQLite in a temp dir)")
    parser.add_argument("--baseline-database-url", help="the baseline's database (default: SQLite)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


# ----- measurements -----


def team_matches(answer: dict, team: str) -> bool:
    """The answer names ``team``: as the data set names it (an artifact trained outside the product
    labels teams so), or by the slug ``import_tickets`` gives it."""
    return answer.get("team") in (team, slugify(team))


def rest_route(release: Release, texts: list[str]) -> list[tuple[dict, float]]:
    """(answer, seconds of the whole request) per text, one keep-alive connection, in order."""
    connection = http.client.HTTPConnection("127.0.0.1", release.port, timeout=30)
    headers = {"Authorization": f"Token {release.token}", "Content-Type": "application/json"}
    answers = []
    try:
        for text in texts:
            start = time.perf_counter()
            connection.request("POST", "/api/v1/route", json.dumps({"text": text}), headers)
            response = connection.getresponse()
            body = json.loads(response.read())
            answers.append((body, time.perf_counter() - start))
            if response.status != 200:
                raise SystemExit(f"{release.name}: POST /api/v1/route {text!r} answered {response.status}: {body}")
    finally:
        connection.close()
    return answers


def held_back_sets(release: Release) -> dict:
    openers = sets.lines_load(sets.SETS / "openers_closers.txt")
    off_topic = sets.lines_load(sets.SETS / "off_topic.txt")
    foreign = sets.foreign_load(sets.SETS / "foreign_requests.jsonl")
    result = {}
    # An off-topic request inside an e-mail (greeting, two context sentences, sign-off): still no team's.
    emails = [text for text, _ in sets.email_tickets([(line, "") for line in off_topic], seed=0)["context_signed"]]
    for name, texts in (("openers_closers", openers), ("off_topic", off_topic), ("email_off_topic", emails)):
        result[name] = sets.share([sets.held_back(a) for a, _ in rest_route(release, texts)])
    answers = [a for a, _ in rest_route(release, [row.text for row in foreign])]
    result["foreign_held_back"] = sets.share([sets.held_back(a) for a in answers])
    result["foreign_held_back_or_right"] = sets.share(
        [sets.held_back(a) or a.get("team") == row.team for a, row in zip(answers, foreign)]
    )
    return result


def email_accuracy(release: Release, questions: list[tuple[str, str]], seed: int) -> dict:
    """Routed to the right team over REST: each question alone, and inside e-mail tickets of each shape."""
    shapes = {"alone": list(questions), **sets.email_tickets(questions, seed)}
    result = {}
    for shape, rows in shapes.items():
        answers = [a for a, _ in rest_route(release, [text for text, _ in rows])]
        result[f"email_{shape}"] = sets.share(
            [not sets.held_back(a) and team_matches(a, team) for a, (_, team) in zip(answers, rows)]
        )
    return result


def latencies(release: Release, texts: list[str]) -> dict:
    rest = [seconds for _, seconds in rest_route(release, texts)]
    texts_file = release.work / "latency_texts.json"
    texts_file.write_text(json.dumps(texts))
    env = {**release.env, "BENCH_TEXTS": str(texts_file)}
    in_process = json.loads(shell_value(release.tree, env, LATENCY, "BENCH_LATENCY"))
    return {
        "rest_p50_ms": sets.percentile_ms(rest, 50),
        "rest_p99_ms": sets.percentile_ms(rest, 99),
        "predict_p50_ms": sets.percentile_ms(in_process, 50),
        "predict_p99_ms": sets.percentile_ms(in_process, 99),
    }


def clinc_metrics(release: Release, args) -> dict:
    # A model of CLINC150's 150 intents (train_bench --teams intents) or of its 10 domains.
    labels = set(json.loads((release.artifact / "labels.json").read_text()))
    intents = load_clinc150(intents=True)
    data = intents if labels & {team for _, team in intents.test} else load_clinc150()
    in_scope = sets.questions_sample(data.test, args.clinc_in_scope, args.seed)
    in_answers = [a for a, _ in rest_route(release, [text for text, _ in in_scope])]
    oos_answers = [a for a, _ in rest_route(release, data.out_of_scope)]
    positive = [sets.in_scope_score(a) for a in in_answers]
    negative = [sets.in_scope_score(a) for a in oos_answers]
    # A team created by import_tickets has the slug of its name; one registered from labels keeps the label.
    correct = [team_matches(a, team) for a, (_, team) in zip(in_answers, in_scope)]
    recall, threshold = sets.recall_at_accuracy_loss(positive, correct, negative, 0.01)
    return {
        "in_scope": len(positive),
        "out_of_scope": len(negative),
        "in_scope_accuracy_routed": sets.share([c and not sets.held_back(a) for c, a in zip(correct, in_answers)]),
        "oos_held_back": sets.share([sets.held_back(a) for a in oos_answers]),
        "auroc": sets.auroc(positive, negative),
        "fpr_at_95_recall": sets.fpr_at_recall(positive, negative, 0.95),
        "oos_recall_at_1pt_loss": recall,
        "threshold_at_1pt_loss": threshold,
    }


async def conversation_run(url: str, turns: list[str], args, errors: list[str]) -> dict | None:
    """Send the turns (each acked, ``--gap`` apart); the last routed frame after ``--settle`` s."""
    routed: list[dict] = []
    acks: dict[str, asyncio.Event] = {f"t{i}": asyncio.Event() for i in range(len(turns))}

    async def read(ws) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "routed":
                routed.append(frame)
            elif frame["type"] == "ack" and frame["client_id"] in acks:
                acks[frame["client_id"]].set()
            elif frame["type"] == "error":
                errors.append(f"{frame.get('code')}: {frame.get('detail')}")

    async with connect(f"{url}/ws/chat/", origin=url.replace("ws", "http", 1), open_timeout=30) as ws:
        reader = asyncio.create_task(read(ws))
        try:
            for index, turn in enumerate(turns):
                await ws.send(json.dumps({"type": "message", "text": turn, "client_id": f"t{index}"}))
                await asyncio.wait_for(acks[f"t{index}"].wait(), 15)
                await asyncio.sleep(args.gap if index < len(turns) - 1 else args.settle)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return routed[-1] if routed else None


async def guarded_run(url: str, turns: list[str], args, errors: list[str], gate: asyncio.Semaphore):
    """(final routed frame or None, whether the run failed); a failure is kept in ``errors``."""
    async with gate:
        try:
            return await conversation_run(url, turns, args, errors), False
        except (OSError, TimeoutError, WebSocketException) as exc:
            errors.append(repr(exc)[:200])
            return None, True


async def conversations(release: Release, questions: list[tuple[str, str]], args) -> dict:
    url = f"ws://127.0.0.1:{release.port}"
    gate = asyncio.Semaphore(args.concurrency)
    errors: list[str] = []

    async def one(shape: str, question: str, team: str) -> tuple[str, bool, bool]:
        turns = sets.conversation_shapes(question, args.opener, args.closer)[shape]
        final, _ = await guarded_run(url, turns, args, errors, gate)
        if final is None:  # no routed frame, or a failed run: wrong (a failure is shown)
            return shape, False, True
        return shape, not sets.held_back(final) and team_matches(final, team), False

    async def held(kind: str, turns: list[str]) -> tuple[str, bool]:
        """Held back: no routed frame (still waiting) or one that routes to no team; a failed run is not."""
        final, failed = await guarded_run(url, turns, args, errors, gate)
        return kind, not failed and (final is None or sets.held_back(final))

    outcomes = await asyncio.gather(*(one(shape, q, t) for q, t in questions for shape in SHAPES))
    result = {}
    for shape in SHAPES:
        mine = [o for o in outcomes if o[0] == shape]
        result[f"chat_{shape}"] = sets.share([right for _, right, _ in mine])
        result[f"chat_{shape}_unrouted"] = sum(unrouted for _, _, unrouted in mine)
    chats = sets.held_back_chats(
        sets.lines_load(sets.SETS / "openers_closers.txt"),
        sets.lines_load(sets.SETS / "off_topic.txt"),
        len(questions),
        args.seed,
    )
    kept = await asyncio.gather(*(held(kind, turns) for kind, rows in chats.items() for turns in rows))
    for kind in chats:
        result[f"chat_held_{kind}"] = sets.share([flag for name, flag in kept if name == kind])
    result["chat_errors"], result["chat_error_samples"] = len(errors), sorted(set(errors))[:5]
    return result


def measure(release: Release, args, questions, latency_texts) -> dict:
    started = time.monotonic()
    print(f"  {release.name}: conversations ({len(questions)} questions x {len(SHAPES)} shapes)", flush=True)
    result = asyncio.run(conversations(release, questions, args))
    print(f"  {release.name}: held-back sets and latency over REST", flush=True)
    result.update(held_back_sets(release))
    result.update(email_accuracy(release, questions, args.seed))
    result.update(latencies(release, latency_texts))
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def release_measure(name: str, tree: Path, work: Path, args, artifact, database_url, clinc, inputs) -> dict:
    release = Release(name, tree, work / "banking77", database_url, artifact)
    try:
        release.start(args)
        result = measure(release, args, *inputs)
    finally:
        release.stop()
    if clinc is not None:
        release = Release(name, tree, work / "clinc150", None, clinc)
        try:
            release.start(args)
            print(f"  {name}: CLINC150 in-scope and out-of-scope over REST", flush=True)
            result["clinc150"] = clinc_metrics(release, args)
        finally:
            release.stop()
    return result


def print_report(results: dict[str, dict], args) -> None:
    print(
        f"\nopen-world routing: {args.questions} Banking77 questions, opener {args.opener!r}, closer "
        f"{args.closer!r}; model: {args.artifact or f'trained on {args.train_tickets} tickets'}"
    )
    print("\n".join(sets.table_lines(results)))
    for name, result in results.items():
        for sample in result.get("chat_error_samples", []):
            print(f"{name}: chat error: {sample}")
    if args.clinc_artifact is None:
        print("CLINC150 skipped: no --clinc-artifact (a model trained on CLINC150 in-scope) given.")


def baseline_clinc(args) -> Path | None:
    """The baseline's CLINC150 model: its own, else the current one's, or none (an older release
    cannot read a newer artifact format)."""
    if args.baseline_clinc_artifact == "none":
        return None
    return Path(args.baseline_clinc_artifact) if args.baseline_clinc_artifact else args.clinc_artifact


def main(argv=None) -> None:
    args = parse_args(argv)
    questions = sets.questions_sample(load_banking77().test, args.questions, args.seed)
    latency_texts = [
        text for text, _ in sets.questions_sample(load_banking77().test, args.latency_texts, args.seed + 1)
    ]
    inputs = (questions, latency_texts)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="open-world-") as tmp_name:
        tmp = Path(tmp_name)
        if args.baseline_ref != "none":
            with worktree(args.baseline_ref, tmp / "baseline-tree") as tree:
                print(f"baseline {args.baseline_ref} ({tree})", flush=True)
                results[f"baseline {args.baseline_ref}"] = release_measure(
                    "baseline",
                    tree,
                    tmp / "baseline",
                    args,
                    args.baseline_artifact or args.artifact,
                    args.baseline_database_url,
                    baseline_clinc(args),
                    inputs,
                )
        print(f"current ({ROOT})", flush=True)
        results["current"] = release_measure(
            "current", ROOT, tmp / "current", args, args.artifact, args.database_url, args.clinc_artifact, inputs
        )
    print_report(results, args)
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
