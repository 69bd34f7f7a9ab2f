"""3-D networks: the 3-D ResNet presets' stems at 28³ and 64³, models that refuse the other
kind of data, 3-D operations counted in FLOPs and cut as channel groups, MONAI and
torchvision models built for volumes, and a user's function whose model takes 5-D batches."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from medslim.errors import UsageError
from medslim.objectives.metrics import flops_by_module
from medslim.spaces.blueprints import blueprint_for, input_kind
from medslim.spaces.families import build_model, get_preset
from medslim.spaces.layers import PRUNABLE, WEIGHTED
from medslim.spaces.sparsity import prunable_units
from medslim.spaces.specs import ResNet3DSpec, ResNetSpec


@pytest.mark.parametrize(
    ("preset", "side", "stride", "pooled"),
    [
        ("resnet3d8", 16, 1, False),  # the first stage sees 16³ already
        ("resnet3d8", 28, 2, False),  # 14³
        ("resnet3d8", 64, 2, True),  # 16³
        ("resnet3d18", 28, 1, False),  # MedMNIST's 3-D ResNet-18: the first stage at 28³
    ],
)
def test_3d_stems_keep_a_cheap_first_stage(
    preset: str, side: int, stride: int, pooled: bool
) -> None:
    model = build_model(get_preset(preset), (1, side, side, side), 2)
    assert isinstance(model.conv1, nn.Conv3d) and model.conv1.stride == (stride,) * 3
    assert isinstance(model.stem_pool, nn.MaxPool3d) == pooled
    assert model(torch.zeros(2, 1, side, side, side)).shape == (2, 2)


def test_2d_and_3d_families_refuse_the_other_kind_of_data() -> None:
    with pytest.raises(UsageError, match=r"takes images .*try --model resnet3d8"):
        build_model(ResNetSpec(), (1, 8, 8, 8), 2)
    with pytest.raises(UsageError, match=r"takes volumes .*try --model resnet8"):
        build_model(ResNet3DSpec(), (1, 8, 8), 2)


def test_3d_operations_are_counted_per_layer() -> None:
    model = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1, bias=False),
        nn.BatchNorm3d(4),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(4, 2, bias=False),
    )
    per_layer = flops_by_module(model, (1, 5, 6, 7))
    assert per_layer == {"0": 2 * 27 * 4 * 5 * 6 * 7, "4": 2 * 4 * 2}  # 2 FLOPs per MAC
    assert nn.Conv3d in WEIGHTED and nn.Conv3d in PRUNABLE


def test_3d_channel_groups_are_rooted_at_conv3d() -> None:
    model = build_model(ResNet3DSpec(widths=(4, 8), blocks=(1, 1)), (1, 8, 8, 8), 2)
    units = prunable_units(model, torch.zeros(2, 1, 8, 8, 8), "structured")
    assert "conv1" in units and all(isinstance(m, nn.Conv3d) for m in units.values())
    masked = prunable_units(model, torch.zeros(2, 1, 8, 8, 8), "unstructured")
    assert "layers.0.0.conv1" in masked and "head" not in masked


def test_library_models_say_which_data_they_take() -> None:
    volume = (1, 8, 8, 8)
    assert input_kind(blueprint_for("torchvision:r3d_18", None, volume, 2)) == "volume"
    assert input_kind(blueprint_for("torchvision:resnet18", None, volume, 2)) == "image"
    assert input_kind(blueprint_for("resnet3d8", None, volume, 2)) == "volume"
    assert input_kind(blueprint_for("monai:DenseNet121", None, volume, 2)) is None  # either


@pytest.mark.skipif(importlib.util.find_spec("monai") is None, reason="needs medslim[monai]")
def test_monai_3d_densenet_gets_a_stem_that_keeps_a_28_voxel_volume() -> None:
    args = {"init_features": 8, "growth_rate": 4, "block_config": [1, 1, 1, 1]}
    model = blueprint_for("monai:DenseNet121", args, (1, 28, 28, 28), 3).build()
    assert model.features.conv0.stride == (1, 1, 1)  # stride 2 pooled 28³ down to nothing
    assert model(torch.zeros(2, 1, 28, 28, 28)).shape == (2, 3)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="needs medslim[timm]")
def test_timm_refuses_volumes_in_one_line() -> None:
    with pytest.raises(UsageError, match="timm:resnet18 is a 2-D model and the data are volumes"):
        blueprint_for("timm:resnet18", None, (1, 8, 8, 8), 2).build()


def test_a_users_function_builds_a_model_for_5d_batches(tmp_path: Path) -> None:
    nets = tmp_path / "nets.py"
    nets.write_text(
        "from torch import nn\n"
        "def build(in_channels, num_classes, width=4):\n"
        "    return nn.Sequential(nn.Conv3d(in_channels, width, 3), nn.ReLU(),\n"
        "                         nn.AdaptiveAvgPool3d(1), nn.Flatten(),\n"
        "                         nn.Linear(width, num_classes))\n"
    )
    blueprint = blueprint_for(f"{nets}:build", {"width": 6}, (1, 8, 8, 8), 2)
    model = blueprint.build()
    assert model(torch.zeros(3, 1, 8, 8, 8)).shape == (3, 2)
    with pytest.raises(UsageError, match=r"cannot run on 1×8×8 inputs"):
        blueprint_for(f"{nets}:build", None, (1, 8, 8), 2).build()
