"""`medslim refine`: fine-tune a front member longer and store it beside its trial."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medslim.errors import UsageError
from medslim.objectives.refine import REFINE_EPOCHS, refine_model
from medslim.search.deployment import convert, study_calibration
from medslim.search.inspection.pareto import Front
from medslim.search.inspection.reopen import reopen
from medslim.search.methods import FP32, precision_of
from medslim.search.records import trial_record
from medslim.search.refined import save_refined
from medslim.search.session import on_device, resolve_device
from medslim.search.stored import StudyRef
from medslim.search.trial_models import load_trial_bundle, rebuild

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refined:
    """What refining trial `trial` gave: its val scores before and after."""

    trial: int
    epochs: int
    best_epoch: int
    before: dict[str, float]
    record: dict[str, Any]


def refine_trial(
    ref: StudyRef,
    number: int,
    *,
    epochs: int | None = None,
    device: str = "auto",
    data_dir: Path | None = None,
) -> Refined:
    """Fine-tune trial `number`'s model for `epochs` more on the teacher's soft labels, keep
    the best val epoch, and store it as the trial's refined model."""
    epochs = REFINE_EPOCHS if epochs is None else epochs
    if epochs < 1:
        raise UsageError(f"--epochs must be 1 or more, got {epochs}")
    trial = ref.finished_trial(number)
    bundle = load_trial_bundle(ref, trial)  # refuses a trial that kept no model
    context = reopen(ref, data_dir)  # refuses a study whose teacher is not to be had
    target = resolve_device(device)
    data = on_device(context.data, target)
    model = rebuild(bundle).to(target)
    scored = trial_record(trial)
    before = {str(k): float(scored[k]) for k in ("val_auc", "val_acc")}
    logger.info("refining trial %d for %d epochs on %s ...", number, epochs, target.type)
    start = time.perf_counter()
    config = context.config
    model, scores, best = refine_model(
        model,
        context.teacher.to(target),
        data,
        epochs=epochs,
        batch_size=config.batch_size,
        lr=config.lr / 2,
        seed=config.seed + number,
    )
    refined: dict[str, Any] = {
        "epochs": epochs,
        "best_epoch": best,
        "val_auc": round(scores.val_auc, 6),
        "val_acc": round(scores.val_acc, 6),
    }
    onnx = None
    precision = precision_of(scored)
    if precision is not FP32:  # deployed converted: converted again, and scored as that
        converted, record = convert(model, precision, study_calibration(config, data), data)
        if converted.changed:
            onnx = converted.data
            refined.update(fp32_val_auc=refined["val_auc"], fp32_val_acc=refined["val_acc"])
        refined.update({k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()})
    refined["seconds"] = round(time.perf_counter() - start, 1)
    refined["when"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stored = save_refined(ref, number, model.cpu(), bundle.blueprint(), refined, onnx)
    return Refined(number, epochs, best, before, stored)


LOOK_FIRST_AT = (1 / 4, 1 / 10, 1 / 30)
"""FLOPs shares a user weighs first, after the smallest member near the teacher's AUC."""


def first_looks(front: Front, count: int) -> list[int]:
    """The `count` front members a user would look at first: the fewest FLOPs within 0.01
    of the teacher's val AUC (what `run` suggests exporting), then the best val AUC at or
    below a quarter, a tenth and a thirtieth of the teacher's FLOPs, then by val AUC."""
    picked: list[int] = []
    near = front.smallest_within(0.01)
    if near is not None:
        picked.append(near.trial)
    for share in LOOK_FIRST_AT:
        under = [m for m in front.members if m.flops_ratio <= share]
        if under:
            picked.append(max(under, key=lambda m: m.val_auc).trial)
    picked += [m.trial for m in sorted(front.members, key=lambda m: -m.val_auc)]
    return list(dict.fromkeys(picked))[:count]
