from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medslim.errors import UsageError
from medslim.objectives.data import load_dataset
from medslim.objectives.teacher import obtain_teacher, teacher_key
from medslim.objectives.training import Recipe
from medslim.spaces.blueprints import blueprint_from_spec
from medslim.spaces.families import build_model
from medslim.spaces.specs import MLPSpec

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
