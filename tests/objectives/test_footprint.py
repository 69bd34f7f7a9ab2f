"""A size too large for this machine is refused before any image is decoded, with the
estimate and the largest size that fits; the estimate grows with the size and the batch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from medslim.errors import UsageError
from medslim.objectives.footprint import HEADROOM, available_memory, check_fits, model_need
from medslim.search.cli import main
from medslim.spaces.blueprints import blueprint_for

CPU = torch.device("cpu")


def _resnet8(size: int) -> Any:
    return blueprint_for("resnet8", None, (1, size, size), 2)


def test_the_need_grows_with_the_size_and_the_batch() -> None:
    # (below 64 px resnet8's stem keeps more resolution, so smaller images can cost more)
    needs = [model_need(_resnet8(s).build(), (1, s, s), 32, 1000) for s in (64, 128, 256)]
    assert needs[0].train_step < needs[1].train_step < needs[2].train_step
    more = model_need(_resnet8(128).build(), (1, 128, 128), 64, 1000)
    assert more.train_step > needs[1].train_step
    few = model_need(_resnet8(128).build(), (1, 128, 128), 64, 10)
    assert few.train_step < needs[1].train_step, "a batch never holds more than the images"


def test_the_suggested_size_fits_and_the_next_one_does_not() -> None:
    budget = 2 * 10**9
    with pytest.raises(UsageError) as refused:
        check_fits(_resnet8(1024), 500, 128, CPU, name="resnet8", available=budget)
    message = str(refused.value)
    assert message.startswith("--size 1024: one training step of resnet8 on 128 images")
    size = int(re.search(r"--size (\d+) or less fits", message).group(1))
    check_fits(_resnet8(size), 500, 128, CPU, available=budget)
    with pytest.raises(UsageError):
        check_fits(_resnet8(size + 16), 500, 128, CPU, available=budget)


def test_the_suggested_batch_fits_and_the_next_power_of_two_does_not() -> None:
    blueprint = _resnet8(256)
    need = model_need(blueprint.build(), (1, 256, 256), 128, 500)
    assert need.train_step > need.predict, "a training step that a smaller batch can shrink"
    available = int((need.train_step + need.predict) / 2 / HEADROOM)
    with pytest.raises(UsageError) as refused:
        check_fits(blueprint, 500, 128, CPU, available=available)
    batch = int(re.search(r"--batch-size (\d+) at this size", str(refused.value)).group(1))
    assert 1 <= batch < 128
    check_fits(blueprint, 500, batch, CPU, available=available)
    with pytest.raises(UsageError):
        check_fits(blueprint, 500, 2 * batch, CPU, available=available)


def test_a_huge_size_is_refused_before_decoding_and_leaves_nothing(
    tmp_path: Path, images: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    available = available_memory(CPU)
    need = model_need(_resnet8(2048).build(), (1, 2048, 2048), 128, 40)
    if available is None or need.peak < available:
        pytest.skip("this machine holds a 2048-px resnet8 study in memory")
    root = images.class_folder(tmp_path / "x", per_class=20)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    data = ["--dataset", str(root), "--size", "2048", "--data-dir", str(tmp_path / "d")]
    assert main(["run", "--storage", storage, *data, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs about" in err and "or less fits" in err, err
    assert not (tmp_path / "d" / "decoded").exists() and not (tmp_path / "s.db").exists()
