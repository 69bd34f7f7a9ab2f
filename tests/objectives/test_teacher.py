from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medslim.errors import UsageError
from medslim.objectives.data import load_dataset
from medslim.objectives.determinism import weights_fingerprint
from medslim.objectives.evaluate import split_scores
from medslim.objectives.teacher import (
    BestOnVal,
    SparsityTraining,
    obtain_teacher,
    teacher_cache_path,
    teacher_key,
)
from medslim.objectives.training import Recipe, train
from medslim.spaces.blueprints import blueprint_from_spec
from medslim.spaces.families import build_model
from medslim.spaces.specs import MLPSpec

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPEC = blueprint_from_spec(MLPSpec(hidden=(16,)), (30,), 2)
RECIPE = Recipe(epochs=20, batch_size=64)


def test_teacher_is_trained_once_then_loaded_from_the_cache(tmp_path: Path) -> None:
    data = load_dataset("breast-cancer", seed=0)
    device = torch.device("cpu")
    first, scores, trained = obtain_teacher(
        data, SPEC, RECIPE, seed=0, cache_dir=tmp_path, device=device
    )
    second, again, trained_again = obtain_teacher(
        data, SPEC, RECIPE, seed=0, cache_dir=tmp_path, device=device
    )
    assert trained and not trained_again
    assert scores == again and scores.val_auc > 0.9
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert len(list(tmp_path.glob("teacher-*.pt"))) == 1


def test_a_sparsity_trained_teacher_is_its_own_cached_variant(tmp_path: Path) -> None:
    data = load_dataset("breast-cancer", seed=0)
    device = torch.device("cpu")
    base, _, _ = obtain_teacher(data, SPEC, RECIPE, seed=0, cache_dir=tmp_path, device=device)
    sparse = SparsityTraining(1e-2)
    variant, scores, trained = obtain_teacher(
        data, SPEC, RECIPE, seed=0, cache_dir=tmp_path, device=device, sparsity=sparse
    )
    again, _, trained_again = obtain_teacher(
        data, SPEC, RECIPE, seed=0, cache_dir=tmp_path, device=device, sparsity=sparse
    )
    assert trained and not trained_again and scores.val_auc > 0.9
    assert weights_fingerprint(again) == weights_fingerprint(variant)
    assert weights_fingerprint(variant) != weights_fingerprint(base)
    path = teacher_cache_path(tmp_path, data, SPEC, RECIPE, 0, sparsity=sparse)
    assert path.is_file() and path != teacher_cache_path(tmp_path, data, SPEC, RECIPE, 0)
    assert len(list(tmp_path.glob("teacher-*.pt"))) == 2, "the base teacher is kept as it was"

    # The penalty empties the weakest channels: the smallest hidden-unit norms shrink.
    def weakest(model: torch.nn.Module) -> float:
        norms = model.state_dict()["body.0.weight"].norm(dim=1)
        return float(norms.sort().values[:4].mean())

    assert weakest(variant) < weakest(base)
    other = teacher_cache_path(tmp_path, data, SPEC, RECIPE, 0, sparsity=SparsityTraining(2e-2))
    assert other != path


def test_cache_key_changes_with_what_changes_the_teacher() -> None:
    data = load_dataset("breast-cancer", seed=0)
    key = teacher_key(data, SPEC, RECIPE, 0)
    assert key == teacher_key(load_dataset("breast-cancer", seed=0), SPEC, RECIPE, 0)
    assert key != teacher_key(data, SPEC, RECIPE, 1)
    assert key != teacher_key(data, SPEC, Recipe(epochs=21, batch_size=64), 0)
    assert key != teacher_key(
        data, blueprint_from_spec(MLPSpec(hidden=(17,)), (30,), 2), RECIPE, 0
    )
    assert key != teacher_key(data, SPEC, RECIPE, 0, pretrained=True)
    assert key != teacher_key(load_dataset("breast-cancer", seed=1), SPEC, RECIPE, 0)


