"""The mean-pooled classifier: padding does not change a text's logits; students share the teacher's parts."""

from __future__ import annotations

import pytest
import torch

from finetune.ml.model import MeanPooledClassifier


def test_padding_is_left_out_of_the_mean(tiny_base_model):
    model = MeanPooledClassifier.from_pretrained(str(tiny_base_model), 4, seed=0).eval()
    short = torch.tensor([[2, 10, 11, 3]])
    padded = torch.tensor([[2, 10, 11, 3, 0, 0, 0]])
    with torch.no_grad():
        alone = model(short, torch.ones_like(short))
        in_batch = model(padded, (padded != 0).long())
    assert alone.shape == (1, 4)
    assert torch.allclose(alone, in_batch, atol=1e-5)


def test_same_seed_same_head_and_student_keeps_the_first_layers(tiny_base_model):
    a = MeanPooledClassifier.from_pretrained(str(tiny_base_model), 3, seed=5)
    b = MeanPooledClassifier.from_pretrained(str(tiny_base_model), 3, seed=5)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    student = a.truncated(1)
    assert (student.num_layers, a.num_layers, student.encoder.config.num_hidden_layers) == (1, 2, 1)
    assert torch.equal(student.classifier.weight, a.classifier.weight)
    first = dict(a.encoder.encoder.layer[0].named_parameters())
    for name, param in student.encoder.encoder.layer[0].named_parameters():
        assert torch.equal(param, first[name])
    with torch.no_grad():  # a copy: training the student leaves the teacher alone
        student.classifier.weight.add_(1.0)
    assert not torch.equal(student.classifier.weight, a.classifier.weight)
    with pytest.raises(ValueError, match="1..2 layers"):
        a.truncated(3)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_student_trains_every_layer_and_frozen_embeddings_stay(tiny_base_model, method):
    """A student of a merged LoRA teacher still trains its layers; frozen word vectors never move."""
    from transformers import AutoTokenizer

    from finetune.ml.data import encode
    from finetune.ml.distil import train_student
    from finetune.ml.teacher import build_teacher
    from tests.ml_fixtures import synthetic_tickets, tiny_config

    config = tiny_config(tiny_base_model, method=method, student_freeze_embeddings=True, distil_epochs=2)
    labels = ["billing", "bugs"]
    teacher = build_teacher(config, labels)
    if method == "lora":
        teacher = teacher.merge_and_unload()
    teacher.eval()
    assert isinstance(teacher, MeanPooledClassifier)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base_model))
    rows = synthetic_tickets(labels, per_label=8)
    ids = encode(tokenizer, [text for text, _ in rows], 32)
    gold = [labels.index(label) for _, label in rows]
    student, _ = train_student(
        config,
        teacher,
        ids=ids,
        teacher_logits=torch.randn(len(ids), 2).numpy(),
        gold=gold,
        val_ids=[],
        val_y=[],
        pad_id=tokenizer.pad_token_id,
        on_step=lambda fraction, message: None,
    )
    embeddings = student.encoder.get_input_embeddings().weight
    assert torch.equal(embeddings, teacher.encoder.get_input_embeddings().weight)
    assert not embeddings.requires_grad
    moved = [
        name
        for name, param in student.encoder.encoder.layer[0].named_parameters()
        if not torch.equal(param, dict(teacher.encoder.encoder.layer[0].named_parameters())[name])
    ]
    assert moved, "the student's first layer did not train"


def test_student_word_embeddings_train_as_sparse_rows(tiny_base_model):
    """Unfrozen, only the rows of tokens the student saw move; it comes back a plain (dense) module."""
    from transformers import AutoTokenizer

    from finetune.ml.data import encode
    from finetune.ml.distil import train_student
    from finetune.ml.teacher import build_teacher
    from tests.ml_fixtures import synthetic_tickets, tiny_config

    config = tiny_config(tiny_base_model, student_freeze_embeddings=False, distil_epochs=2)
    labels = ["billing", "bugs"]
    teacher = build_teacher(config, labels).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base_model))
    rows = synthetic_tickets(labels, per_label=8)
    ids = encode(tokenizer, [text for text, _ in rows], 32)
    student, _ = train_student(
        config,
        teacher,
        ids=ids,
        teacher_logits=torch.randn(len(ids), 2).numpy(),
        gold=[labels.index(label) for _, label in rows],
        val_ids=[],
        val_y=[],
        pad_id=tokenizer.pad_token_id,
        on_step=lambda fraction, message: None,
    )
    table = student.encoder.get_input_embeddings()
    assert not table.sparse and table.weight.requires_grad
    before = teacher.encoder.get_input_embeddings().weight
    moved = {int(i) for i in torch.nonzero((table.weight != before).any(dim=1)).flatten()}
    seen = {token for text in ids for token in text}
    assert moved and moved <= seen


