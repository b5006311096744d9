"""Router: loading, prediction, truncation, triage thresholds, no-model, refusal of broken artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chatbot.core.errors import NoModelError, SwitchboardError
from routing.loaded_model import LoadedModel
from routing.models import Team
from tests.ml_fixtures import FILLER
from tests.routing.conftest import LABELS_V1

pytestmark = pytest.mark.django_db
# No topic words: the tiny model is unsure of these (its topic texts score 1.0 in float64).
# In-topic texts for the tiny model: routed or low-confidence on any CPU, so the thresholds decide.
UNSURE_TEXTS = [
    "my invoice payment was charged twice",
    "why can i not login to my account today",
    "the screen shows an error",
]


def test_predict_returns_a_prediction_per_text(router, teams, install_version):
    """Each text gets its team, the team's name, calibrated scores over the teams (the reserved
    no-intent label holds the rest of the probability) and the version."""
    version = install_version("v1", state="active")
    predictions = router.predict(["refund my invoice charge please", "error crash bug broken screen"])
    assert len(predictions) == 2 and all(p.reason == "routed" for p in predictions)
    for prediction in predictions:
        assert set(prediction.scores) == set(LABELS_V1)
        assert prediction.team == max(prediction.scores, key=prediction.scores.get)
        assert prediction.team_name == Team.objects.get(slug=prediction.team).name
        assert prediction.confidence == pytest.approx(prediction.scores[prediction.team])
        assert 0.0 < sum(prediction.scores.values()) <= 1.0 + 1e-9
        assert prediction.model_version == str(version.pk)


def test_probabilities_are_softmax_of_logits_over_temperature(teams, install_version, store):
    """Served probabilities are softmax(logits / T) with the T the pipeline fitted into serving.json."""
    version = install_version("v1", state="active")
    temperature = json.loads((store / version.artifact_dir / "serving.json").read_text())["temperature"]
    assert temperature != pytest.approx(1.0)  # else dividing by T would go unnoticed
    model = LoadedModel.from_version(version)
    assert model.temperature == temperature
    encoding = model.tokenizer.encode("card refund")
    feed = {"input_ids": np.array([encoding.ids]), "attention_mask": np.array([encoding.attention_mask])}
    logits = model.session.run(["logits"], feed)[0][0] / temperature
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert model.probabilities(["card refund"])[0] == pytest.approx(expected, rel=1e-5)


def test_batch_padding_does_not_change_a_texts_scores(router, teams, install_version):
    """A short text scores the same alone and padded beside a long one (up to int8 activation rounding)."""
    install_version("v1", state="active")
    alone = router.predict(["card"])[0].scores
    padded = router.predict(["card", "why can i not reset my password after the update today"])[0].scores
    # Dynamic int8 quantizes activations per batch, so neighbours shift scores by ~1e-4, never more.
    assert padded == pytest.approx(alone, abs=1e-3)


def test_long_text_is_read_as_its_head_and_tail(router, teams, install_version):
    """A text far longer than max_length is answered as its first 47 and last 15 tokens are (the
    window of finetune.ml.window: 3/4 head, the rest tail, [CLS] and [SEP] included)."""
    install_version("v1", state="active")
    words = (FILLER * 20)[:700]  # ~2,800 characters, under MAX_TEXT_CHARS
    long_text = " ".join(words)
    window = " ".join(words[:47] + words[-15:])  # each word is one token of the tiny vocabulary
    assert router.predict([long_text])[0].scores == pytest.approx(router.predict([window])[0].scores)
    assert router.predict([long_text])[0].scores != pytest.approx(router.predict([" ".join(words[:62])])[0].scores)


def test_empty_text_is_refused(router, teams, install_version):
    """Whitespace-only text raises empty_text; in a batch the message names the index."""
    install_version("v1", state="active")
    with pytest.raises(SwitchboardError) as single:
        router.predict(["  \n\t "])
    with pytest.raises(SwitchboardError) as batch:
        router.predict(["card", ""])
    assert single.value.code == "empty_text"
    assert batch.value.code == "empty_text" and batch.value.message.startswith("texts[1]")


def test_text_over_the_character_cap_is_refused(router, teams, install_version, settings):
    """Only text above MAX_TEXT_CHARS is refused; below it anything is truncated instead."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "MAX_TEXT_CHARS": 100}
    install_version("v1", state="active")
    assert router.predict(["card " * 20])
    with pytest.raises(SwitchboardError) as error:
        router.predict(["card " * 30])
    assert error.value.code == "text_too_long"


