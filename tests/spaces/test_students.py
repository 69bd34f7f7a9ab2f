from __future__ import annotations

import optuna
import pytest
import torch

from medslim.objectives.metrics import count_flops
from medslim.spaces.blueprints import blueprint_from_spec
from medslim.spaces.families import (
    FAMILIES,
    build_model,
    get_preset,
    spec_from_dict,
    spec_to_dict,
    student_family_names,
)
from medslim.spaces.specs import LibrarySpec, MLPSpec, MobileNetSpec, ResNet3DSpec, ResNetSpec
from medslim.spaces.students import (
    DistillSettings,
    StudentSpace,
    describe_student,
    feature_stages,
    sample_student,
    scaled_teacher,
    structural_problem,
    student_params,
)

TINY = {
    "resnet": ResNetSpec(widths=(4, 8), blocks=(1, 1)),
    "mobilenet": MobileNetSpec(widths=(4, 8), blocks=(1, 1), expansion=2),
    "mlp": MLPSpec(hidden=(8,)),
    "resnet3d": ResNet3DSpec(widths=(4, 8), blocks=(1, 1)),
    "torchvision": LibrarySpec("mobilenet_v3_small", 0.125),
}
SHAPES = {"image": (1, 12, 12), "tabular": (6,), "volume": (1, 12, 12, 12)}
STUDENT_FAMILIES = {
    name: FAMILIES[name]
    for kind in SHAPES
    for name in student_family_names(kind)  # type: ignore[arg-type]
}


def _wider(spec):
    if isinstance(spec, LibrarySpec):
        return LibrarySpec(spec.arch, 2 * spec.width)
    if isinstance(spec, MLPSpec):
        return MLPSpec(hidden=tuple(2 * w for w in spec.hidden))
    return type(spec)(**{**_fields(spec), "widths": tuple(2 * w for w in spec.widths)})


def _deeper(spec):
    if isinstance(spec, LibrarySpec):
        return LibrarySpec("resnet18", spec.width)
    if isinstance(spec, MLPSpec):
        return MLPSpec(hidden=(*spec.hidden, spec.hidden[-1]))
    return type(spec)(**{**_fields(spec), "blocks": tuple(b + 1 for b in spec.blocks)})


def _fields(spec) -> dict:
    return {k: v for k, v in spec_to_dict(spec).items() if k != "family"}


# torchvision's students are whole library models (seconds each): outside the fast loop
WHOLE_MODEL_MARKED = [
    pytest.param(f, marks=pytest.mark.e2e) if f == "torchvision" else f
    for f in sorted(STUDENT_FAMILIES)
]


def test_every_family_has_a_tiny_example() -> None:
    assert set(TINY) == set(STUDENT_FAMILIES)
    assert set(STUDENT_FAMILIES) == set(FAMILIES)  # every built-in family is a student too


@pytest.mark.parametrize("family", WHOLE_MODEL_MARKED)
def test_family_builds_runs_forward_and_backward(family: str) -> None:
    torch.manual_seed(0)
    spec = TINY[family]
    shape = SHAPES[STUDENT_FAMILIES[family].input_kind]
    model = build_model(spec, shape, 3)
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    blueprint = blueprint_from_spec(spec, shape, 3)
    stages = feature_stages(model, blueprint)
    if isinstance(spec, LibrarySpec):  # found by running it: the last feature map
        assert len(stages) == 1 and stages[0] is model.get_submodule("features")
    else:
        assert isinstance(model.get_submodule("head"), torch.nn.Linear)
        assert len(stages) == len(spec_to_dict(spec).get("widths", (8,)))
    assert spec_from_dict(spec_to_dict(spec)) == spec


@pytest.mark.parametrize("family", WHOLE_MODEL_MARKED)
def test_flops_grow_with_width_and_depth(family: str) -> None:
    spec = TINY[family]
    shape = SHAPES[STUDENT_FAMILIES[family].input_kind]

    def flops(s) -> int:
        return count_flops(build_model(s, shape, 2), shape)

    assert flops(spec) < flops(_wider(spec))
    assert flops(spec) < flops(_deeper(spec))


def test_mobilenet_blocks_are_depthwise_with_expansion() -> None:
    model = build_model(MobileNetSpec(widths=(8,), blocks=(1,), expansion=6), (1, 8, 8), 2)
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == 48 for m in depthwise)


@pytest.mark.parametrize("family", sorted(STUDENT_FAMILIES))
def test_params_replay_to_the_same_spec_and_knobs(family: str) -> None:
    space = StudentSpace(kind=STUDENT_FAMILIES[family].input_kind, library=True)
    settings = DistillSettings(temperature=2.0, alpha=0.3, feature_weight=0.1)
    params = student_params(TINY[family], settings)
    assert all(k.startswith(("student.", "distill.")) for k in params)
    assert sample_student(optuna.trial.FixedTrial(params), space) == (TINY[family], settings)


def test_conditional_parameters_exist_only_for_their_family() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = StudentSpace(max_stages=3)
    for _ in range(30):
        trial = study.ask()
        spec, _ = sample_student(trial, space)
        assert ("student.expansion" in trial.params) == (spec.family == "mobilenet")
        stages = trial.params["student.stages"]
        assert f"student.stage{stages}.width" in trial.params
        assert f"student.stage{stages + 1}.width" not in trial.params
        assert all(w in space.widths for w in spec.widths)
        study.tell(trial, 0.0)
    assert {t.params["student.family"] for t in study.trials} == {"resnet", "mobilenet"}


def test_unbuildable_specs_are_rejected_with_reasons() -> None:
    space = StudentSpace()
    deep = ResNetSpec(widths=(4, 4, 4, 4, 4), blocks=(1,) * 5)
    assert structural_problem(deep, (1, 28, 28), space) is None  # 28 → 14 → 7 → 4 → 2 px
    reason = structural_problem(deep, (1, 12, 12), space)  # 12 → 6 → 3 → 2 → 1 px
    assert reason is not None and "1 px" in reason and "12-px" in reason
    assert "tabular" in structural_problem(MLPSpec(hidden=(8,)), (1, 28, 28), space)
    uneven = ResNetSpec(widths=(4, 8), blocks=(1,))
    assert "block counts" in structural_problem(uneven, (1, 28, 28), space)


def test_scaled_teacher_copies_stay_on_the_grid() -> None:
    teacher = get_preset("resnet8")
    space = StudentSpace.for_teacher(teacher)
    assert space.widths == (4, 8, 16, 32, 64, 128)
    assert [scaled_teacher(teacher, d, space).widths for d in (2, 4, 8)] == [
        (16, 32, 64),
        (8, 16, 32),
        (4, 8, 16),
    ]
    mlp = scaled_teacher(get_preset("mlp"), 4, StudentSpace.for_teacher(get_preset("mlp")))
    assert mlp.hidden == (64, 32, 16)


def test_short_description() -> None:
    assert describe_student(spec_to_dict(TINY["mobilenet"])) == "mobilenet 4-8 ×1-1 k3 e2"
    assert describe_student(spec_to_dict(TINY["mlp"])) == "mlp 8"
    assert describe_student(spec_to_dict(TINY["torchvision"])) == (
        "torchvision mobilenet_v3_small ×0.125"
    )