def test_teacher_file_is_loaded_and_a_mismatch_is_explained(tmp_path: Path) -> None:
    data = load_dataset("breast-cancer", seed=0)
    model = SPEC.build()
    good = tmp_path / "good.pt"
    torch.save(model.state_dict(), good)
    loaded, _, trained = obtain_teacher(
        data,
        SPEC,
        RECIPE,
        seed=0,
        cache_dir=tmp_path,
        device=torch.device("cpu"),
        teacher_file=good,
    )
    assert not trained
    assert torch.equal(loaded.head.weight, model.head.weight)
    wrong = tmp_path / "wrong.pt"
    torch.save(build_model(MLPSpec(hidden=(8,)), data.input_shape, 2).state_dict(), wrong)
    pickled = tmp_path / "module.pt"
    torch.save(model, pickled)  # a whole pickled module is refused, never unpickled
    for bad, message in ((wrong, "does not fit"), (pickled, "pickled Python objects")):
        with pytest.raises(UsageError, match=message):
            obtain_teacher(
                data,
                SPEC,
                RECIPE,
                seed=0,
                cache_dir=tmp_path,
                device=torch.device("cpu"),
                teacher_file=bad,
            )


def test_a_trained_teacher_keeps_its_best_val_epoch(tmp_path: Path) -> None:
    data = load_dataset("breast-cancer", seed=0)
    seen: list[float] = []
    model = SPEC.build()
    best = BestOnVal(data)

    def record(epoch: int, m: torch.nn.Module) -> None:
        best(epoch, m)
        seen.append(best.auc)

    train(model, data.train, data.task, Recipe(epochs=15, batch_size=64, lr=5e-2), on_epoch=record)
    best.restore(model)
    assert split_scores(model, data.val, data.task)[0] == best.auc == max(seen)


# Trains a teacher in a fresh process after drawing from torch's global generator (as
# loading data or other work would), and prints its fingerprint and val scores.
_TRAIN_IN_A_PROCESS = """
import sys, json, torch
from pathlib import Path
from medslim.objectives.data import load_dataset
from medslim.objectives.determinism import weights_fingerprint
from medslim.objectives.teacher import obtain_teacher
from medslim.objectives.training import Recipe
from medslim.spaces.blueprints import blueprint_for
torch.rand(int(sys.argv[2]))
data = load_dataset(sys.argv[1], seed=0)
model_name = "mlp" if data.kind == "tabular" else "resnet8"
spec = blueprint_for(model_name, None, data.input_shape, data.n_outputs)
recipe = Recipe(epochs=int(sys.argv[3]), batch_size=64, augment=data.kind == "image")
model, scores, trained = obtain_teacher(
    data, spec, recipe, seed=0, cache_dir=Path(sys.argv[4]), device=torch.device("cpu")
)
assert trained
print(json.dumps([weights_fingerprint(model), scores.val_auc, scores.val_acc]))
"""


@pytest.mark.e2e
@pytest.mark.parametrize(
    "dataset, epochs",
    [("breast-cancer", "10"), (str(SHARED_DATA / "breastmnist.npz"), "1")],
    ids=["breast-cancer", "breastmnist"],
)
def test_a_teacher_trains_bit_identically_in_separate_processes(
    tmp_path: Path, dataset: str, epochs: str
) -> None:
    if dataset.endswith(".npz") and not Path(dataset).is_file():
        pytest.skip(f"{dataset} is not here")
    results = []
    for draws in ("0", "97"):  # each process has used the global generator differently
        done = subprocess.run(
            [sys.executable, "-c", _TRAIN_IN_A_PROCESS, dataset, draws, epochs, tmp_path / draws],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "2"},
        )
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout.splitlines()[-1]))
    (fingerprint, auc, acc), (again, auc2, acc2) = results
    assert fingerprint == again, "the same seed, data and recipe gave other weights"
    assert abs(auc - auc2) <= 1e-6 and abs(acc - acc2) <= 1e-6


def test_a_corrupt_cached_teacher_is_named_and_trained_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = load_dataset("breast-cancer", seed=0)
    cpu = torch.device("cpu")
    first, scores, _ = obtain_teacher(data, SPEC, RECIPE, seed=0, cache_dir=tmp_path, device=cpu)
    cached = teacher_cache_path(tmp_path, data, SPEC, RECIPE, 0)
    cached.write_bytes(cached.read_bytes()[:100])  # a truncated copy
    with caplog.at_level(logging.WARNING, logger="medslim"):
        again, rescored, trained = obtain_teacher(
            data, SPEC, RECIPE, seed=0, cache_dir=tmp_path, device=cpu
        )
    assert trained and str(cached) in caplog.text and "training it again" in caplog.text
    assert weights_fingerprint(again) == weights_fingerprint(first) and rescored == scores
    assert torch.load(cached, weights_only=True).keys() == first.state_dict().keys()
