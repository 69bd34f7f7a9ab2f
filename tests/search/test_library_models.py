"""Every torchvision builder medslim lists, and MONAI's DenseNet-121 and a timm ViT when
those libraries are installed: built for grey images, pruned at a ratio, really smaller,
still running, rebuilt exactly from its stored bundle, exported to ONNX matching PyTorch.
The same for volumes: medslim's 3-D ResNet, torchvision's video ResNets and a MONAI 3-D
DenseNet, on grey 8³ volumes.

Inputs are 32 px so the suite stays quick; each model runs once through the whole chain.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

from medslim.objectives.metrics import count_flops, count_params, flops_by_module, sparse_flops
from medslim.search.inspection.export import export_onnx
from medslim.search.trial_models import ModelBundle, bundle_model, rebuild
from medslim.spaces.blueprints import Blueprint, blueprint_for
from medslim.spaces.sources import TORCHVISION_KNOWN, TORCHVISION_VIDEO
from medslim.spaces.sparsity import (
    PruningPlan,
    make_masks_permanent,
    prunable_units,
    prune_in_steps,
)

pytestmark = pytest.mark.e2e

SHAPE = (1, 32, 32)
VOLUME = (1, 8, 8, 8)
RATIO = 0.4
SMALL_DENSENET = {"init_features": 8, "growth_rate": 8, "block_config": [2, 2, 2, 2]}


def _compress(blueprint: Blueprint, tmp_path: Path, pruning: str = "structured") -> None:
    torch.manual_seed(0)
    teacher = blueprint.build().eval()
    shape = blueprint.input_shape
    x = torch.randn(4, *shape)
    units = prunable_units(teacher, x[:2], pruning)  # type: ignore[arg-type]
    assert units, "nothing to prune"
    model = copy.deepcopy(teacher)
    plan = PruningPlan(dict.fromkeys(units, RATIO), "l1", pruning)  # type: ignore[arg-type]
    for _ in prune_in_steps(model, plan, x[:2], lambda m: torch.zeros(1)):
        pass
    make_masks_permanent(model)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    if pruning == "structured":
        assert count_flops(model, shape) < 0.85 * count_flops(teacher, shape)
        assert count_params(model)[0] < 0.85 * count_params(teacher)[0]
    else:
        dense = count_flops(teacher, shape)
        assert sparse_flops(model, flops_by_module(model, shape)) < 0.85 * dense
        assert count_params(model)[1] < 0.85 * count_params(teacher)[1]
    path = tmp_path / "model.pt"
    bundle_model(model, blueprint).save(path)
    rebuilt = rebuild(ModelBundle.load(path))  # weights_only: plain data and tensors only
    with torch.no_grad():
        assert torch.equal(rebuilt(x), out)
    check = export_onnx(rebuilt, x, tmp_path / "model.onnx", repeats=1)
    assert check.max_abs_diff <= 1e-4


@pytest.mark.parametrize("name", TORCHVISION_KNOWN)
def test_torchvision_builder_compresses_rebuilds_and_exports(name: str, tmp_path: Path) -> None:
    _compress(blueprint_for(f"torchvision:{name}", None, SHAPE, 2), tmp_path)


def test_shufflenet_is_cut_in_the_pieces_torch_pruning_can_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = blueprint_for("torchvision:shufflenet_v2_x1_0", None, SHAPE, 2).build().eval()
    x = torch.zeros(2, *SHAPE)
    with caplog.at_level("INFO", logger="medslim"):
        units = prunable_units(model, x, "structured", ["stage4.3"])
        assert prunable_units(model, x, "structured", ["stage4.3"]) == units
    # The channel shuffle defeats the whole-model graph; each block's inner branch is traced
    # alone, and only its middle channels (1×1 → depthwise → 1×1) leave the block as it was.
    assert len(units) == 15 and all(name.endswith(".branch2.3") for name in units)
    assert sum("stay whole" in r.message for r in caplog.records) == 1  # listed once


def test_unstructured_pruning_masks_a_library_model(tmp_path: Path) -> None:
    blueprint = blueprint_for("torchvision:resnet18", None, SHAPE, 2)
    model = blueprint.build()
    units = prunable_units(model, torch.zeros(2, *SHAPE), "unstructured")
    assert "fc" not in units and "conv1" in units  # the head is found, not named
    _compress(blueprint, tmp_path, "unstructured")


@pytest.mark.skipif(importlib.util.find_spec("monai") is None, reason="needs medslim[monai]")
def test_monai_densenet121_compresses_rebuilds_and_exports(tmp_path: Path) -> None:
    _compress(blueprint_for("monai:DenseNet121", None, SHAPE, 2), tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="needs medslim[timm]")
def test_timm_vit_loses_whole_attention_heads(tmp_path: Path) -> None:
    args = {"img_size": 32, "patch_size": 8, "depth": 2}
    blueprint = blueprint_for("timm:vit_tiny_patch16_224", args, SHAPE, 2)
    model = blueprint.build().eval()
    x = torch.zeros(2, *SHAPE)
    units = prunable_units(model, x, "structured")
    assert "blocks.0.attn.qkv" in units
    plan = PruningPlan(dict.fromkeys(units, 0.3), "l1", "structured")
    for _ in prune_in_steps(model, plan, x, lambda m: torch.zeros(1)):
        pass
    attention = model.get_submodule("blocks.0.attn")
    assert attention.num_heads == 2  # of 3: one whole head (64 dims) removed (0.3 × 3, up)
    assert attention.qkv.out_features == 3 * 2 * 64
    assert model(x).shape == (2, 2)
    _compress(blueprint, tmp_path)


def test_medslim_3d_resnet_compresses_rebuilds_and_exports(tmp_path: Path) -> None:
    _compress(blueprint_for("resnet3d8", None, VOLUME, 2), tmp_path)


def test_unstructured_pruning_masks_3d_convolutions(tmp_path: Path) -> None:
    _compress(blueprint_for("resnet3d8", None, VOLUME, 2), tmp_path, "unstructured")


@pytest.mark.parametrize("name", TORCHVISION_VIDEO)
def test_torchvision_video_resnet_on_grey_volumes(name: str, tmp_path: Path) -> None:
    blueprint = blueprint_for(f"torchvision:{name}", None, VOLUME, 2)
    stem = next(m for m in blueprint.build().modules() if isinstance(m, torch.nn.Conv3d))
    assert stem.in_channels == 1  # the RGB stem fitted to the data's one channel
    _compress(blueprint, tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("monai") is None, reason="needs medslim[monai]")
def test_monai_3d_densenet_compresses_rebuilds_and_exports(tmp_path: Path) -> None:
    blueprint = blueprint_for("monai:DenseNet121", SMALL_DENSENET, VOLUME, 2)
    assert isinstance(blueprint.build().features.conv0, torch.nn.Conv3d)  # spatial_dims=3
    _compress(blueprint, tmp_path)
