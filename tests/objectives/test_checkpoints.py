"""`--teacher PATH`: the common checkpoint wrappers load, and what does not fit is refused in
one line that says why."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from medslim.errors import UsageError
from medslim.objectives.checkpoints import load_weights


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(conv=nn.Conv2d(1, 4, 3), bn=nn.BatchNorm2d(4), flat=nn.Flatten())
    )


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: _prefixed(s, "module."),  # DataParallel / DistributedDataParallel
        lambda s: {"state_dict": _prefixed(s, "model."), "epoch": 3},  # PyTorch Lightning
        lambda s: {"model": s, "optimizer": {"lr": 0.1}},
        lambda s: {"model_state_dict": _prefixed(s, "_orig_mod."), "step": 10},  # compiled
        lambda s: {"state_dict": _prefixed(s, "model.module.")},
    ],
    ids=["bare", "module.", "lightning", "model", "compiled", "nested"],
)
def test_wrapped_state_dicts_load(wrap, tmp_path: Path) -> None:
    source = _net()
    with torch.no_grad():
        source.conv.weight.add_(1.0)
    path = tmp_path / "teacher.pt"
    torch.save(wrap(source.state_dict()), path)
    target = _net()
    load_weights(target, path, "--model net.py:build")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def _refusal(content: object, tmp_path: Path) -> str:
    path = tmp_path / "teacher.pt"
    torch.save(content, path)
    with pytest.raises(UsageError) as error:
        load_weights(_net(), path, "--model net.py:build")
    message = str(error.value)
    assert "\n" not in message and "\x1b" not in message  # one plain line
    return message


def test_a_shape_mismatch_names_the_key_and_both_shapes(tmp_path: Path) -> None:
    state = _net().state_dict()
    state["conv.weight"] = torch.zeros(8, 1, 3, 3)
    message = _refusal(state, tmp_path)
    assert "conv.weight is (8, 1, 3, 3) in the file but (4, 1, 3, 3) in the model" in message
    assert "does not fit --model net.py:build" in message


def test_other_keys_are_counted_and_the_first_is_named(tmp_path: Path) -> None:
    state = {"layer1.weight": torch.zeros(2)}
    message = _refusal(state, tmp_path)
    assert "first: conv.weight" in message and "first: layer1.weight" in message
    assert len(message) < 400  # not every key of the model


def test_a_pickled_module_is_refused_without_unpickling(tmp_path: Path) -> None:
    message = _refusal(_net(), tmp_path)
    assert "pickled Python objects" in message and "torch.nn" in message
    assert "torch.save(model.state_dict(), PATH)" in message


def test_a_dict_without_weights_says_what_it_holds(tmp_path: Path) -> None:
    message = _refusal({"epoch": 3, "config": {"lr": 0.1}}, tmp_path)
    assert "epoch, config" in message and "state_dict" in message


def test_a_file_that_is_not_pytorch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "teacher.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(UsageError, match="not a readable PyTorch file"):
        load_weights(_net(), path, "--model net.py:build")