def test_clip_gradients_treats_sparse_rows_like_dense_ones():
    from finetune.ml.training import clip_gradients

    torch.manual_seed(0)
    rows = torch.tensor([[0, 3, 0]])  # row 0 twice, as [CLS] is in every batch: summed, not counted twice
    values = torch.randn(3, 4) * 5
    dense_table, sparse_table = torch.nn.Parameter(torch.zeros(5, 4)), torch.nn.Parameter(torch.zeros(5, 4))
    dense_table.grad = torch.sparse_coo_tensor(rows, values, (5, 4), check_invariants=True).to_dense()
    sparse_table.grad = torch.sparse_coo_tensor(rows, values, (5, 4), check_invariants=True)
    weight_a, weight_b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    weight_a.grad, weight_b.grad = torch.full((3,), 4.0), torch.full((3,), 4.0)
    torch.nn.utils.clip_grad_norm_([dense_table, weight_a], 1.0)
    clip_gradients([sparse_table, weight_b], 1.0)
    assert sparse_table.grad.is_sparse
    assert torch.allclose(sparse_table.grad.to_dense(), dense_table.grad, atol=1e-6)
    assert torch.allclose(weight_b.grad, weight_a.grad, atol=1e-6)
    norm = torch.linalg.vector_norm(torch.cat([dense_table.grad.flatten(), weight_a.grad]))
    assert norm == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("labels", [["billing", "bugs"], ["accounts", "billing", "bugs", "sales"]])
def test_probe_head_separates_teams_before_any_fine_tuning(tiny_base_model, labels):
    """The linear-probe head already routes the training texts; a team with no texts is never chosen."""
    from transformers import AutoTokenizer

    from finetune.ml.data import encode, predict_logits
    from finetune.ml.teacher import probe_head
    from tests.ml_fixtures import synthetic_tickets

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base_model))
    rows = synthetic_tickets(labels, per_label=16)
    ids = encode(tokenizer, [text for text, _ in rows], 32)
    y = [labels.index(label) for _, label in rows]
    # One output more than there are teams with texts: "unseen" has no training text at all.
    model = MeanPooledClassifier.from_pretrained(str(tiny_base_model), len(labels) + 1, seed=0)
    random_accuracy = (predict_logits(model, ids, tokenizer.pad_token_id).argmax(1) == y).mean()
    probe_head(model, ids, y, tokenizer.pad_token_id, balanced=True)
    predicted = predict_logits(model, ids, tokenizer.pad_token_id).argmax(1)
    assert (predicted == y).mean() >= 0.9 > random_accuracy
    assert len(labels) not in set(predicted.tolist())


def test_teacher_ensemble_is_the_mean_of_its_members(tiny_base_model):
    """Members trained from seed, seed+1: the ensemble answers their mean; its student is member one's."""
    from transformers import AutoTokenizer

    from finetune.ml.data import encode, predict_logits
    from finetune.ml.model import TeacherEnsemble
    from finetune.ml.teacher import train_teacher
    from tests.ml_fixtures import synthetic_tickets, tiny_config

    labels = ["billing", "bugs"]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base_model))
    rows = synthetic_tickets(labels, per_label=8)
    ids = encode(tokenizer, [text for text, _ in rows], 32)
    y = [labels.index(label) for _, label in rows]
    progress = []
    teacher, history = train_teacher(
        tiny_config(tiny_base_model, teachers=2, epochs=2),
        labels,
        train_ids=ids,
        train_y=y,
        val_ids=ids,
        val_y=y,
        pad_id=tokenizer.pad_token_id,
        on_step=lambda fraction, message: progress.append((fraction, message)),
    )
    assert isinstance(teacher, TeacherEnsemble) and len(history["members"]) == 2
    first, second = teacher.members
    assert not torch.equal(first.classifier.weight, second.classifier.weight)  # different seeds
    mean = (
        predict_logits(first, ids, tokenizer.pad_token_id) + predict_logits(second, ids, tokenizer.pad_token_id)
    ) / 2
    assert torch.allclose(
        torch.from_numpy(predict_logits(teacher, ids, tokenizer.pad_token_id)), torch.from_numpy(mean), atol=1e-5
    )
    fractions = [fraction for fraction, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert progress[0][1].startswith("teacher 1/2") and progress[-1][1].startswith("teacher 2/2")
    student = teacher.truncated(1)
    assert torch.equal(student.classifier.weight, first.classifier.weight)
