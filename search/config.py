"""One frozen `StudyConfig` per study: built once from the CLI, stored in the study, and
compared on resume so every worker optimises the same thing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from spaces.errors import UsageError

OBJECTIVES = {"val_auc": "maximize", "val_acc": "maximize", "flops": "minimize"}
DEFAULT_OBJECTIVES = ("val_auc", "val_acc", "flops")
METHODS = ("prune", "distill", "both")

# Settings that do not change what a trial computes, so they may differ between runs.
RUN_ONLY = frozenset(
    {"trials", "storage", "study", "device", "workers", "heartbeat", "data_dir", "force_config"}
)


@dataclass(frozen=True)
class StudyConfig:
    dataset: str = "breast-cancer"
    data_dir: str | None = None
    model: str | None = None
    teacher: str | None = None
    teacher_epochs: int | None = None
    pruning: str = "structured"
    criterion: str = "l1"
    max_ratio: float = 0.9
    max_offset: float = 0.2
    iterative_steps: int = 1
    baselines: int = 9
    method: str = "prune"
    kd: bool | None = None  # None: on for images (without --cv), off for tabular data
    epochs: int | None = None
    student_epochs: int | None = None
    batch_size: int = 128
    lr: float = 2e-3
    cv: int = 0
    sensitivity_drop: float | None = None
    screen: float | None = None
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    max_flops: float | None = None
    min_auc: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    trials: int | None = None
    storage: str = "sqlite:///medslim.db"
    study: str | None = None
    device: str = "auto"
    workers: int = 1
    heartbeat: int = 10
    force_config: bool = False

    def __post_init__(self) -> None:
        if self.trials is not None and self.trials <= 0:
            raise UsageError(f"--trials must be a positive number, got {self.trials}")
        if self.workers < 1:
            raise UsageError(f"--workers must be 1 or more, got {self.workers}")
        if self.workers > 1 and self.storage in ("sqlite://", "sqlite:///:memory:"):
            raise UsageError(
                f"--storage {self.storage} lives in one process's memory and cannot be shared "
                "by workers; use a file (sqlite:///medslim.db), PostgreSQL or a journal file"
            )
        if self.heartbeat < 1:
            raise UsageError(f"--heartbeat must be 1 second or more, got {self.heartbeat}")
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives:
            raise UsageError(
                f"unknown objective(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(OBJECTIVES)}"
            )
        if len(set(self.objectives)) != len(self.objectives):
            raise UsageError(f"--objectives lists one twice: {','.join(self.objectives)}")
        if self.cv == 1 or self.cv < 0:
            raise UsageError(
                f"--cv needs 2 or more folds (0: the single val split), got {self.cv}"
            )
        if self.cv and (self.method != "prune" or self.kd):
            raise UsageError(
                "--cv scores pruning trials only (the teacher's cached soft labels follow the "
                "fixed train split); drop --cv, or use --method prune without --kd"
            )
        if self.screen is not None and not 0.0 <= self.screen <= 1.0:
            raise UsageError(f"--screen margin must be in [0, 1], got {self.screen}")
        if self.screen is not None and (self.cv or self.method == "distill"):
            raise UsageError(
                "--screen looks at pruned candidates on the single val split; it works "
                "with neither --cv nor --method distill"
            )
        if self.sensitivity_drop is not None and not 0.0 <= self.sensitivity_drop <= 1.0:
            raise UsageError(f"--sensitivity-drop must be in [0, 1], got {self.sensitivity_drop}")
        if self.method not in METHODS:
            raise UsageError(f"unknown --method {self.method!r}; use one of {', '.join(METHODS)}")
        for name in ("epochs", "teacher_epochs", "student_epochs"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more, got {value}")
        if self.batch_size <= 0:
            raise UsageError(f"--batch-size must be positive, got {self.batch_size}")
        if self.max_flops is not None and self.max_flops <= 0:
            raise UsageError(f"--max-flops must be positive, got {self.max_flops}")
        if self.min_auc is not None and not 0.0 <= self.min_auc <= 1.0:
            raise UsageError(f"--min-auc must be in [0, 1], got {self.min_auc}")

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]

    def with_overrides(self, **changes: Any) -> StudyConfig:
        return replace(self, **changes)

    def stored(self) -> dict[str, Any]:
        """What the study keeps: everything that changes what a trial computes."""
        data = asdict(self)
        for key in RUN_ONLY:
            data.pop(key, None)
        data["objectives"] = list(self.objectives)
        if self.teacher is not None:
            data["teacher"] = str(Path(self.teacher).resolve())
        return data

    def default_study_name(self) -> str:
        stem = Path(self.dataset).stem if self.dataset.endswith(".npz") else self.dataset
        digest = hashlib.sha256(json.dumps(self.stored(), sort_keys=True).encode()).hexdigest()
        space = self.pruning if self.method == "prune" else self.method
        return f"{stem}-{self.model}-{space}-{digest[:6]}"

    @classmethod
    def from_stored(cls, stored: dict[str, Any], **run_settings: Any) -> StudyConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in stored.items() if k in known}
        values["objectives"] = tuple(values.get("objectives", DEFAULT_OBJECTIVES))
        return cls(**values, **run_settings)


def config_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Human-readable `key: stored → wanted` lines for settings that differ."""
    keys = sorted(set(stored) | set(wanted))
    return [
        f"{k}: {stored.get(k)!r} → {wanted.get(k)!r}"
        for k in keys
        if stored.get(k) != wanted.get(k)
    ]
