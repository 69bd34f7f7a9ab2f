"""`--model` values → blueprints (torch-free), and the facts found by running a network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medslim.errors import UsageError
from medslim.spaces.blueprints import Blueprint, blueprint_for, input_kind
from medslim.spaces.families import get_preset, spec_to_dict
from medslim.spaces.graphs import feature_map_module, head_layers, trace_calls
from medslim.spaces.sources import FILE, MODULE, parse_model


def test_model_values_name_their_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nets.py").write_text("def build(in_channels, num_classes): ...\n")
    monkeypatch.chdir(tmp_path)
    assert parse_model("resnet8").source == "preset"
    assert parse_model("torchvision:resnet18").name == "resnet18"
    assert parse_model("timm:vit_tiny_patch16_224").source == "timm"
    assert parse_model("nets.py:build") == parse_model(f"{tmp_path / 'nets.py'}:build")
    assert parse_model("nets.py:build").source == FILE
    assert parse_model("nets.py:build").name == f"{tmp_path / 'nets.py'}:build"  # absolute
    assert parse_model("my_pkg.nets:build").source == MODULE
    for bad, message in (
        ("torchvision:", "names no model"),
        ("absent.py:build", "does not exist"),
        ("nets.py:not-a-name", "not a function name"),
        ("a/b:build", "unknown model source"),
    ):
        with pytest.raises(UsageError, match=message):
            parse_model(bad)


def test_a_preset_is_its_family_spec_and_keeps_its_cache_identity() -> None:
    blueprint = blueprint_for("resnet8", None, (1, 28, 28), 2)
    assert blueprint.model == "family:resnet" and blueprint.builtin
    assert blueprint.identity() == spec_to_dict(get_preset("resnet8"))  # teacher cache keys
    wider = blueprint_for("resnet8", {"widths": [8, 16, 32]}, (1, 28, 28), 2)
    assert wider.spec().widths == (8, 16, 32) and wider.spec().blocks == (1, 1, 1)
    assert Blueprint.from_dict(wider.as_dict()) == wider
    assert input_kind(blueprint) == "image" and input_kind(blueprint_for("mlp", None, (5,), 2))
    with pytest.raises(UsageError, match="do not fit --model resnet8"):
        blueprint_for("resnet8", {"depth": 3}, (1, 28, 28), 2)


def test_a_library_blueprint_round_trips_and_an_edited_file_is_another_model(
    tmp_path: Path,
) -> None:
    blueprint = blueprint_for("torchvision:resnet18", {"zero_init_residual": True}, (1, 8, 8), 3)
    assert Blueprint.from_dict(blueprint.as_dict()) == blueprint and not blueprint.builtin
    assert input_kind(blueprint) == "image"
    nets = tmp_path / "nets.py"
    nets.write_text("def build(in_channels, num_classes): ...\n")
    mine = blueprint_for(f"{nets}:build", None, (1, 8, 8), 3)
    assert input_kind(mine) is None  # a user's function may take any data
    before = mine.identity()
    nets.write_text("def build(in_channels, num_classes, width=2): ...\n")
    assert mine.identity() != before


@pytest.mark.e2e
def test_grey_images_get_a_one_channel_stem_and_small_images_a_finer_stem() -> None:
    resnet = blueprint_for("torchvision:resnet18", None, (1, 28, 28), 2).build()
    assert resnet.conv1.in_channels == 1 and resnet.conv1.stride == (2, 2)  # runs as built
    densenet = blueprint_for("torchvision:densenet121", None, (1, 28, 28), 2).build()
    assert densenet.features.conv0.stride == (1, 1)  # 28 px would shrink to nothing
    assert densenet(torch.zeros(2, 1, 28, 28)).shape == (2, 2)


def test_the_head_and_the_last_feature_map_are_found_by_running_the_model() -> None:
    model = blueprint_for("torchvision:resnet18", None, (1, 32, 32), 2).build()
    calls = trace_calls(model, torch.zeros(2, 1, 32, 32))
    assert head_layers(calls) == ["fc"] and feature_map_module(calls) == "layer4"
    densenet = blueprint_for("torchvision:mobilenet_v3_small", None, (3, 32, 32), 4).build()
    calls = trace_calls(densenet, torch.zeros(2, 3, 32, 32))
    assert head_layers(calls) == ["classifier.3"] and feature_map_module(calls) == "features"


def test_a_vision_transformer_has_no_feature_map_before_its_head() -> None:
    timm = pytest.importorskip("timm")
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1)
    calls = trace_calls(vit, torch.zeros(2, 3, 32, 32))
    assert feature_map_module(calls) is None and head_layers(calls) == ["head"]
