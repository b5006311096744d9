"""Dataset loaders for the benchmarks; the data stays in ../shared/data, never in the repo."""

from __future__ import annotations

import csv
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# Beside the checkout (/work/main -> /work/shared/data); BENCH_DATA for a checkout elsewhere (a worktree).
DATA_ROOT = Path(os.environ.get("BENCH_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")

Row = tuple[str, str]  # (text, team)


@dataclass
class Dataset:
    name: str
    train: list[Row]  # the pool labelled samples (and unlabelled texts) are drawn from
    test: list[Row]  # the fixed test set every model is scored on
    out_of_scope: list[str] = field(default_factory=list)  # texts that belong to no team

    @property
    def teams(self) -> list[str]:
        return sorted({team for _, team in self.train})


def _read_csv(path: Path, text_col: str, label_col: str, mapping: dict[str, str] | None = None) -> list[Row]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(r[text_col], r[label_col]) for r in csv.DictReader(f)]
    return [(text, mapping[label] if mapping else label) for text, label in rows]


def load_banking77(root: Path = DATA_ROOT, intents: bool = False) -> Dataset:
    """Banking77's 77 intents mapped to 8 product teams by teams.json (``intents``: each intent a team)."""
    teams = None if intents else json.loads((root / "banking77" / "teams.json").read_text())
    return Dataset(
        "banking77-intents" if intents else "banking77",
        _read_csv(root / "banking77" / "train.csv", "text", "category", teams),
        _read_csv(root / "banking77" / "test.csv", "text", "category", teams),
    )


def load_clinc150(root: Path = DATA_ROOT, intents: bool = False) -> Dataset:
    """CLINC150's 150 intents mapped to 10 domains (``intents``: each intent a team); its
    out-of-scope test texts kept aside."""
    data = json.loads((root / "clinc150" / "data_full.json").read_text())
    domains = json.loads((root / "clinc150" / "teams.json").read_text())
    teams = {intent: intent for intent in domains} if intents else domains
    return Dataset(
        "clinc150-intents" if intents else "clinc150",
        [(text, teams[intent]) for text, intent in data["train"]],
        [(text, teams[intent]) for text, intent in data["test"]],
        [text for text, _ in data["oos_test"]],
    )


def load_bitext(root: Path = DATA_ROOT, test_share: float = 0.3) -> Dataset:
    """Bitext customer support: 27 intents mapped to 8 teams by teams.json; no official split.

    Repeated instructions (lower-cased, white space collapsed) are dropped first, then a seeded
    stratified `test_share` of each team is the test set (seed 0, fixed: every run scores the same texts).
    """
    folder = root / "bitext_customer_support"
    teams = json.loads((folder / "teams.json").read_text())
    rows, seen = [], set()
    for text, intent in _read_csv(
        folder / "Bitext_Sample_Customer_Support_Training_Dataset.csv", "instruction", "intent"
    ):
        key = " ".join(text.lower().split())
        if key and key not in seen:
            seen.add(key)
            rows.append((text, teams[intent]))
    test, train = stratified_sample(rows, round(test_share * len(rows)), per_team=False, seed=0)
    return Dataset("bitext", train, test)


def load_csv_pair(train_csv: Path, test_csv: Path) -> Dataset:
    """Any pair of CSV files with `text,team` columns."""
    return Dataset(Path(train_csv).stem, _read_csv(train_csv, "text", "team"), _read_csv(test_csv, "text", "team"))


def parse_size(spec: str) -> tuple[int, bool]:
    """'10/team' or a bare number ≤ 100 → per team; a larger bare number → total, stratified."""
    if spec.endswith("/team"):
        return int(spec[: -len("/team")]), True
    n = int(spec)
    return n, n <= 100


def stratified_sample(rows: list[Row], n: int, per_team: bool, seed: int) -> tuple[list[Row], list[Row]]:
    """(sample, rest): n per team, or n in total in proportion to team sizes."""
    by_team: dict[str, list[int]] = defaultdict(list)
    for i, (_, team) in enumerate(rows):
        by_team[team].append(i)
    rng = random.Random(seed)
    chosen: set[int] = set()
    for team in sorted(by_team):
        indices = by_team[team][:]
        rng.shuffle(indices)
        take = n if per_team else max(1, round(n * len(indices) / len(rows)))
        chosen.update(indices[:take])
    sample = [rows[i] for i in sorted(chosen)]
    rest = [row for i, row in enumerate(rows) if i not in chosen]
    return sample, rest


def banking77_team_names() -> dict[str, str]:
    """Banking77 team names by their product slug, for registering an artifact's labels."""
    from django.utils.text import slugify  # the slug import_tickets gives a team it creates

    names = set(json.loads((DATA_ROOT / "banking77" / "teams.json").read_text()).values())
    return {slugify(name): name for name in names}


def banking77_tickets_csv(path: Path, n: int, seed: int) -> Path:
    """n stratified Banking77 training tickets as a `text,team` CSV (team = the team's name)."""
    sample, _ = stratified_sample(load_banking77().train, n, per_team=False, seed=seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "team"])
        writer.writerows(sample)
    return path
