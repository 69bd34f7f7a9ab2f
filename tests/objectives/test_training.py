from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from medslim.objectives.recipes import default_teacher_epochs
from medslim.objectives.split import Split
from medslim.objectives.training import (
    Recipe,
    TrainingDiverged,
    predict_scores,
    recalibrate_batchnorm,
    task_loss,
    train,
)


def _blobs(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=generator)
    x = torch.randn(n, 4, generator=generator) + y[:, None].float() * 2.0
    return x, y


def test_training_lowers_the_loss_and_is_deterministic() -> None:
    x, y = _blobs()

    def run() -> tuple[float, float]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        before = task_loss(model(x), y, "binary-class").mean().item()
        train(
            model, Split(x, y), "binary-class", Recipe(epochs=20, batch_size=32, lr=1e-2), seed=1
        )
        return before, task_loss(model(x), y, "binary-class").mean().item()

    before, after = run()
    assert after < 0.5 * before
    assert run() == (before, after)


def test_diverging_loss_raises() -> None:
    x, y = _blobs()
    x[0, 0] = float("nan")
    model = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(TrainingDiverged, match="nan"):
        train(model, Split(x, y), "binary-class", Recipe(epochs=1, batch_size=len(x)))


def test_batchnorm_recalibration_matches_the_data_statistics() -> None:
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.BatchNorm1d(3))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3))
    x = torch.randn(512, 3) * 3 + 5
    recalibrate_batchnorm(model, Split(x, torch.zeros(len(x))), batches=4, batch_size=128)
    bn = model[1]
    assert torch.allclose(bn.running_mean, x.mean(0), atol=1e-4)
    assert torch.allclose(bn.running_var, x.var(0), rtol=1e-2)
    assert not model.training


def test_scores_are_probabilities_per_task() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    x = torch.randn(5, 4)
    softmax = predict_scores(model, Split(x, torch.zeros(5)), "multi-class")
    assert softmax.shape == (5, 3) and abs(softmax.sum(1) - 1).max() < 1e-5
    sigmoid = predict_scores(model, Split(x, torch.zeros(5)), "multi-label, binary-class")
    assert ((sigmoid > 0) & (sigmoid < 1)).all() and abs(sigmoid.sum(1) - 1).max() > 1e-3


def _trained_weights(recipe: Recipe) -> dict[str, torch.Tensor]:
    x, y = _blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    train(model, Split(x, y), "binary-class", recipe, seed=1)
    return model.state_dict()


def test_a_moving_average_without_memory_is_the_last_weights_and_one_with_memory_smooths() -> None:
    recipe = Recipe(epochs=5, batch_size=32, lr=1e-2)
    plain = _trained_weights(recipe)
    last = _trained_weights(replace(recipe, ema_decay=0.0))
    smooth = _trained_weights(replace(recipe, ema_decay=0.9))
    assert all(torch.allclose(plain[k], last[k]) for k in plain)
    assert not torch.allclose(plain["0.weight"], smooth["0.weight"])


def test_on_epoch_sees_every_epoch_in_eval_mode() -> None:
    x, y = _blobs()
    seen: list[tuple[int, bool]] = []
    model = nn.Sequential(nn.Linear(4, 2))
    recipe = Recipe(epochs=3, batch_size=32, ema_decay=0.5)
    train(
        model,
        Split(x, y),
        "binary-class",
        recipe,
        on_epoch=lambda e, m: seen.append((e, m.training)),
    )
    assert seen == [(0, False), (1, False), (2, False)]


def test_label_smoothing_raises_the_loss_of_confident_right_answers() -> None:
    logits, targets = torch.tensor([[8.0, -8.0]]), torch.tensor([0])
    assert task_loss(logits, targets, "binary-class", 0.1) > task_loss(
        logits, targets, "binary-class"
    )


@pytest.mark.parametrize(
    ("kind", "n_train", "epochs"),
    [("tabular", 455, 60), ("image", 546, 75), ("image", 4708, 10), ("image", 50, 100)],
)
def test_image_teachers_get_a_budget_of_steps(kind: str, n_train: int, epochs: int) -> None:
    assert default_teacher_epochs(kind, n_train, 128) == epochs  # type: ignore[arg-type]
