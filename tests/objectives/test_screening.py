"""Screening: candidates pruned and recalibrated, scored by a proxy on training images; only
the best is fine-tuned."""

from __future__ import annotations

import torch
from torch import nn

from medslim.objectives.data import load_dataset
from medslim.objectives.evaluate import Budget, evaluate_candidates, screen_candidates
from medslim.objectives.metrics import count_params
from medslim.objectives.proxy import ProxySlice, best_index, fidelity, proxy_slice
from medslim.objectives.training import Recipe, train
from medslim.spaces.families import build_model
from medslim.spaces.sparsity import PruningPlan, prunable_units
from medslim.spaces.specs import MLPSpec


def _teacher():
    torch.manual_seed(0)
    data = load_dataset("breast-cancer", seed=0)
    teacher = build_model(MLPSpec(hidden=(32, 16)), data.input_shape, data.n_outputs)
    train(teacher, data.train, data.task, Recipe(epochs=10, batch_size=64))
    teacher.eval()
    units = list(prunable_units(teacher, data.train.batch(slice(0, 2)), "structured"))
    return data, teacher, units


def test_screening_fine_tunes_the_candidate_with_the_best_proxy() -> None:
    data, teacher, units = _teacher()
    plans = [PruningPlan(dict.fromkeys(units, r), "l1", "structured") for r in (0.8, 0.3, 0.6)]
    where = proxy_slice(data, teacher, seed=0)

    def params(model: nn.Module, _: ProxySlice) -> float:  # a fake proxy: the largest wins
        return float(count_params(model)[0])

    best, screening = screen_candidates(teacher, plans, data, Budget(), where, score=params)
    assert screening.chosen == 1 and len(screening.proxies) == 3
    assert screening.proxies[1] == max(screening.proxies) == count_params(best)[0]
    budget = Budget(finetune=Recipe(epochs=1, batch_size=64))
    model, scores, real = evaluate_candidates(teacher, plans, data, budget, where, seed=0)
    assert real.chosen == best_index(real.proxies)
    assert max(real.proxies) <= 0.0, "fidelity is −KL: the teacher itself scores 0"
    chosen = screen_candidates(teacher, [plans[real.chosen]], data, budget, where)[0]
    assert count_params(model) == count_params(chosen), "the chosen candidate was fine-tuned"
    assert 0.5 < scores.val_auc <= 1.0


def test_fidelity_is_zero_for_the_teacher_and_the_slice_is_training_images() -> None:
    data, teacher, _ = _teacher()
    where = proxy_slice(data, teacher, seed=0)
    assert fidelity(teacher, where) == 0.0
    assert where.rows == proxy_slice(data, teacher, seed=0).rows, "the slice is seeded"
    assert len(where.rows) == len(data.train) // 4 and max(where.rows) < len(data.train)
    assert torch.equal(where.images.y, data.train.y[list(where.rows)])
    noisy = build_model(MLPSpec(hidden=(32, 16)), data.input_shape, data.n_outputs).eval()
    assert fidelity(noisy, where) < fidelity(teacher, where)
