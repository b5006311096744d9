"""What recording the route metrics costs: ``route_body`` with and without them, side by side.

    .venv/bin/python bench/metrics_cost.py [--artifact DIR] [--rounds 30] [--requests 200]
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/metrics_cost.py   # multiprocess mode

Process CPU time per request (not wall time: other processes share the cores), for blocks of
``--requests`` calls alternating between recording on and off, so both see the same load. The
model is ``--artifact`` (a published version directory), else the tests' tiny model: its
inference is far cheaper than the shipped student's, so the share measured is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot.project.settings")


def load_model(artifact: Path | None):
    """A LoadedModel over ``artifact`` (or a fresh tiny one), opened as the router opens a version."""
    from django.test.utils import override_settings

    from finetune.ml.artifacts import verify_checksums
    from routing.loaded_model import LoadedModel
    from routing.models import ModelVersion

    if artifact is None:
        from tests.ml_fixtures import make_tiny_artifact

        artifact = make_tiny_artifact(Path(tempfile.mkdtemp(prefix="metrics-cost-")), ["billing", "accounts", "bugs"])
    labels = json.loads((artifact / "labels.json").read_text())
    version = ModelVersion(pk=1, artifact_dir=artifact.name, sha256=verify_checksums(artifact), labels=labels)
    with override_settings(SWITCHBOARD={"MODEL_STORE": str(artifact.parent)}):
        return LoadedModel.from_version(version, threads=1)


class DirectRouter:
    """Router.predict's work without the database: the model, every team known and active."""

    def __init__(self, model) -> None:
        from routing.loaded_model import TeamInfo

        self.model = model
        self.teams = {label: TeamInfo(name=label, triage_threshold=None, active=True) for label in model.labels}

    def predict(self, texts: list[str]):
        return self.model.predict(texts, teams=self.teams, default_threshold=0.5)


def cpu_per_request(call, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        call()
    return (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    import django

    django.setup()
    from chatbot.core import metrics
    from routing import apis

    router = DirectRouter(load_model(args.artifact))
    data = {"text": "my invoice payment was charged twice"}
    recording = metrics.route_observe
    silent = lambda **kwargs: None  # noqa: E731
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    cpu_per_request(lambda: apis.route_body(router, data), args.requests)  # warm-up
    for index in range(args.rounds):
        for mode in ("on", "off") if index % 2 == 0 else ("off", "on"):  # neither always goes first
            metrics.route_observe = recording if mode == "on" else silent
            cpu[mode].append(cpu_per_request(lambda: apis.route_body(router, data), args.requests))
    metrics.route_observe = recording
    answer = [apis.route_body(router, data)]
    observe = cpu_per_request(lambda: recording(kind="text", seconds=0.001, answers=answer), 20_000)
    on, off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    spread = {m: (statistics.quantiles(v, n=4)[2] - statistics.quantiles(v, n=4)[0]) * 1e6 for m, v in cpu.items()}
    mode = "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "single process"
    print(
        f"route_body CPU per request ({mode}, median of {args.rounds} x {args.requests}): "
        f"metrics on {on * 1e6:.1f} us, off {off * 1e6:.1f} us, difference {(on - off) * 1e6:+.1f} us "
        f"({(on - off) / off:+.1%}; interquartile ranges {spread['on']:.1f} / {spread['off']:.1f} us); "
        f"route_observe alone {observe * 1e6:.2f} us"
    )


if __name__ == "__main__":
    main()
