"""Distillation: a small student searched (family, widths, depths, kernels) and trained
from scratch on the teacher's soft labels (`search.student_trials`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from medslim.search.methods.base import (
    Method,
    MethodTrials,
    Seed,
    SeedContext,
    Style,
    TrialShared,
    register_method,
)
from medslim.spaces.students import describe_student

if TYPE_CHECKING:
    from torch import nn

    from medslim.spaces.blueprints import Blueprint
    from medslim.spaces.specs import ModelSpec

SEED_DIVISORS = (2, 4, 8)
"""Student seeds: the teacher with every width divided by these."""
SEED_FLOPS = (1 / 4, 1 / 16, 1 / 64)
"""Student seeds for a teacher medslim did not write: ResNets near these shares of its FLOPs."""


class Distill(Method):
    name = "distill"
    summary = "train a searched small student on the teacher's soft labels"
    title = "distilled trials"
    styles: ClassVar[dict[str, Style]] = {"distilled": Style("distilled", "#2ca02c", "diamond")}
    screens = False
    derives = False
    rejects = True
    drops_out = True
    stopped_attr = "students_stopped_after"
    seed_rank = 0  # students first, so the front holds students from the start

    def trials(self, shared: TrialShared) -> MethodTrials:
        from medslim.search.student_trials import StudentTrials

        return StudentTrials(shared.session, shared.budget, shared.max_flops)

    def seeds(self, context: SeedContext) -> list[Seed]:
        params = student_seeds(context.blueprint, context.teacher, context.teacher_flops)
        return [Seed(p, {"baseline": "scaled"}) for p in params]

    def base(self, config: dict[str, Any], trial: Any, stored: Blueprint) -> Blueprint:
        """A student is rebuilt from its own spec."""
        from medslim.search.records import trial_record
        from medslim.spaces.blueprints import blueprint_from_spec
        from medslim.spaces.families import spec_from_dict

        spec = spec_from_dict(trial_record(trial)["student_spec"])  # stored one field a key
        return blueprint_from_spec(spec, stored.input_shape, stored.n_outputs)

    def choices(
        self, record: dict[str, Any], config: dict[str, Any], units: list[str]
    ) -> dict[str, Any]:
        return {"student": record.get("student_spec", {}), "distill": record.get("distill", {})}

    def describe(self, choices: dict[str, Any], *, groups: bool = False) -> str:
        """`resnet 8-16-32 ×1-1-1 k3 T=4.0 α=0.50`."""
        knobs = choices.get("distill", {})
        text = describe_student(choices["student"]) if choices.get("student") else "student"
        if knobs:
            text += f" T={knobs['temperature']:.1f} α={knobs['alpha']:.2f}"
            if knobs.get("feature_weight"):
                text += f" feat={knobs['feature_weight']:g}"
        return text

    def columns(self, record: dict[str, Any]) -> dict[str, Any]:
        """`student.<field>` and `distill.<knob>`; lists (widths, blocks) as `8-16-32`."""
        nested = {"student": record.get("student_spec", {}), "distill": record.get("distill", {})}
        return {
            f"{prefix}.{key}": "-".join(map(str, value)) if isinstance(value, list) else value
            for prefix, values in nested.items()
            for key, value in values.items()
        }

    def spec_row(self, choices: dict[str, Any]) -> dict[str, Any] | None:
        return {**choices.get("student", {}), **choices.get("distill", {})}


def student_seeds(
    teacher: Blueprint, model: nn.Module, teacher_flops: int
) -> list[dict[str, Any]]:
    """Trial parameters of the students a study starts with: the teacher scaled down by
    its widths (a built-in teacher), else ResNets (3-D for volumes) at a quarter, a 16th
    and a 64th of its FLOPs and, for images, a half-width MobileNetV3-Small."""
    from medslim.objectives.metrics import count_flops
    from medslim.spaces.blueprints import blueprint_from_spec
    from medslim.spaces.specs import LibrarySpec
    from medslim.spaces.students import (
        DistillSettings,
        StudentSpace,
        scaled_teacher,
        sized_students,
        student_params,
    )

    space = StudentSpace.for_blueprint(teacher, model)
    specs: list[ModelSpec]
    if teacher.builtin:
        spec = teacher.spec()
        specs = list(dict.fromkeys(scaled_teacher(spec, d, space) for d in SEED_DIVISORS))
    else:

        def flops(spec: ModelSpec) -> int:
            student = blueprint_from_spec(spec, teacher.input_shape, teacher.n_outputs)
            return count_flops(student.build(), teacher.input_shape)

        targets = [teacher_flops * share for share in SEED_FLOPS]
        library = [LibrarySpec("mobilenet_v3_small", 0.5)] if space.library else []  # 2-D only
        specs = [*sized_students(space, flops, targets), *library]
    return [student_params(spec, DistillSettings()) for spec in specs]


DISTILL = register_method(Distill())
