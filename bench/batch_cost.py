"""CPU per text of the served ONNX student by batch size: texts in arrival order beside texts sorted by length.

    .venv/bin/python bench/batch_cost.py --artifact var/models/1 [--texts 1024] [--json FILE]

Why the router scores a batch sorted by length (finetune/ml/onnx_batches.py): a batch pads to its
longest text, so the cost of a batch in arrival order grows with its size while a sorted one pads
little. One thread, process CPU time, the artifact's model.onnx and tokenizer (windowed as the
router windows them); Banking77 test texts shuffled with a fixed seed, each batch size run over the
same texts in both orders. Also: one text at the full 64-token window (a long joined conversation).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA_ROOT, load_banking77  # noqa: E402

SIZES = (1, 2, 4, 8, 16, 32)


def open_model(artifact: Path):
    """(session, output names, tokenizer, pad id, serving) as the router opens them, one thread."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from finetune.ml.artifact_format import read_serving

    serving = read_serving(artifact)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(artifact / "model.onnx"), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(artifact / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    names = [output.name for output in session.get_outputs()]
    return session, names, tokenizer, tokenizer.token_to_id("[PAD]") or 0, serving


def measure(artifact: Path, texts: list[str]) -> dict:
    """CPU ms per text by batch size, arrival order vs sorted, and one text at the full window."""
    from finetune.ml.onnx_batches import padded
    from finetune.ml.window import window_ids

    session, names, tokenizer, pad_id, serving = open_model(artifact)
    head = serving.window_head if serving.window_head is not None else 1.0

    def rows_of(chosen: list[str]) -> list[list[int]]:
        return [window_ids(e.ids, serving.max_length, head) for e in tokenizer.encode_batch(chosen)]

    def per_text_ms(batches: list[list[list[int]]]) -> float:
        for batch in batches[:5]:
            session.run(names, padded(batch, pad_id))
        start = time.process_time()
        for batch in batches:
            session.run(names, padded(batch, pad_id))
        return 1000 * (time.process_time() - start) / sum(len(batch) for batch in batches)

    rows = rows_of(texts)
    results = {"mean_tokens": statistics.mean(len(row) for row in rows), "arrival": {}, "sorted": {}}
    for order, pool in (("arrival", rows), ("sorted", sorted(rows, key=len))):
        for size in SIZES:
            results[order][size] = per_text_ms([pool[i : i + size] for i in range(0, len(pool), size)])
    joined = rows_of(["\n".join(texts[i : i + 6]) for i in range(0, 6 * 200, 6)])
    results["max_length"] = serving.max_length
    results["one_text_full_window"] = per_text_ms([[row] for row in joined if len(row) == serving.max_length])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, required=True, help="a model version directory")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    texts = [text for text, _ in load_banking77(args.data_root).test]
    random.Random(1).shuffle(texts)
    results = measure(args.artifact, texts[: args.texts])
    print(f"ONNX session CPU ms per text, 1 thread ({args.texts} texts, {results['mean_tokens']:.1f} tokens mean)")
    print(f"{'batch size':>10} {'arrival order':>14} {'sorted by length':>17}")
    for size in SIZES:
        print(f"{size:>10} {results['arrival'][size]:>14.3f} {results['sorted'][size]:>17.3f}")
    print(
        f"one text of {results['max_length']} tokens (a long joined conversation): {results['one_text_full_window']:.3f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
