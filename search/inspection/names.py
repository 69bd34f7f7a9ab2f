"""Readable names for what a study stores: prunable groups, trial parameters, methods.

One name per layer: a group is named by the module path of its first layer
(`layers.1.0.shortcut.0`), which is what a user's own model has and what the trial
parameters (`offset.layers.1.0.shortcut.0`), the `ratio.<group>` attributes and the
importance chart say. Where a short label helps (the stem as `stem`, `s2.b1.shortcut` for
stage 2, block 1, an MLP's hidden layers as `fc1`, `fc2`, ...) it is only a display alias,
shown beside the path (`layers.1.0.shortcut.0 (s2.b1.shortcut)`), never instead of it.
"""

from __future__ import annotations

import re
from typing import Any

from medslim.spaces.students import describe_student

_STAGE_BLOCK = re.compile(r"^layers\.(\d+)\.(\d+)\.(.+?)(?:\.0)?$")
LEGACY_OFFSET = "sparsity."
OFFSET = "offset."
GLOBAL = "sparsity.global"


def group_labels(units: list[str]) -> dict[str, str]:
    """Short label per group name, unique, in network order."""
    labels: dict[str, str] = {}
    hidden = 0
    for unit in units:
        match = _STAGE_BLOCK.match(unit)
        if unit == "conv1":
            label = "stem"
        elif match:
            stage, block, rest = match.groups()
            label = f"s{int(stage) + 1}.b{int(block) + 1}.{rest}"
        elif unit.startswith("body."):
            hidden += 1
            label = f"fc{hidden}"
        else:
            label = unit
        labels[unit] = label if label not in labels.values() else unit
    return labels


def with_alias(group: str, labels: dict[str, str]) -> str:
    """`layers.0.0.conv1 (s1.b1.conv1)`: the module path, with its alias where it has one."""
    alias = labels.get(group, group)
    return group if alias == group else f"{group} ({alias})"


def param_label(name: str) -> str:
    """A trial parameter's meaning: per-group offsets of older studies were stored as
    `sparsity.<group>` and are shown as `offset.<group>`, beside `sparsity.global`."""
    if name.startswith(LEGACY_OFFSET) and name != GLOBAL:
        return OFFSET + name[len(LEGACY_OFFSET) :]
    return name


def kind(record: dict[str, Any]) -> str:
    """`pruned`, `uniform` (a pruned uniform-ratio baseline) or `distilled`."""
    if record.get("method") == "distill":
        return "distilled"
    return "uniform" if record.get("baseline") == "uniform" else "pruned"


def describe(choices: dict[str, Any], *, groups: bool = False) -> str:
    """What a member is, in one line. Pruned: `g=0.42 l1 conv1 .30 layers.0.0.conv1 .51 ...`
    (global ratio or allocation, criterion, each group's real ratio by its module path;
    without `groups`, the ratios alone in network order: `[.30 .51 ...]`). Distilled:
    `resnet 8-16-32 ×1-1-1 k3 T=4.0 α=0.50`."""
    if "student" in choices:
        knobs = choices.get("distill", {})
        text = describe_student(choices["student"]) if choices["student"] else "student"
        if knobs:
            text += f" T={knobs['temperature']:.1f} α={knobs['alpha']:.2f}"
            if knobs.get("feature_weight"):
                text += f" feat={knobs['feature_weight']:g}"
        return text
    ratios: dict[str, float] = choices.get("ratios", {})
    if choices.get("allocation"):
        head = f"{choices['allocation']} {choices.get('criterion', '')}".rstrip()
    else:
        head = f"g={choices.get('global_ratio', 0):.2f} {choices.get('criterion', '')}".rstrip()
    if not groups:
        return f"{head} [{' '.join(_short(r) for r in ratios.values())}]"
    return f"{head} " + " ".join(f"{g} {_short(r)}" for g, r in ratios.items())


def _short(ratio: float) -> str:
    """`.30`, `.00`: a ratio without its leading zero."""
    return f"{ratio:.2f}".lstrip("0") or "0"