@pytest.mark.parametrize(
    ("global_threshold", "team_threshold", "proposed", "expect_triage"),
    [
        (0.0, None, None, False),  # global applies
        (1.0, None, None, True),
        (0.0, 1.0, None, True),  # the team's own threshold wins over the global
        (1.0, 0.0, None, False),
        (0.0, None, 1.0, True),  # the model's proposal wins over the global
        (1.0, 0.0, 1.0, False),  # the team wins over the model's proposal
    ],
)
def test_triage_threshold_precedence(
    router, teams, install_version, settings, global_threshold, team_threshold, proposed, expect_triage
):
    """triage = confidence < (team threshold, else model's proposed threshold, else global)."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "TRIAGE_THRESHOLD": global_threshold}
    Team.objects.update(triage_threshold=team_threshold)
    install_version("v1", state="active", proposed_triage_threshold=proposed)
    # Only answers the thresholds decide (not no-intent or out-of-scope ones) say anything here.
    predictions = [p for p in router.predict(UNSURE_TEXTS) if p.reason in ("routed", "low_confidence")]
    assert predictions and all(p.confidence < 1.0 for p in predictions)  # else 1.0 could not triage them
    assert [p.triage for p in predictions] == [expect_triage] * len(predictions)


def test_inactive_team_always_goes_to_triage(router, teams, install_version, settings):
    """A confident answer for a deactivated team (no inbox) is sent to triage instead."""
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "TRIAGE_THRESHOLD": 0.0}
    install_version("v1", state="active", proposed_triage_threshold=0.0)
    before = router.predict(["refund invoice charge payment"])[0]
    assert before.reason == "routed"
    Team.objects.filter(slug=before.team).update(active=False)
    router._checked_at = float("-inf")
    after = router.predict(["refund invoice charge payment"])[0]
    assert (before.triage, after.team, after.triage) == (False, before.team, True)


def test_no_active_model_raises_no_model(router, teams, install_version):
    """With only a candidate registered, predict raises NoModelError (503, code no_model)."""
    install_version("v1", state="candidate")
    with pytest.raises(NoModelError) as error:
        router.predict(["card"])
    assert error.value.http_status == 503 and error.value.code == "no_model"
    assert "manage.py train" in error.value.message
    assert router.health()["status"] == "no_model"


def test_tampered_version_is_refused_and_previous_keeps_serving(router, teams, install_version, store):
    """A promoted version whose model.onnx changed is refused; the old one serves; health is degraded."""
    v1 = install_version("v1", state="active")
    assert router.predict(["card"])[0].model_version == str(v1.pk)
    v2 = install_version("v2")
    with open(store / v2.artifact_dir / "model.onnx", "ab") as f:
        f.write(b"tampered")
    v1.state = "retired"
    v1.save()
    v2.state = "active"
    v2.save()
    assert router.predict(["card"])[0].model_version == str(v1.pk)
    health = router.health()
    assert health["status"] == "degraded"
    assert (health["serving_version"], health["active_version"]) == (str(v1.pk), str(v2.pk))
    assert "model.onnx" in health["problem"]


def test_broken_version_is_not_retried_on_every_request(router, teams, install_version, store, monkeypatch):
    """A refused (id, sha256) is remembered: later requests do not re-verify it."""
    version = install_version("v1", state="active")
    (store / version.artifact_dir / "labels.json").write_text(json.dumps(["x"]))
    calls = []
    original = LoadedModel.from_version.__func__
    monkeypatch.setattr(LoadedModel, "from_version", classmethod(lambda cls, v: calls.append(v.pk) or original(cls, v)))
    for _ in range(3):
        with pytest.raises(NoModelError) as error:
            router.predict(["card"])
    assert calls == [version.pk]
    assert "cannot be served" in error.value.message and "labels.json" in error.value.message


def test_registered_sha_must_match_the_checksums_file(router, teams, install_version):
    """A checksums file that differs from ModelVersion.sha256 is refused even if it is self-consistent."""
    install_version("v1", state="active", sha256="0" * 64)
    with pytest.raises(NoModelError):
        router.predict(["card"])
    assert "checksums" in router.health()["problem"]
