"""Readable names for what a study stores: prunable groups, trial parameters, members.

Groups are named after their first layer in the network (`layers.1.0.shortcut.0`); the
report and tables show them as `s2.b1.shortcut` (stage 2, block 1), the stem as `stem` and
an MLP's hidden layers as `fc1`, `fc2`, ... Names that follow no known pattern (a user's
own model) are shown as they are.
"""

from __future__ import annotations

import re

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


def param_label(name: str) -> str:
    """A trial parameter's meaning: per-group offsets of older studies were stored as
    `sparsity.<group>` and are shown as `offset.<group>`, beside `sparsity.global`."""
    if name.startswith(LEGACY_OFFSET) and name != GLOBAL:
        return OFFSET + name[len(LEGACY_OFFSET) :]
    return name
