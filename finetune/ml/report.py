"""Human-readable outputs of a run: the verdict sentence and the model card."""

from __future__ import annotations

MODEL_ROWS = (
    ("baseline", "TF-IDF + logistic regression"),
    ("teacher", "teacher (torch)"),
    ("student", "student (torch)"),
    ("int8", "student int8 ONNX"),
)
SERVED_NAMES = {"student": "the int8 student", "hybrid": "the hybrid (int8 student + TF-IDF)"}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _served(metrics: dict) -> tuple[str, dict]:
    """(name, test metrics) of the served model; versions trained before the hybrid served the int8 student."""
    kind = metrics.get("served_model", {}).get("kind", "student")
    return SERVED_NAMES[kind], metrics.get("served") or metrics["int8"]


def verdict(metrics: dict) -> str:
    """One plain sentence: the served model against the baseline and its teacher."""
    name, served_metrics = _served(metrics)
    where = f"the {metrics['evaluated_on']} split (n={served_metrics['n']})"
    served, teacher = served_metrics["accuracy"], metrics["teacher"]["accuracy"]
    text = f"The served model, {name}, scores {_pct(served)} accuracy on {where}; the teacher {_pct(teacher)}"
    baseline = metrics.get("baseline")
    if not baseline:
        return text + "; no baseline was fitted."
    gap = 100 * (served - baseline["accuracy"])
    text += f", the TF-IDF + logistic regression baseline {_pct(baseline['accuracy'])}. "
    if gap > 0:
        return text + f"The served model beats the baseline by {gap:.1f} points."
    return text + (
        f"The served model does NOT beat the baseline ({gap:+.1f} points): label more tickets before relying on it."
    )


def _served_section(metrics: dict) -> list[str]:
    """Which model serves and why: every candidate's validation figures."""
    choice = metrics.get("served_model")
    if not choice:
        return []
    name, _ = _served(metrics)
    lines = ["## Served model", f"Served: {name}. Chosen on validation: {choice['reason']}"]
    tfidf = metrics.get("latency_ms", {}).get("tfidf")
    if tfidf:
        lines.append(f"The TF-IDF term adds p50 {tfidf['p50']:.3f} ms per message (one thread).")
    return lines + [""]


def _metrics_table(metrics: dict) -> list[str]:
    rows = ["| model | accuracy | macro-F1 |", "| --- | --- | --- |"]
    served_name, _ = _served(metrics)
    for key, name in MODEL_ROWS + (("served", f"served: {served_name}"),):
        if metrics.get(key):
            rows.append(f"| {name} | {_pct(metrics[key]['accuracy'])} | {_pct(metrics[key]['macro_f1'])} |")
    return rows


def _teachers(config: dict) -> str:
    count = config.get("teachers", 1)  # metrics of versions trained before ensembles have no key
    return f"ensemble of {count} seeds, " if count > 1 else ""


def _share(figure: dict | None) -> str:
    if not figure or figure.get("share") is None:
        return "not measured (no texts)"
    return f"{_pct(figure['share'])} of {figure['n']}"


def _open_world(metrics: dict) -> list[str]:
    """Held-back shares (no team picked: no-intent, out of scope, or below the threshold) and languages."""
    figures = metrics.get("open_world")
    if not figures:
        return []
    ood = figures.get("ood")
    lines = [
        "## Open world",
        f"Held back (not routed to a team): held-out no-intent corpus lines {_share(figures.get('held_back_no_intent_heldout'))}; "
        f"out-of-scope texts {_share(figures.get('held_back_out_of_scope'))}; "
        f"off-topic corpus lines {_share(figures.get('held_back_off_topic'))}; "
        f"in-scope {metrics['evaluated_on']} tickets {_share(figures.get('held_back_in_scope'))}.",
        "Out-of-scope check: "
        + (
            "none (no validation texts)."
            if ood is None
            else f"{ood['method']}, threshold {ood['threshold']:.3f}, passes {_pct(ood['val_in_scope_pass'])} "
            "of in-scope validation texts."
        ),
    ]
    if figures.get("out_of_scope_auroc") is not None:
        lines.append(
            f"Its score on the given out-of-scope texts against in-scope {metrics['evaluated_on']} tickets: "
            f"AUROC {figures['out_of_scope_auroc']:.3f}, false-positive rate at 95 % in-scope recall "
            f"{_pct(figures['out_of_scope_fpr_at_95'])}."
        )
    languages = metrics.get("languages")
    if languages:
        seen = ", ".join(f"{code} {n}" for code, n in sorted(languages["counts"].items(), key=lambda kv: -kv[1]))
        lines.append(
            f"Languages of the training tickets: {seen or 'none identified'}; "
            f"supported: {', '.join(languages['supported']) or 'none'}."
        )
    return lines + [""]


def model_card(metrics: dict) -> str:
    """A short Markdown card: data, config, metrics, latency, size, calibration, verdict, limits."""
    data, config, cal = metrics["data"], metrics["config"], metrics["calibration"]
    latency = metrics["latency_ms"]["int8"]
    lines = [
        "# Switchboard router model",
        "",
        "## Data",
        f"Teams ({len(metrics['labels'])}): {', '.join(metrics['labels'])}.",
        f"Labelled tickets: {data['train']} train, {data['val']} validation, {data['test']} test; "
        f"{data['unlabelled']} unlabelled texts used for distillation"
        + (f", and {data['augmented']} noisy copies of train texts." if data.get("augmented") else "."),
        "",
        "## Training",
        f"Teacher: `{config['base_model']}` ({_teachers(config)}{config['method']} fine-tuning, {config['epochs']} epochs max, "
        f"lr {config['lr']:g}); student: first {config['student_layers']} layers, distilled "
        f"{config['distil_epochs']} epochs at T={config['kd_temperature']:g}; exported to ONNX, int8 weights. "
        + (
            "Every model reads a ticket's message body (no quoted messages, signature or mail footer)."
            if config.get("message_body")
            else "Every model reads whole texts."
        ),
        "",
        f"## Metrics ({metrics['evaluated_on']} split)",
        *_metrics_table(metrics),
        "",
        f"Latency of one message (int8, one thread, batch 1): p50 {latency['p50']:.2f} ms, "
        f"p95 {latency['p95']:.2f} ms. Model file: {metrics['size_mb']['model.onnx']} MB.",
        f"int8/torch agreement: {_pct(metrics['parity']['agreement'])}.",
        "",
        *_served_section(metrics),
        "## Calibration",
        f"Temperature {cal['temperature']:.3f}; ECE {cal['ece_before']:.3f} before, {cal['ece_after']:.3f} after. "
        f"Proposed triage threshold {cal['triage_threshold']:.3f} (target precision {_pct(cal['target_precision'])}).",
        "",
        *_open_world(metrics),
        "## Verdict",
        metrics["verdict"],
        "",
        *_limitations(metrics),
    ]
    return "\n".join(lines) + "\n"


def _limitations(metrics: dict) -> list[str]:
    """What the model cannot know, then the run's own notes (empty splits, a shallow base model)."""
    return [
        "## Limitations",
        "Trained only on this helpdesk's labelled tickets: messages unlike them (other languages, "
        "new products, out-of-scope requests) can still get confident wrong answers. "
        f"Texts are cut at {metrics['config']['max_length']} tokens. Small validation sets make the "
        "temperature and threshold noisy.",
        *[f"- {note}" for note in metrics.get("notes", [])],
    ]
