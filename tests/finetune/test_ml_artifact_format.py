"""serving.json format 2 round trip, format 1 still read, newer formats refused with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finetune.ml.artifact_format import (
    CENTROIDS_FILE, FORMAT_VERSION, NO_INTENT, OodCheck, Serving, read_serving, write_serving,
)
from finetune.ml.errors import ArtifactFormatError

LABELS = ["billing", "bugs", NO_INTENT]


def v2_serving() -> Serving:
    centroids = np.eye(3, 4, dtype=np.float32)
    return Serving(
        format=FORMAT_VERSION, max_length=64, temperature=1.5, triage_threshold=0.4, labels=LABELS,
        no_intent_label=NO_INTENT, ood=OodCheck("centroid_cosine", 0.31, 0.95, centroids),
        languages={"counts": {"en": 90, "de": 3}, "supported": ["en"], "min_confidence": 0.9},
    )


def test_the_no_intent_label_sorts_after_any_team_slug_and_is_never_one():
    slugs = ["zz", "Z9", "zebra-team", "z_z", "999"]
    assert sorted(slugs + [NO_INTENT])[-1] == NO_INTENT
    assert not all(c.isalnum() or c in "-_" for c in NO_INTENT)


def test_format_2_round_trips_with_its_centroids(tmp_path):
    write_serving(tmp_path, v2_serving())
    assert json.loads((tmp_path / "labels.json").read_text()) == LABELS
    assert json.loads((tmp_path / "serving.json").read_text())["ood"]["file"] == CENTROIDS_FILE
    back = read_serving(tmp_path)
    assert back == v2_serving() and back.format == 2 and back.teams == ["billing", "bugs"]
    assert np.array_equal(back.ood.centroids, np.eye(3, 4))


def test_format_1_reads_without_no_intent_ood_or_languages(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps(["billing", "bugs"]))
    body = {"format": 1, "max_length": 64, "temperature": 0.5, "triage_threshold": 0.6, "labels": ["billing", "bugs"]}
    (tmp_path / "serving.json").write_text(json.dumps(body))
    serving = read_serving(tmp_path)
    assert (serving.format, serving.temperature, serving.triage_threshold) == (1, 0.5, 0.6)
    assert (serving.no_intent_label, serving.ood, serving.languages) == (None, None, None)
    assert serving.teams == ["billing", "bugs"]


def test_a_newer_format_is_refused_naming_both_versions(tmp_path):
    write_serving(tmp_path, v2_serving())
    body = json.loads((tmp_path / "serving.json").read_text())
    (tmp_path / "serving.json").write_text(json.dumps({**body, "format": FORMAT_VERSION + 1}))
    with pytest.raises(ArtifactFormatError, match=r"format 3, newer than this release reads \(1\.\.2\)"):
        read_serving(tmp_path)


@pytest.mark.parametrize("format_value", [None, 0, "2"])
def test_a_missing_or_bad_format_is_refused(tmp_path, format_value):
    write_serving(tmp_path, v2_serving())
    body = json.loads((tmp_path / "serving.json").read_text())
    (tmp_path / "serving.json").write_text(json.dumps({**body, "format": format_value}))
    with pytest.raises(ArtifactFormatError, match="expected 1 or 2"):
        read_serving(tmp_path)


def test_missing_centroids_or_unsorted_labels_are_refused(tmp_path):
    write_serving(tmp_path, v2_serving())
    (tmp_path / CENTROIDS_FILE).unlink()
    with pytest.raises(ArtifactFormatError, match="ood block"):
        read_serving(tmp_path)
    write_serving(tmp_path, v2_serving())
    (tmp_path / "labels.json").write_text(json.dumps(list(reversed(LABELS))))
    with pytest.raises(ArtifactFormatError, match="unsorted"):
        read_serving(tmp_path)


def test_a_max_logit_check_round_trips_without_an_array(tmp_path):
    serving = Serving(FORMAT_VERSION, 64, 1.0, 0.5, LABELS, NO_INTENT, OodCheck("max_logit", 4.2, 0.95), None, 0.75)
    write_serving(tmp_path, serving)
    assert not (tmp_path / CENTROIDS_FILE).exists()
    assert read_serving(tmp_path) == serving
