"""serving.json format 4 round trip (with a hybrid's TF-IDF files), formats 1 to 3 still read, newer ones refused."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from finetune.ml.artifact_format import (
    CENTROIDS_FILE,
    FORMAT_VERSION,
    NO_INTENT,
    TFIDF_ARRAYS_FILE,
    TFIDF_VOCABULARY_FILE,
    OodCheck,
    Serving,
    read_serving,
    write_serving,
)
from finetune.ml.baseline import fit_baseline
from finetune.ml.errors import ArtifactFormatError
from finetune.ml.tfidf import Hybrid, TfidfModel
from finetune.ml.window import TEXT_WINDOW_CHARS
from tests.ml_fixtures import synthetic_tickets

LABELS = ["billing", "bugs", NO_INTENT]


def v2_serving() -> Serving:
    centroids = np.eye(3, 4, dtype=np.float32)
    return Serving(
        format=FORMAT_VERSION,
        max_length=64,
        temperature=1.5,
        triage_threshold=0.4,
        labels=LABELS,
        no_intent_label=NO_INTENT,
        ood=OodCheck("centroid_cosine", 0.31, 0.95, centroids),
        languages={"counts": {"en": 90, "de": 3}, "supported": ["en"], "min_confidence": 0.9},
    )


def test_the_no_intent_label_sorts_after_any_team_slug_and_is_never_one():
    slugs = ["zz", "Z9", "zebra-team", "z_z", "999"]
    assert sorted(slugs + [NO_INTENT])[-1] == NO_INTENT
    assert not all(c.isalnum() or c in "-_" for c in NO_INTENT)


def test_the_current_format_round_trips_with_its_centroids(tmp_path):
    write_serving(tmp_path, v2_serving())
    assert json.loads((tmp_path / "labels.json").read_text()) == LABELS
    assert json.loads((tmp_path / "serving.json").read_text())["ood"]["file"] == CENTROIDS_FILE
    back = read_serving(tmp_path)
    assert back == v2_serving() and back.format == 4 and back.teams == ["billing", "bugs"] and back.hybrid is None
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
    with pytest.raises(ArtifactFormatError, match=r"format 5, newer than this release reads \(1\.\.4\)"):
        read_serving(tmp_path)


@pytest.mark.parametrize("format_value", [None, 0, "2"])
def test_a_missing_or_bad_format_is_refused(tmp_path, format_value):
    write_serving(tmp_path, v2_serving())
    body = json.loads((tmp_path / "serving.json").read_text())
    (tmp_path / "serving.json").write_text(json.dumps({**body, "format": format_value}))
    with pytest.raises(ArtifactFormatError, match="expected 1 to 4"):
        read_serving(tmp_path)


def test_the_message_body_flag_round_trips_and_older_formats_read_whole_texts(tmp_path):
    """Format 4 says whether the router reads each text's message body; format 3 never does."""
    write_serving(tmp_path, replace(v2_serving(), message_body=True))
    assert json.loads((tmp_path / "serving.json").read_text())["message_body"] is True
    assert read_serving(tmp_path).message_body is True
    body = json.loads((tmp_path / "serving.json").read_text())
    (tmp_path / "serving.json").write_text(json.dumps({**body, "format": 3}))
    assert read_serving(tmp_path).message_body is False
    (tmp_path / "serving.json").write_text(json.dumps({**body, "message_body": "yes"}))
    with pytest.raises(ArtifactFormatError, match="message_body must be true or false, got 'yes'"):
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


def hybrid_serving() -> Serving:
    rows = synthetic_tickets(["billing", "bugs"], per_label=10, seed=1)
    baseline = fit_baseline([t for t, _ in rows], [["billing", "bugs"].index(label) for _, label in rows])
    model = TfidfModel.from_sklearn(baseline, len(LABELS))
    return Serving(
        FORMAT_VERSION,
        64,
        1.2,
        0.5,
        LABELS,
        NO_INTENT,
        OodCheck("max_logit", 4.2, 0.95),
        None,
        0.75,
        Hybrid(1.7, model),
    )


def test_a_hybrid_round_trips_as_json_and_npz_and_scores_the_same(tmp_path):
    """The TF-IDF model is written without pickle and read back scoring exactly as before."""
    serving = hybrid_serving()
    write_serving(tmp_path, serving)
    assert json.loads((tmp_path / "serving.json").read_text())["hybrid"] == {
        "tfidf_weight": 1.7,
        "max_chars": TEXT_WINDOW_CHARS,
        "vocabulary": TFIDF_VOCABULARY_FILE,
        "arrays": TFIDF_ARRAYS_FILE,
    }
    with np.load(tmp_path / TFIDF_ARRAYS_FILE, allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)
    back = read_serving(tmp_path)
    assert back == serving and back.hybrid.weight == 1.7 and back.hybrid.model.max_chars == TEXT_WINDOW_CHARS
    texts = ["my invoice refund please", "the screen crash bug", "hello"]
    assert np.array_equal(back.hybrid.model.log_proba(texts), serving.hybrid.model.log_proba(texts))


def test_a_hybrid_block_without_max_chars_reads_the_whole_text(tmp_path):
    """An artifact written before the character window scores TF-IDF on whole texts, as it was checked."""
    write_serving(tmp_path, hybrid_serving())
    body = json.loads((tmp_path / "serving.json").read_text())
    del body["hybrid"]["max_chars"]
    (tmp_path / "serving.json").write_text(json.dumps(body))
    assert read_serving(tmp_path).hybrid.model.max_chars is None
    body["hybrid"]["max_chars"] = "2000"
    (tmp_path / "serving.json").write_text(json.dumps(body))
    with pytest.raises(ArtifactFormatError, match="max_chars"):
        read_serving(tmp_path)


def test_a_format_2_artifact_still_loads_as_the_student_alone(tmp_path):
    """An artifact written before the hybrid (format 2, no hybrid block) serves its student; a stray block is ignored."""
    write_serving(tmp_path, hybrid_serving())
    body = json.loads((tmp_path / "serving.json").read_text())
    (tmp_path / "serving.json").write_text(json.dumps({**body, "format": 2}))
    serving = read_serving(tmp_path)
    assert serving.format == 2 and serving.hybrid is None and serving.ood == OodCheck("max_logit", 4.2, 0.95)


def test_tfidf_files_that_disagree_are_refused_on_read(tmp_path):
    """A coefficient matrix of the wrong width, or a missing vocabulary, fails at load with the file named."""
    write_serving(tmp_path, hybrid_serving())
    with np.load(tmp_path / TFIDF_ARRAYS_FILE) as arrays:
        parts = {name: arrays[name] for name in arrays.files}
    np.savez(tmp_path / TFIDF_ARRAYS_FILE, **{**parts, "coef": parts["coef"][:-1]})
    with pytest.raises(ArtifactFormatError, match="the TF-IDF files disagree"):
        read_serving(tmp_path)
    (tmp_path / TFIDF_VOCABULARY_FILE).unlink()
    with pytest.raises(ArtifactFormatError, match="tfidf_vocabulary.json"):
        read_serving(tmp_path)
