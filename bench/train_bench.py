"""Learning-curve benchmark of the training pipeline: baseline vs teacher vs student vs int8 vs served.

    .venv/bin/python bench/train_bench.py --dataset banking77 --sizes 10,50,3000 --json /tmp/b.json

For each labelled-sample size it runs finetune.ml's real pipeline, scores every model on the
dataset's own test set, and times one message (one thread, batch 1) through the torch teacher,
the transformers text-classification pipeline, and the int8 ONNX student. ``--flow pooled``
(default): the rest of the training pool is the unlabelled distillation input. ``--flow product``:
labelled tickets only, as ``manage.py train`` runs the pipeline for a helpdesk that has nothing
else. "served" is what the artifact serves: the int8 student or its hybrid with TF-IDF + LR.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import (  # noqa: E402
    DATA_ROOT,
    Dataset,
    load_banking77,
    load_bitext,
    load_clinc150,
    load_csv_pair,
    parse_size,
    stratified_sample,
)
from finetune.ml.config import TrainConfig  # noqa: E402
from finetune.ml.evaluate import latency_ms  # noqa: E402
from finetune.ml.export import onnx_session  # noqa: E402
from finetune.ml.pipeline import LabelledText, run_pipeline  # noqa: E402
from finetune.ml.split import assign_splits  # noqa: E402

MODELS = [
    ("baseline", "TF-IDF+LR"),
    ("teacher", "teacher"),
    ("student", "student torch"),
    ("int8", "int8 student"),
    ("served", "served"),
]


def load(args) -> Dataset:
    if args.train_csv:
        return load_csv_pair(args.train_csv, args.test_csv)
    if args.teams == "intents":  # the published setting: each intent its own team
        if args.dataset == "bitext":
            raise SystemExit("--teams intents: Banking77 or CLINC150 only")
        return {"banking77": load_banking77, "clinc150": load_clinc150}[args.dataset](args.data_root, intents=True)
    return {"banking77": load_banking77, "clinc150": load_clinc150, "bitext": load_bitext}[args.dataset](args.data_root)


def examples_for(sample, test, seed: int, val_fraction: float) -> list[LabelledText]:
    """The sample split into train/val (seeded, stratified); the dataset's test set is the test split."""
    splits = assign_splits(
        [t for _, t in sample], [""] * len(sample), seed=seed, val_fraction=val_fraction, test_fraction=0.0
    )
    return [LabelledText(x, t, s) for (x, t), s in zip(sample, splits)] + [LabelledText(x, t, "test") for x, t in test]


def teacher_latency(config: TrainConfig, labels: list[str], texts: list[str]) -> dict:
    """Torch teacher, one thread, batch 1: raw model and via transformers' pipeline().

    Latency depends on the architecture, not the weights, so the base model with a fresh head is
    timed (the pipeline does not keep its teacher). The pipeline needs a transformers
    classification model: the base encoder with its [CLS]-pooler head, the way users would serve it.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from finetune.ml.model import MeanPooledClassifier

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    hf_model = AutoModelForSequenceClassification.from_pretrained(config.base_model, num_labels=len(labels)).eval()
    classify = pipeline("text-classification", model=hf_model, tokenizer=tokenizer, device=-1)
    model = MeanPooledClassifier.from_pretrained(config.base_model, len(labels), seed=0).eval()

    @torch.no_grad()
    def raw(text: str) -> None:
        encoded = tokenizer(text, truncation=True, max_length=config.max_length, return_tensors="pt")
        model(encoded["input_ids"], encoded["attention_mask"])

    result = {
        "teacher_torch": latency_ms(raw, texts, limit=200),
        "teacher_hf_pipeline": latency_ms(classify, texts, limit=200),
    }
    torch.set_num_threads(config.threads)
    return result


def student_latency(artifact: Path, texts: list[str]) -> dict:
    """int8 student end to end as the router runs it: tokenizers + onnxruntime, one thread."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(artifact / "tokenizer.json"))
    session = onnx_session(artifact / "model.onnx", 1)

    def route(text: str) -> None:
        ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
        session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})

    return {"int8_end_to_end": latency_ms(route, texts, limit=500)}


def open_world_row(metrics: dict) -> dict:
    """The pipeline's own open-world figures: held-back shares by the served rule (no-intent wins,
    out of scope, or below the triage threshold) and the OOD score's AUROC / FPR at 95 % in-scope."""
    figures = metrics["open_world"]
    row = {key: value for key, value in figures.items() if key.startswith("held_back_")}
    for key in ("out_of_scope_auroc", "out_of_scope_fpr_at_95", "ood"):
        row[key] = figures.get(key)
    return row


def result_row(result, wall: float, texts: list[str]) -> dict:
    """One run's figures: every model's test accuracy, what serves and why, timings, open world."""
    metrics = result.metrics
    return {
        "wall_s": round(wall, 1),
        "metrics": {key: {k: metrics[key][k] for k in ("accuracy", "macro_f1")} for key, _ in MODELS},
        "served_model": metrics["served_model"],
        "timings_s": metrics["timings_s"],
        "latency_ms": {"int8": metrics["latency_ms"]["int8"], **student_latency(result.artifact_dir, texts)},
        "open_world": open_world_row(metrics),
        "augmented": metrics["data"]["augmented"],
        "calibration": metrics["calibration"],
    }


