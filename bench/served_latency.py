"""Router.predict per message, one thread, process CPU time: a hybrid artifact beside its student alone.

    .venv/bin/python bench/served_latency.py --artifact bench/out/kept/banking77-3000-product-seed13

For each artifact that serves a hybrid, a copy without its ``hybrid`` block (the same int8 student
alone) is timed beside it, the two routers taking turns text by text, so machine load hits both
alike. Each router is the real ``routing.router.Router`` with its state loaded once (its periodic
database check is left out: it is amortised over ``ROUTER_RELOAD_SECONDS``). Texts: Banking77's
test set. Process CPU time, not wall time: other sessions share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DATA_ROOT, _read_csv  # noqa: E402
from bench.route_bench import server_env  # noqa: E402


def student_only_copy(artifact: Path, target: Path) -> Path:
    """The artifact with its hybrid block dropped: the same student, served alone."""
    from finetune.ml.artifact_format import read_serving, write_serving
    from finetune.ml.artifacts import write_checksums

    shutil.copytree(artifact, target)
    serving = replace(read_serving(target), hybrid=None)
    for name in ("tfidf.npz", "tfidf_vocabulary.json"):
        (target / name).unlink()
    write_serving(target, serving)
    write_checksums(target)
    return target


def routers(artifacts: dict[str, Path], store: Path) -> dict:
    """One Router per artifact, its state set once (teams from the labels)."""
    from finetune.ml.artifacts import sha256_file
    from routing.loaded_model import LoadedModel, TeamInfo
    from routing.models import ModelVersion
    from routing.router import Router, RouterState

    out = {}
    for index, (name, artifact) in enumerate(artifacts.items()):
        shutil.copytree(artifact, store / f"a{index}")
        labels = json.loads((artifact / "labels.json").read_text())
        version = ModelVersion.objects.create(
            artifact_dir=f"a{index}", sha256=sha256_file(artifact / "checksums"), labels=labels
        )
        model = LoadedModel.from_version(version, threads=1)
        router = Router()
        teams = {label: TeamInfo(name=label, triage_threshold=None) for label in labels}
        router._state = RouterState(model=model, teams=teams, active=(version.pk, version.sha256))
        router._checked_at = time.monotonic()
        out[name] = router
    return out


def time_turns(named: dict, texts: list[str], warmup: int = 50) -> dict[str, list[float]]:
    """CPU seconds of each router's predict([text]), the routers taking turns on every text."""
    for router in named.values():
        for text in texts[:warmup]:
            router.predict([text])
    seconds: dict[str, list[float]] = {name: [] for name in named}
    for text in texts:
        for name, router in named.items():
            start = time.process_time()
            router.predict([text])
            seconds[name].append(time.process_time() - start)
    return seconds


def stage_turns(model, texts: list[str], warmup: int = 50) -> dict[str, list[float]]:
    """CPU seconds of each stage of one message's route, the stages run in turn on every text with
    the model's own parts: tokenizer, ONNX session, TF-IDF term, OOD score, language check, and the
    decision (team scores and reason) that LoadedModel.predict adds on top."""
    from finetune.ml.onnx_batches import padded
    from finetune.ml.ood import POOLED_METHODS, in_scope_scores
    from routing.loaded_model import language_check

    serving, ood = model.serving, model.serving.ood
    outputs = ["logits", "pooled"] if ood is not None and ood.method in POOLED_METHODS else ["logits"]
    teams = {}

    def feed(ids: list[int]) -> dict:
        return padded([ids], model.pad_id)

    def stages(text: str) -> dict:
        state = {}
        return {
            "tokenizer": lambda: state.update(ids=model.rows([text])[0]),  # windowed as the router reads it
            "onnx session": lambda: state.update(out=model.session.run(outputs, feed(state["ids"]))),
            "tfidf term": lambda: (
                serving.hybrid.logits(state["out"][0].astype(np.float64), [text]) if serving.hybrid else None
            ),
            "ood score": lambda: (
                in_scope_scores(ood, state["out"][0].astype(np.float64), state["out"][1] if len(outputs) > 1 else None)
                if ood is not None
                else None
            ),
            "language check": lambda: language_check(text, serving.languages),
            "whole predict": lambda: model.predict([text], teams=teams, default_threshold=0.5),
        }

    for text in texts[:warmup]:
        for run in stages(text).values():
            run()
    seconds: dict[str, list[float]] = {}
    for text in texts:
        for name, run in stages(text).items():
            start = time.process_time()
            run()
            seconds.setdefault(name, []).append(time.process_time() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, action="append", required=True)
    parser.add_argument("--texts", type=int, default=2000, help="Banking77 test texts, each routed once per router")
    parser.add_argument("--stages", action="store_true", help="also time each stage of the first artifact's route")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    texts = [text for text, _ in _read_csv(DATA_ROOT / "banking77" / "test.csv", "text", "category")][: args.texts]
    with tempfile.TemporaryDirectory(prefix="served-latency-") as tmp:
        env = server_env(Path(tmp))
        (Path(tmp) / "store").mkdir()
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        import django

        django.setup()
        from django.conf import settings

        settings.SWITCHBOARD = {**getattr(settings, "SWITCHBOARD", {}), "ROUTER_RELOAD_SECONDS": 3600}
        artifacts = {}
        for index, artifact in enumerate(args.artifact):
            name = artifact.name if [a.name for a in args.artifact].count(artifact.name) == 1 else str(artifact)
            artifacts[name] = artifact
            if (artifact / "tfidf.npz").is_file():
                artifacts[f"{name} (student alone)"] = student_only_copy(artifact, Path(tmp) / f"alone-{index}")
        named = routers(artifacts, Path(tmp) / "store")
        seconds = time_turns(named, texts)
        if args.stages:
            first = named[next(iter(artifacts))].state().model
            seconds.update({f"  stage: {k}": v for k, v in stage_turns(first, texts).items()})
    results = {
        name: {
            "p50_ms": 1000 * float(np.percentile(s, 50)),
            "p99_ms": 1000 * float(np.percentile(s, 99)),
            "mean_ms": 1000 * float(np.mean(s)),
            "n": len(s),
        }
        for name, s in seconds.items()
    }
    print(f"{'Router.predict, 1 thread, CPU time':<60} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>8}")
    for name, r in results.items():
        print(f"{name:<60} {r['p50_ms']:7.3f} {r['p99_ms']:7.3f} {r['mean_ms']:8.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
