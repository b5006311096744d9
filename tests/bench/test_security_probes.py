"""The pure parts of bench/security_probes.py (bench/probe_kit.py): its result table and summary."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import probe_kit as probes  # noqa: E402


def test_the_table_has_one_row_per_probe_with_pipes_escaped_and_whitespace_folded():
    results = [
        probes.Result("1 a", "sent | with a pipe", "expected\nover two lines", "seen", probes.PASS),
        probes.Result("2 b", "x", "y", "z", probes.FAIL),
    ]
    lines = probes.table_lines(results)
    assert lines[0] == "| probe | sent | expected | observed | result |"
    assert lines[2] == "| 1 a | sent \\| with a pipe | expected over two lines | seen | PASS |"
    assert lines[3].endswith("| FAIL |") and len(lines) == 4


def test_the_summary_counts_each_outcome():
    results = [
        probes.Result(str(i), "", "", "", status) for i, status in enumerate(["PASS", "PASS", "FAIL", "NOT RUN"])
    ]
    assert probes.summary_line(results) == "2 passed, 1 failed, 1 not run, of 4 probes"
    assert probes.verdict(True) == probes.PASS and probes.verdict(False) == probes.FAIL
