"""What a study keeps about its models stays readable: bundles and configs written before
blueprints existed, the default study name for the same flags; and what a foreign teacher's
study seeds (baselines scaled to the budget, students sized from its FLOPs)."""

from __future__ import annotations

import torch
from torch import nn

from medslim.objectives.metrics import count_flops
from medslim.search.config import ResolvedConfig, StudyConfig, config_differences
from medslim.search.methods.distill import student_seeds
from medslim.search.session import baseline_count
from medslim.search.trial_models import ModelBundle, rebuild
from medslim.spaces.blueprints import blueprint_for, blueprint_from_spec
from medslim.spaces.families import spec_from_dict, spec_to_dict
from medslim.spaces.sparsity import PruningPlan, prunable_units, prune_in_steps
from medslim.spaces.specs import LibrarySpec


def _old_layer_widths(model: nn.Module) -> dict[str, list[int]]:
    """The widths bundles stored before blueprints ([in, out] per conv and linear layer,
    [n] per batch norm)."""
    widths = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            widths[name] = [module.in_channels, module.out_channels]
        elif isinstance(module, nn.Linear):
            widths[name] = [module.in_features, module.out_features]
        elif isinstance(module, nn.BatchNorm2d):
            widths[name] = [module.num_features]
    return widths


def test_a_bundle_from_before_blueprints_rebuilds_exactly() -> None:
    blueprint = blueprint_for("resnet8", None, (1, 28, 28), 2)
    torch.manual_seed(0)
    model = blueprint.build().eval()
    x = torch.randn(3, 1, 28, 28)
    units = prunable_units(model, x[:2], "structured")
    for _ in prune_in_steps(
        model, PruningPlan(dict.fromkeys(units, 0.5), "l1", "structured"), x[:2], torch.zeros
    ):
        pass
    old_spec = {
        "model": spec_to_dict(blueprint.spec()),
        "input_shape": [1, 28, 28],
        "n_outputs": 2,
        "layers": _old_layer_widths(model),
    }
    bundle = ModelBundle(model.state_dict(), old_spec)
    assert bundle.blueprint() == blueprint
    with torch.no_grad():
        assert torch.equal(rebuild(bundle)(x), model.eval()(x))


def test_an_older_stored_config_reads_and_resumes_with_the_same_flags() -> None:
    resolved = {"model": "resnet8", "kd": True, "epochs": 1, "teacher_epochs": 10}
    resolved |= {"student_epochs": 3, "trials": 30, "study": "x", "round_to": 1}
    now = ResolvedConfig(**{**StudyConfig(dataset="pneumoniamnist").__dict__, **resolved})
    stored = now.stored()
    for key in ("model_args", "pretrained", "ignore_layers", "round_to"):
        del stored[key]  # what a study made before these settings existed holds
    stored["baselines"] = 9  # and the fixed number of baselines it had
    assert config_differences(stored, now.stored()) == []
    reread = ResolvedConfig.from_stored(stored, storage="sqlite://", study="x", trials=30)
    assert reread.round_to == 1 and reread.ignore_layers == () and not reread.pretrained
    # The name the previous version gave these flags, so `medslim run` finds that study.
    assert now.default_study_name() == "pneumoniamnist-resnet8-structured-115070"


def test_uniform_baselines_scale_with_the_budget() -> None:
    assert [baseline_count(None, n) for n in (5, 16, 40, 200)] == [2, 4, 9, 9]
    assert baseline_count(3, 40) == 3 and baseline_count(12, 5) == 5


def test_students_of_a_foreign_teacher_are_sized_from_its_flops() -> None:
    teacher = blueprint_for("torchvision:resnet18", None, (1, 28, 28), 2)
    model = teacher.build()
    flops = count_flops(model, (1, 28, 28))
    seeds = student_seeds(teacher, model, flops)
    specs = [s for s in seeds if s["student.family"] == "resnet"]
    costs = []
    for seed in specs:
        widths = [seed[f"student.stage{i}.width"] for i in (1, 2, 3)]
        spec = spec_from_dict({"family": "resnet", "widths": widths, "blocks": [1, 1, 1]})
        costs.append(count_flops(blueprint_from_spec(spec, (1, 28, 28), 2).build(), (1, 28, 28)))
    assert costs == sorted(costs, reverse=True) and costs[0] < flops / 2
    assert len(costs) == 3 and costs[-1] < flops / 16
    library = [s for s in seeds if s["student.family"] == "torchvision"]
    assert library == [
        {
            "student.family": "torchvision",
            "student.arch": LibrarySpec().arch,
            "student.width": 0.5,
            "distill.temperature": 4.0,
            "distill.alpha": 0.5,
            "distill.feature_weight": 0.0,
        }
    ]
