"""Where each pruned front member cut: per group, its ratio and the channels it kept.

The ratios come from the trial's record; the channels from its stored model (the widths
of the group's first layer against the unpruned network's), so a reader sees `22/32`
rather than a ratio torch-pruning rounded. Unstructured pruning masks weights instead of
removing channels; there the profile counts the group's non-zero weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from medslim.errors import UsageError
from medslim.search.inspection.names import group_labels, with_alias
from medslim.search.inspection.pareto import Front, FrontMember
from medslim.search.stored import StudyRef
from medslim.search.study_format import stored_config
from medslim.search.trial_models import ModelBundle, load_trial_bundle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileRow:
    trial: int
    label: str
    """`trial 16 · 38.1% FLOPs · val AUC 0.708`."""
    ratios: list[float]
    kept: list[int | None]
    """Channels (or non-zero weights) kept per group; None where the model is not stored."""


@dataclass(frozen=True)
class LayerProfile:
    groups: list[str]
    labels: list[str]
    """Each group's module path, with its short alias beside it (`body.0 (fc1)`)."""
    totals: list[int | None]
    """Channels (or weights) of each group in the unpruned network."""
    unit: str
    """`channels` or `weights`."""
    cap: float
    """--max-ratio: no group is cut further."""
    rows: list[ProfileRow]


def layer_profile(ref: StudyRef, front: Front) -> LayerProfile:
    """The profile of the front's pruned members, in the front's order (by FLOPs)."""
    config = stored_config(ref.study) or {}
    unit = "weights" if config.get("pruning") == "unstructured" else "channels"
    groups = list(front.units)
    labels = group_labels(groups)
    totals: list[int | None] = [None] * len(groups)
    rows = []
    trials = {t.number: t for t in ref.study.get_trials(deepcopy=False)}
    for member in (m for m in front.members if m.kind != "distilled"):
        ratios = [float(member.choices.get("ratios", {}).get(g, 0.0)) for g in groups]
        kept: list[int | None] = [None] * len(groups)
        try:
            bundle = load_trial_bundle(ref, trials[member.trial])
        except UsageError as error:
            logger.info("no channel counts for trial %d: %s", member.trial, error)
        else:
            kept = _sizes(bundle, groups, unit, pruned=True)
            if all(t is None for t in totals):
                totals = _sizes(bundle, groups, unit, pruned=False)
        rows.append(ProfileRow(member.trial, _row_label(member), ratios, kept))
    return LayerProfile(
        groups=groups,
        labels=[with_alias(g, labels) for g in groups],
        totals=totals,
        unit=unit,
        cap=float(config.get("max_ratio", 0.9)),
        rows=rows,
    )


def _row_label(member: FrontMember) -> str:
    return f"trial {member.trial} · {member.flops_ratio:.1%} FLOPs · val AUC {member.val_auc:.3f}"


def _sizes(bundle: ModelBundle, groups: list[str], unit: str, *, pruned: bool) -> list[int | None]:
    """Per group: output channels of its first layer (or non-zero weights), in the stored
    model (`pruned`) or in the network it was pruned from."""
    if unit == "weights":
        weights = {
            g: bundle.state_dict.get(f"{g}.weight", bundle.state_dict.get(f"{g}.weight_orig"))
            for g in groups
        }
        return [
            None if w is None else int(torch.count_nonzero(w).item()) if pruned else int(w.numel())
            for w in weights.values()
        ]
    state = bundle.state_dict if pruned else bundle.blueprint().build().state_dict()
    return [int(state[f"{g}.weight"].shape[0]) if f"{g}.weight" in state else None for g in groups]
