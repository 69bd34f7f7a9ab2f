from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import medslim.objectives.distill as distill
from medslim.kinds import MULTI_LABEL
from medslim.objectives.data import load_dataset
from medslim.objectives.distill import (
    Distiller,
    TeacherSignal,
    evaluate_student,
    kd_loss,
    teacher_train_logits,
)
from medslim.objectives.evaluate import Budget
from medslim.objectives.split import Split
from medslim.objectives.training import Recipe, predict_logits, train
from medslim.spaces.blueprints import blueprint_from_spec
from medslim.spaces.families import build_model
from medslim.spaces.specs import MLPSpec, ResNetSpec
from medslim.spaces.students import DistillSettings, feature_stages

TEACHER = MLPSpec(hidden=(16, 8))


@pytest.fixture(scope="module")
def data():
    return load_dataset("breast-cancer", seed=0)


@pytest.fixture(scope="module")
def teacher(data):
    torch.manual_seed(0)
    model = build_model(TEACHER, data.input_shape, data.n_outputs)
    return train(model, data.train, data.task, Recipe(epochs=5, batch_size=64))


def test_kd_loss_matches_a_hand_computation() -> None:
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([0, 1])
    settings = DistillSettings(temperature=2.0, alpha=0.25)

    def softmax(row: list[float]) -> list[float]:
        exps = [math.exp(v / 2.0) for v in row]
        return [e / sum(exps) for e in exps]

    hard = (
        -math.log(math.exp(1) / (math.exp(1) + 1)) - math.log(math.exp(2) / (1 + math.exp(2)))
    ) / 2
    kl = 0.0
    for s, t in zip(student.tolist(), teacher.tolist(), strict=True):
        p, q = softmax(t), softmax(s)
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)) / 2
    expected = 0.75 * hard + 0.25 * 4.0 * kl
    got = kd_loss(student, teacher, targets, "binary-class", settings)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_kd_loss_is_cross_entropy_when_the_soft_weight_is_zero() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 3), torch.randn(8, 3)
    targets = torch.randint(0, 3, (8,))
    got = kd_loss(student, teacher, targets, "multi-class", DistillSettings(alpha=0.0))
    assert torch.equal(got, F.cross_entropy(student, targets))


def test_multi_label_soft_loss_is_a_bernoulli_kl() -> None:
    student = torch.tensor([[0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0]])
    only_soft = DistillSettings(temperature=1.0, alpha=1.0)
    assert kd_loss(student, student, targets, MULTI_LABEL, only_soft).item() == pytest.approx(0.0)
    teacher = torch.tensor([[0.0, 0.0]])  # p = 0.5 both; q = 0.5, sigmoid(1)
    q = 1 / (1 + math.exp(-1))
    second = 0.5 * math.log(0.5 / q) + 0.5 * math.log(0.5 / (1 - q))
    got = kd_loss(student, teacher, targets, MULTI_LABEL, only_soft).item()
    assert got == pytest.approx((0.0 + second) / 2, rel=1e-6)


def test_cached_teacher_logits_equal_fresh_ones(
    data, teacher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = predict_logits(teacher, data.train)
    first = teacher_train_logits(teacher, data, tmp_path)
    assert torch.equal(first, fresh)
    (file,) = tmp_path.glob("logits-*.pt")
    distill._LOGITS.clear()  # a new process: only the disk cache is left

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran although its logits were cached")

    monkeypatch.setattr(distill, "predict_logits", no_teacher)
    assert torch.equal(teacher_train_logits(teacher, data, tmp_path), fresh)
    file.unlink()  # now only the memory cache is left
    assert torch.equal(teacher_train_logits(teacher, data, tmp_path), fresh)
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        other.head.bias.add_(1.0)
    assert distill.logits_key(other, data) != distill.logits_key(teacher, data)


def _signal(teacher, spec, split: Split) -> TeacherSignal:
    shape = tuple(split.batch(slice(0, 1)).shape[1:])
    stages = feature_stages(teacher, blueprint_from_spec(spec, shape, 2))
    return TeacherSignal(teacher, stages, predict_logits(teacher, split))


def test_distillation_without_soft_weight_trains_like_plain_training(data, teacher) -> None:
    signal = _signal(teacher, TEACHER, data.train)
    recipe = Recipe(epochs=2, batch_size=64)
    torch.manual_seed(1)
    plain = build_model(MLPSpec(hidden=(8,)), data.input_shape, data.n_outputs)
    distilled = copy.deepcopy(plain)
    torch.manual_seed(2)  # the same dropout draws for both
    train(plain, data.train, data.task, recipe)
    loss = Distiller(signal, DistillSettings(alpha=0.0), data.task, augment=False)
    torch.manual_seed(2)
    train(distilled, data.train, data.task, recipe, loss=loss)
    for a, b in zip(plain.state_dict().values(), distilled.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_student_with_feature_loss_trains_adapters_and_leaves_no_hooks(data, teacher) -> None:
    signal = _signal(teacher, TEACHER, data.train)
    settings = DistillSettings(temperature=3.0, alpha=0.7, feature_weight=1.0)
    recipe = Recipe(epochs=20, batch_size=64)
    student_blueprint = blueprint_from_spec(MLPSpec(hidden=(8, 4)), data.input_shape, 2)
    student, scores = evaluate_student(
        student_blueprint, settings, signal, data, recipe, Budget(latency_repeats=2)
    )
    assert scores.val_auc > 0.9
    for model in (student, teacher):
        assert all(not m._forward_hooks for m in model.modules())


def test_feature_adapters_match_channels_and_resolution() -> None:
    torch.manual_seed(0)
    shape = (1, 16, 16)
    spec = ResNetSpec(widths=(8, 16, 32), blocks=(1, 1, 1))
    teacher = build_model(spec, shape, 2).eval()
    x = torch.randn(8, *shape)
    signal = _signal(teacher, spec, Split(x, torch.zeros(8)))
    student_spec = ResNetSpec(widths=(4, 8), blocks=(1, 1))
    student = build_model(student_spec, shape, 2)
    loss = Distiller(signal, DistillSettings(feature_weight=1.0), "binary-class", augment=False)
    loss.match_features(
        student, feature_stages(student, blueprint_from_spec(student_spec, shape, 2)), x[:2]
    )
    assert loss.online  # the feature loss needs the teacher on each batch
    assert [(a.in_channels, a.out_channels) for a in loss.adapters] == [(4, 16), (8, 32)]
    value = loss(student(x), torch.zeros(8, dtype=torch.long), x, torch.arange(8))
    value.backward()
    assert all(a.weight.grad is not None for a in loss.adapters)
    loss.remove_hooks()
