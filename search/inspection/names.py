"""Readable names for what a study stores: prunable groups, trial parameters, members.

One name per layer: a group is named by the module path of its first layer
(`layers.1.0.shortcut.0`), which is what a user's own model has and what the trial
parameters (`offset.layers.1.0.shortcut.0`), the `ratio.<group>` attributes and the
importance chart say. Where a short label helps (the stem as `stem`, `s2.b1.shortcut` for
stage 2, block 1, an MLP's hidden layers as `fc1`, `fc2`, ...) it is only a display alias,
shown beside the path (`layers.1.0.shortcut.0 (s2.b1.shortcut)`), never instead of it.
"""

from __future__ import annotations

import re

from medslim.search.study_format import LEGACY_OFFSET_PREFIX

_STAGE_BLOCK = re.compile(r"^layers\.(\d+)\.(\d+)\.(.+?)(?:\.0)?$")
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
    if name.startswith(LEGACY_OFFSET_PREFIX) and name != GLOBAL:
        return OFFSET + name[len(LEGACY_OFFSET_PREFIX) :]
    return name
