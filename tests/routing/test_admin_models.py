"""The ModelVersion admin: list, promote / roll back actions, evaluation page and confusion PNG."""

from __future__ import annotations

import pytest
from django.urls import reverse

from finetune.models import TrainingRun
from routing.models import ModelVersion
from routing.registry import model_version_register
from tests.routing.test_registry import pipeline_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(settings, tmp_path):
    """Two real tiny versions: v_old active (promoted earlier), v_new a candidate."""
    store = tmp_path / "store"
    settings.SWITCHBOARD = {**settings.SWITCHBOARD, "MODEL_STORE": str(store), "ROUTER_RELOAD_SECONDS": 0}
    made = []
    for name in (".tmp-run-1-a", ".tmp-run-2-b"):
        made.append(model_version_register(run=TrainingRun.objects.create(), result=pipeline_result(store, name)))
    from routing.services import model_version_promote

    model_version_promote(version=made[0], user=None)
    return [ModelVersion.objects.get(pk=v.pk) for v in made]


def test_list_shows_accuracies_and_evaluation_links(admin_client, versions):
    """The list shows int8 accuracy, macro-F1, baseline accuracy and links each evaluation."""
    page = admin_client.get(reverse("admin:routing_modelversion_changelist")).content.decode()
    old = versions[0]
    assert f"{100 * old.test_accuracy:.1f}%" in page
    assert f"{100 * old.metrics['baseline']['accuracy']:.1f}%" in page
    assert reverse("admin:routing_modelversion_evaluation", args=[old.pk]) in page


def test_promote_and_roll_back_actions(admin_client, versions):
    """Promote makes the candidate active; "Roll back to this version" brings the old one back."""
    old, new = versions
    url = reverse("admin:routing_modelversion_changelist")
    admin_client.post(url, {"action": "promote", "_selected_action": [new.pk]})
    assert ModelVersion.objects.get(state=ModelVersion.State.ACTIVE).pk == new.pk
    admin_client.post(url, {"action": "roll_back_to", "_selected_action": [old.pk]})
    assert ModelVersion.objects.get(state=ModelVersion.State.ACTIVE).pk == old.pk


def test_promote_action_needs_exactly_one(admin_client, versions):
    """Selecting two versions promotes neither and says why."""
    response = admin_client.post(
        reverse("admin:routing_modelversion_changelist"),
        {"action": "promote", "_selected_action": [v.pk for v in versions]},
        follow=True,
    )
    assert "Select exactly one model version." in response.content.decode()
    assert ModelVersion.objects.get(state=ModelVersion.State.ACTIVE).pk == versions[0].pk


def test_evaluation_page_renders_metrics_card_and_picture(admin_client, versions):
    """Every model's row, per-team scores, calibration, verdict, card and the confusion <img>."""
    version = versions[1]
    page = admin_client.get(reverse("admin:routing_modelversion_evaluation", args=[version.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for text in (
        "TF-IDF + logistic regression",
        "teacher (torch)",
        "student (torch)",
        "student int8 ONNX",
        "served model",
        "billing",
        "ECE before / after",
        "p50",
        "model.onnx size",
        "Limitations",
    ):
        assert text in html
    assert version.metrics["verdict"].split(";")[0] in html
    assert reverse("admin:routing_modelversion_confusion", args=[version.pk]) in html


def test_confusion_matrix_is_a_png(admin_client, versions):
    """The confusion view serves a real PNG image; an unknown model name is a 404."""
    url = reverse("admin:routing_modelversion_confusion", args=[versions[1].pk])
    response = admin_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert admin_client.get(url + "?model=teacher")["Content-Type"] == "image/png"
    assert admin_client.get(url + "?model=nope").status_code == 404


def test_versions_are_not_added_or_edited_by_hand(admin_client, versions):
    """No add page; a version's page is read-only and a POST to it is refused."""
    assert admin_client.get(reverse("admin:routing_modelversion_add")).status_code == 403
    change = reverse("admin:routing_modelversion_change", args=[versions[1].pk])
    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"state": "active"}).status_code == 403
    assert ModelVersion.objects.get(pk=versions[1].pk).state == ModelVersion.State.CANDIDATE


def test_non_staff_cannot_see_evaluations(client, plain_user, versions):
    """Admin views send non-staff to the login page and render nothing."""
    client.force_login(plain_user)
    for name in ("admin:routing_modelversion_evaluation", "admin:routing_modelversion_confusion"):
        response = client.get(reverse(name, args=[versions[0].pk]))
        assert response.status_code == 302 and "/admin/login/" in response.url