def run_size(dataset: Dataset, spec: str, args) -> dict:
    n, per_team = parse_size(spec)
    sample, rest = stratified_sample(dataset.train, n, per_team, args.seed)
    defaults = {"seed": args.seed, "min_per_team": min(8, n) if per_team else 8}
    config = TrainConfig(**{**defaults, **json.loads(args.config)})
    examples = examples_for(sample, dataset.test, args.seed, config.val_fraction)
    unlabelled = [x for x, _ in rest] if args.flow == "pooled" else []
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        start = time.perf_counter()
        result = run_pipeline(
            config=config,
            examples=examples,
            unlabelled=unlabelled,
            work_dir=Path(tmp) / "artifact",
            out_of_scope=dataset.out_of_scope or None,
            progress=(lambda s, p, m: print(f"  [{spec}] {s} {p:5.1f}% {m}", file=sys.stderr))
            if args.verbose
            else None,
        )
        wall = time.perf_counter() - start
        row = {"size": spec, "flow": args.flow, "labelled": len(sample), "unlabelled": len(unlabelled)}
        row.update(result_row(result, wall, [x for x, _ in dataset.test]))
        if args.keep:  # e.g. for Router.predict timings of the served artifact
            shutil.copytree(
                result.artifact_dir,
                args.keep / f"{dataset.name}-{spec}-{args.flow}-seed{args.seed}",
                dirs_exist_ok=True,
            )
    return row


def print_table(dataset: Dataset, rows: list[dict], latency: dict) -> None:
    print(
        f"\n{dataset.name}: {len(dataset.train)} pool, {len(dataset.test)} test, {len(dataset.teams)} teams, flow {rows[0]['flow']}"
    )
    print(f"{'size':>8} {'model':<14} {'accuracy':>8} {'macro-F1':>8} {'wall s':>7} {'p50 ms':>7} {'p95 ms':>7}")
    for row in rows:
        for key, name in MODELS:
            m = row["metrics"][key]
            lat = {"int8": row["latency_ms"]["int8"], "teacher": latency["teacher_torch"]}.get(key)
            p50, p95 = (f"{lat['p50']:.2f}", f"{lat['p95']:.2f}") if lat else ("", "")
            print(
                f"{row['size']:>8} {name:<14} {100 * m['accuracy']:8.2f} {100 * m['macro_f1']:8.2f} {row['wall_s']:7.0f} {p50:>7} {p95:>7}"
            )
        choice = row["served_model"]
        print(f"{'':>8} served: {choice['kind']} (TF-IDF weight {choice['tfidf_weight']:.2f}); {choice['reason']}")
        print(
            f"{'':>8} distilled on {row['augmented']} noisy copies of train texts beside {row['unlabelled']} unlabelled"
        )
        world = row["open_world"]
        held = ", ".join(
            f"{key[len('held_back_') :]} {100 * v['share']:.1f}% of {v['n']}"
            for key, v in world.items()
            if key.startswith("held_back_") and v["share"] is not None
        )
        print(f"{'':>8} held back (served rule): {held}")
        if world.get("out_of_scope_auroc") is not None:
            print(
                f"{'':>8} out-of-scope vs in-scope test, OOD score ({world['ood']['method']}): "
                f"AUROC {world['out_of_scope_auroc']:.3f}, FPR at 95% in-scope recall {world['out_of_scope_fpr_at_95']:.3f}"
            )
    e2e, hf = rows[-1]["latency_ms"]["int8_end_to_end"], latency["teacher_hf_pipeline"]
    print(
        f"one message end to end (1 thread): int8 student p50 {e2e['p50']:.2f} ms vs teacher via "
        f"transformers pipeline p50 {hf['p50']:.2f} ms ({hf['p50'] / e2e['p50']:.0f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["banking77", "clinc150", "bitext"], default="banking77")
    parser.add_argument(
        "--flow",
        choices=["pooled", "product"],
        default="pooled",
        help="pooled: the rest of the pool is unlabelled distillation input; product: labelled tickets only",
    )
    parser.add_argument(
        "--teams", choices=["product", "intents"], default="product", help="teams.json's teams, or one per intent"
    )
    parser.add_argument("--keep", type=Path, help="copy each run's artifact into this folder")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--train-csv", type=Path)
    parser.add_argument("--test-csv", type=Path)
    parser.add_argument("--sizes", default="10,50,3000", help="'N/team', a bare N ≤ 100 (per team), or a larger total")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--config", default="{}", help="TrainConfig overrides as JSON, e.g. '{\"epochs\": 4}'")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--verbose", action="store_true", help="print pipeline progress to stderr")
    parser.add_argument("--jobs", type=int, default=1, help="sizes run in parallel processes")
    args = parser.parse_args()
    if bool(args.train_csv) != bool(args.test_csv):
        parser.error("--train-csv and --test-csv go together")
    dataset = load(args)
    specs = [spec.strip() for spec in args.sizes.split(",")]
    if args.jobs > 1:
        # Separate processes: on a shared, busy machine single-threaded runs side by side get more
        # done than one multi-threaded run; each size's wall time then includes the others' load.
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(run_size, [dataset] * len(specs), specs, [args] * len(specs)))
    else:
        rows = [run_size(dataset, spec, args) for spec in specs]
    if args.json:  # written now too: the latency step below takes a while and must not lose the runs
        args.json.write_text(json.dumps({"dataset": dataset.name, "rows": rows}, indent=2))
    config = TrainConfig(**json.loads(args.config))
    latency = teacher_latency(config, dataset.teams, [x for x, _ in dataset.test])
    if args.json:
        args.json.write_text(json.dumps({"dataset": dataset.name, "rows": rows, "latency_ms": latency}, indent=2))
    print_table(dataset, rows, latency)


if __name__ == "__main__":
    main()
