"""One frozen `StudyConfig` per study: built once (from CLI flags, a notebook's keyword
arguments or a stored study), stored in the study, and compared on resume so every worker
optimises the same thing. `ResolvedConfig` is the same settings after the data's defaults
are filled in. Torch-free, so the CLI can build one before anything heavy loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from medslim.errors import UsageError
from medslim.kinds import (
    CALIBRATIONS,
    DEPLOYMENT,
    DIRECTIONS,
    OBJECTIVES,
    PRUNING_KINDS,
    QUANTIZE,
    QUANTIZE_MODES,
    QUANTIZE_WEIGHTS,
    TASK_ALIASES,
    TASK_CHOICES,
    TASKS,
    Calibration,
    Direction,
    Objective,
    Pruning,
    Quantize,
    QuantizeMode,
    QuantizeWeights,
    Task,
)
from medslim.objectives.sizes import Size, check_size, size_text
from medslim.objectives.windows import parse_window

DEFAULT_OBJECTIVES: tuple[Objective, ...] = ("val_auc", "val_acc", "flops")
DEFAULT_STORAGE = "sqlite:///medslim.db"
DEFAULT_SCREEN_MARGIN = 0.02
"""`--screen` given without a margin."""
DEFAULT_SAMPLER = "tpe"
DEFAULT_ALLOCATIONS: tuple[str, ...] = ("screened",)
"""A new study's allocations (`benchmarks/search_quality.py` chose them)."""
LEGACY_ALLOCATIONS: tuple[str, ...] = ("offsets",)
"""What studies made before allocations searched: a global ratio plus per-group offsets."""

ConfigT = TypeVar("ConfigT", bound="StudyConfig")

if TYPE_CHECKING:
    from medslim.search.methods import Method

# Settings that do not change what a trial computes, so they may differ between runs.
# (`artifacts` is kept in the study on its own, as the study's store for good; `accept`, the
# acceptance criteria, too: fixed when the study is made, see `search/acceptance.py`;
# `allow_outside_paths` with its data source.)
RUN_ONLY = frozenset(
    {
        *("trials", "storage", "study", "device", "workers", "heartbeat", "data_dir"),
        *("force_config", "artifacts", "refine", "refine_epochs", "accept"),
        "allow_outside_paths",
    }
)
STORAGE_ENV = "MEDSLIM_STORAGE"
"""The storage URL when --storage is not given: keeps a password out of command lines."""


def implied_storage() -> str:
    """The storage a command uses without --storage: `$MEDSLIM_STORAGE`, else the default."""
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


ADDED_LATER: dict[str, Any] = {
    "model_args": None,
    "pretrained": False,
    "ignore_layers": [],
    "round_to": 1,
    "size": None,
    "task": None,
    "channels": None,
    "window": None,
    "allocations": list(LEGACY_ALLOCATIONS),
    "candidates": 1,
    "sparsity_training": None,
    "subgroups": [],
    "quantize": "none",
    "quantize_mode": "static",
    "quantize_weights": "per-channel",
    "calibration": 128,
    "calibration_method": "minmax",
    "latency_batch": 16,
    "latency_rounds": 30,
    "latency_threads": 1,
    "max_size": None,
    "max_latency": None,
}
"""Settings added after studies were first stored, with the value every older study ran
with: an older stored config is read with these filled in, and a setting at this value is
left out of the default study name's digest, so the same flags still find the same study."""
CREATION_ONLY = frozenset({"baselines"})
"""Settings used only when a study is made (the seeds it enqueues): a resumed study may be
run with other values."""
LEGACY_BASELINES = 9
"""The fixed number of baselines before it scaled with the budget; the default (None) is
named as this in the study name's digest, so the default flags find their older study."""
FOLLOW_STUDY = ("allocations", "sampler", "candidates")
"""Settings whose default (None) means the existing study's value, else today's default:
an older study resumes with the space and sampler it has. Left at None, they stay out of
the default study name, so the same flags find the older study."""


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study is run with. `None` means "the default for this data" (filled in
    by `session.resolve_config`) or, for constraints and options, "off"."""

    dataset: str = "breast-cancer"
    data_dir: str | None = None
    model: str | None = None
    teacher: str | None = None
    teacher_epochs: int | None = None
    pruning: Pruning = "structured"
    criterion: str = "l1"
    max_ratio: float = 0.9
    max_offset: float = 0.2
    iterative_steps: int = 1
    baselines: int | None = None  # None: a quarter of the trials, 2 to 9
    method: str = "prune"  # a method, several (a,b), `all`, or `both` (prune,distill)
    kd: bool | None = None  # None: on for images (without --cv), off for tabular data
    epochs: int | None = None
    student_epochs: int | None = None
    batch_size: int = 128
    lr: float = 2e-3
    cv: int = 0
    sensitivity_drop: float | None = None
    screen: float | None = None
    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES
    max_flops: float | None = None
    min_auc: float | None = None
    sampler: str | None = None  # None: the study's own, else DEFAULT_SAMPLER
    seed: int = 0
    trials: int | None = None
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    device: str = "auto"
    workers: int = 1
    heartbeat: int = 10
    force_config: bool = False
    size: Size | None = None  # None: the files' own size (npz), 224 for folders and CSVs, 64³
    # for NIfTI and DICOM volumes; D,H,W (a tuple) for volumes only
    task: Task | None = None  # None: inferred from the labels
    channels: int | None = None  # None: as the images are (mixed files need it)
    artifacts: str | None = None  # the study's artifact store: a folder or s3://bucket/prefix
    model_args: dict[str, Any] | None = None
    pretrained: bool = False
    ignore_layers: tuple[str, ...] = ()
    round_to: int | None = None  # None: 8 on CUDA, 1 on the CPU
    window: str | None = None  # NIfTI/DICOM volumes: None is per-volume percentiles
    allocations: tuple[str, ...] | None = None  # None: the study's own, else the default
    candidates: int | None = None  # None: sized so screening costs about a fine-tune epoch
    sparsity_training: float | None = None
    refine: int = 0
    refine_epochs: int | None = None  # None: REFINE_EPOCHS
    subgroups: tuple[str, ...] = ()  # CSV manifest columns naming subgroups (sex, site, ...)
    accept: str | None = None  # acceptance criteria, e.g. auc=-0.01,ece=+0.02 (see acceptance)
    allow_outside_paths: bool = False  # a CSV may list files outside its folder (kept with
    # the study's data source, not its config: it changes which files may be read, not what)
    quantize: Quantize = "none"  # int8: every trial; search: each trial chooses fp32 or int8
    quantize_mode: QuantizeMode = "static"
    quantize_weights: QuantizeWeights = "per-channel"
    calibration: int = 128  # training images that calibrate the activations' ranges
    calibration_method: Calibration = "minmax"
    latency_batch: int = 16  # measured besides batch 1
    latency_rounds: int = 30
    latency_threads: int = 1
    max_size: float | None = None  # <= 1: a share of the teacher's ONNX file, else bytes
    max_latency: float | None = None  # <= 1: a share of the teacher's latency, else ms

    def __post_init__(self) -> None:
        if self.task in TASK_ALIASES:  # store MedMNIST's name of the task
            object.__setattr__(self, "task", TASK_ALIASES[self.task])
        if isinstance(self.size, list):  # D,H,W read back from a stored config
            object.__setattr__(self, "size", tuple(self.size))
        problems = _problems(self)
        if problems:
            raise UsageError(problems[0])

    @property
    def deploys(self) -> bool:
        """Whether trials export, measure (and maybe quantize) their model in onnxruntime."""
        deployment = set(self.objectives) & set(DEPLOYMENT)
        constrained = self.max_size is not None or self.max_latency is not None
        return self.quantize != "none" or bool(deployment) or constrained

    @property
    def directions(self) -> list[Direction]:
        return [DIRECTIONS[o] for o in self.objectives]

    def with_overrides(self, **changes: Any) -> StudyConfig:
        return replace(self, **changes)

    def stored(self) -> dict[str, Any]:
        """What the study keeps: everything that changes what a trial computes."""
        data = asdict(self)
        for key in RUN_ONLY:
            data.pop(key, None)
        data["objectives"] = list(self.objectives)
        data["ignore_layers"] = list(self.ignore_layers)
        data["size"] = list(self.size) if isinstance(self.size, tuple) else self.size
        if self.allocations is not None:
            data["allocations"] = list(self.allocations)
        data["subgroups"] = list(self.subgroups)
        data["model_args"] = json.loads(json.dumps(self.model_args)) if self.model_args else None
        if self.teacher is not None:
            data["teacher"] = str(Path(self.teacher).resolve())
        if self.dataset_is_path:  # every reader finds it, from any working directory
            data["dataset"] = str(Path(self.dataset).expanduser().resolve())
        if self.model is not None and ":" in self.model:  # a file path is stored absolute
            from medslim.spaces.sources import model_text

            data["model"] = model_text(self.model)
        return data

    @property
    def dataset_is_path(self) -> bool:
        """A file or folder rather than a registered name."""
        path = Path(self.dataset).expanduser()
        return path.suffix.lower() in (".npz", ".csv") or path.exists() or "/" in self.dataset

    def default_study_name(self) -> str:
        stem = Path(self.dataset).stem if self.dataset_is_path else self.dataset
        if self.size is not None:
            stem = f"{stem}-{size_text(self.size)}px"
        stored = self.stored()
        if stored.get("sampler") is None:
            stored["sampler"] = DEFAULT_SAMPLER  # what every older study stored
        unset = {k for k in FOLLOW_STUDY if stored.get(k) is None}
        named = {
            k: v
            for k, v in stored.items()
            if k not in unset and (k not in ADDED_LATER or ADDED_LATER[k] != v)
        }
        if named.get("baselines") is None:
            named["baselines"] = LEGACY_BASELINES
        digest = hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()
        return f"{stem}-{model_label(str(self.model))}-{self.space_label()}-{digest[:6]}"

    def space_label(self) -> str:
        """What the study searches, in its default name: the pruning kind for pruning
        alone, else the method setting."""
        from medslim.search.methods import get_method, study_methods

        names = study_methods(self.method)
        return get_method(names[0]).study_label(self) if len(names) == 1 else self.method

    @classmethod
    def from_stored(cls: type[ConfigT], stored: dict[str, Any], **run_settings: Any) -> ConfigT:
        """The config a study stores (an older study may lack newer settings: they take their
        defaults), plus this run's settings that are never stored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in completed(stored).items() if k in known}
        values["objectives"] = tuple(values.get("objectives", DEFAULT_OBJECTIVES))
        values["ignore_layers"] = tuple(values.get("ignore_layers", ()))
        if values.get("allocations") is not None:
            values["allocations"] = tuple(values["allocations"])
        values["subgroups"] = tuple(values.get("subgroups", ()))
        return cls(**values, **run_settings)


@dataclass(frozen=True, kw_only=True)
class ResolvedConfig(StudyConfig):
    """A `StudyConfig` with the data's defaults filled in: what a study runs with."""

    model: str
    kd: bool
    epochs: int
    teacher_epochs: int
    student_epochs: int
    trials: int
    study: str
    round_to: int
    sampler: str
    allocations: tuple[str, ...]

    def with_overrides(self, **changes: Any) -> ResolvedConfig:
        return replace(self, **changes)


def _problems(config: StudyConfig) -> list[str]:
    """Every setting a user may get wrong, each a one-line message naming the flag."""
    problems = []
    if config.trials is not None and config.trials <= 0:
        problems.append(f"--trials must be a positive number, got {config.trials}")
    if config.study is not None and not config.study.strip():
        problems.append("--study must be a non-empty name; leave it out for the default name")
    if config.workers < 1:
        problems.append(f"--workers must be 1 or more, got {config.workers}")
    if config.workers > 1 and config.storage in ("sqlite://", "sqlite:///:memory:"):
        problems.append(
            f"--storage {config.storage} lives in one process's memory and cannot be shared "
            "by workers; use a file (sqlite:///medslim.db), PostgreSQL or a journal file"
        )
    if config.heartbeat < 1:
        problems.append(f"--heartbeat must be 1 second or more, got {config.heartbeat}")
    unknown = [o for o in config.objectives if o not in OBJECTIVES]
    if unknown or not config.objectives:
        problems.append(
            f"unknown objective(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(OBJECTIVES)}"
        )
    if len(set(config.objectives)) != len(config.objectives):
        problems.append(f"--objectives lists one twice: {','.join(config.objectives)}")
    methods = _methods(config.method, problems)
    if config.pruning not in PRUNING_KINDS:
        problems.append(
            f"unknown --pruning {config.pruning!r}; use one of {', '.join(PRUNING_KINDS)}"
        )
    if config.cv == 1 or config.cv < 0:
        problems.append(f"--cv needs 2 or more folds (0: the single val split), got {config.cv}")
    if config.cv and (not all(m.cross_validates for m in methods) or config.kd):
        problems.append(
            "--cv scores pruning trials only (the teacher's cached soft labels follow the "
            "fixed train split); drop --cv, or use --method prune without --kd"
        )
    if config.screen is not None and not 0.0 <= config.screen <= 1.0:
        problems.append(f"--screen margin must be in [0, 1], got {config.screen}")
    if config.screen is not None and (config.cv or not any(m.screens for m in methods)):
        problems.append(
            "--screen looks at pruned candidates on the single val split; it works "
            "with neither --cv nor --method distill"
        )
    if config.sensitivity_drop is not None and not 0.0 <= config.sensitivity_drop <= 1.0:
        problems.append(f"--sensitivity-drop must be in [0, 1], got {config.sensitivity_drop}")
    for name in ("epochs", "teacher_epochs", "student_epochs"):
        value = getattr(config, name)
        if value is not None and value < 0:
            problems.append(f"--{name.replace('_', '-')} must be 0 or more, got {value}")
    if config.batch_size <= 0:
        problems.append(f"--batch-size must be positive, got {config.batch_size}")
    if config.lr <= 0:
        problems.append(f"--lr must be positive, got {config.lr}")
    if config.baselines is not None and config.baselines < 0:
        problems.append(f"--baselines must be 0 or more, got {config.baselines}")
    if config.max_flops is not None and config.max_flops <= 0:
        problems.append(f"--max-flops must be positive, got {config.max_flops}")
    if config.min_auc is not None and not 0.0 <= config.min_auc <= 1.0:
        problems.append(f"--min-auc must be in [0, 1], got {config.min_auc}")
    for check in (
        lambda: check_size(config.size, "--size"),
        lambda: parse_window(config.window, "--window"),
    ):
        try:
            check()
        except UsageError as error:
            problems.append(str(error))
    if config.channels not in (None, 1, 3):
        problems.append(f"--channels must be 1 (grey) or 3 (RGB), got {config.channels}")
    if config.task is not None and config.task not in TASKS:
        problems.append(f"unknown --task {config.task!r}; use one of {', '.join(TASK_CHOICES)}")
    if config.round_to is not None and config.round_to < 1:
        problems.append(f"--round-to must be 1 or more, got {config.round_to}")
    if config.allocations is not None:
        problems.extend(_allocation_problems(config.allocations))
        if LEGACY_ALLOCATIONS[0] in config.allocations:
            problems.extend(_target_problems(methods))
    if config.candidates is not None and config.candidates < 1:
        problems.append(
            f"--candidates must be 1 or more (1: no screening), got {config.candidates}"
        )
    if config.sparsity_training is not None and config.sparsity_training <= 0:
        problems.append(
            "--sparsity-training must be a positive penalty weight, got "
            f"{config.sparsity_training}"
        )
    problems.extend(_deployment_problems(config))
    if config.refine < 0:
        problems.append(f"--refine must be 0 or more front members, got {config.refine}")
    if config.refine_epochs is not None and config.refine_epochs < 1:
        problems.append(f"--refine-epochs must be 1 or more, got {config.refine_epochs}")
    if config.accept is not None:
        from medslim.objectives.acceptance import AcceptanceCriteria

        try:
            AcceptanceCriteria.parse(config.accept)
        except UsageError as error:
            problems.append(str(error))
    if len(set(config.subgroups)) != len(config.subgroups):
        problems.append(f"--subgroups lists one twice: {','.join(config.subgroups)}")
    if config.model_args is not None and not _json_object(config.model_args):
        problems.append(
            f'--model-args must be a JSON object ({{"name": value}}), not {config.model_args!r}'
        )
    return problems


def _deployment_problems(config: StudyConfig) -> list[str]:
    problems = []
    choices: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        ("quantize", config.quantize, QUANTIZE),
        ("quantize-mode", config.quantize_mode, QUANTIZE_MODES),
        ("quantize-weights", config.quantize_weights, QUANTIZE_WEIGHTS),
        ("calibration-method", config.calibration_method, CALIBRATIONS),
    )
    for name, value, allowed in choices:
        if value not in allowed:
            problems.append(f"unknown --{name} {value!r}; use one of {', '.join(allowed)}")
    least_values = (
        ("calibration", config.calibration, 1),
        ("latency-batch", config.latency_batch, 1),
        ("latency-rounds", config.latency_rounds, 5),
        ("latency-threads", config.latency_threads, 1),
    )
    for name, number, least in least_values:
        if number < least:
            problems.append(f"--{name} must be {least} or more, got {number}")
    for name, limit in (("max-size", config.max_size), ("max-latency", config.max_latency)):
        if limit is not None and limit <= 0:
            problems.append(f"--{name} must be positive, got {limit}")
    return problems


def _methods(setting: str, problems: list[str]) -> list[Method]:
    """The study's methods, or none with the problem added (an unknown name)."""
    from medslim.search.methods import methods_of

    try:
        return methods_of(setting)
    except UsageError as error:
        problems.append(f"--method: {error}, all, both, or several separated by commas")
        return []


def _target_problems(methods: list[Method]) -> list[str]:
    """Methods whose trials choose a FLOPs target, which a study of offsets has not."""
    needing = [m.name for m in methods if m.needs_targets]
    if not needing:
        return []
    return [
        f"--method {','.join(needing)} trials choose a FLOPs target, which --allocations "
        "offsets has not: choose other allocations"
    ]


def _allocation_problems(allocations: tuple[str, ...]) -> list[str]:
    from medslim.spaces.allocation import allocation_names

    known = [*allocation_names(), *LEGACY_ALLOCATIONS]
    unknown = [a for a in allocations if a not in known]
    if unknown or not allocations:
        return [
            f"unknown allocation(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}"
        ]
    if len(set(allocations)) != len(allocations):
        return [f"--allocations lists one twice: {','.join(allocations)}"]
    if LEGACY_ALLOCATIONS[0] in allocations and len(allocations) > 1:
        return [
            "--allocations offsets (a global ratio plus per-group offsets, without a FLOPs "
            "target) cannot be mixed with the others; give it alone"
        ]
    return []


def follow_study(
    config: StudyConfig, resolved: ResolvedConfig, stored: dict[str, Any] | None
) -> ResolvedConfig:
    """The `FOLLOW_STUDY` settings a user left at None take the existing study's values."""
    if stored is None:
        return resolved
    kept = completed(stored)
    changes = {
        name: tuple(kept[name]) if isinstance(kept[name], list) else kept[name]
        for name in FOLLOW_STUDY
        if getattr(config, name) is None and name in kept
    }
    return resolved.with_overrides(**changes)


def model_label(model: str) -> str:
    """A `--model` value as a short name part: `torchvision-resnet18`, `nets.build` for
    `path/to/nets.py:build`."""
    where, _, function = model.rpartition(":")
    if where.endswith(".py"):
        model = f"{Path(where).stem}.{function}"
    return re.sub(r"[^A-Za-z0-9_.]+", "-", model)


def _json_object(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, dict)


def completed(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the settings it predates filled in (`ADDED_LATER`)."""
    return {**ADDED_LATER, **stored}


def config_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Human-readable `key: stored → wanted` lines for settings that differ (an older
    study's missing settings count as the value it ran with)."""
    stored = completed(stored)
    keys = sorted((set(stored) | set(wanted)) - CREATION_ONLY)
    return [
        f"{k}: {stored.get(k)!r} → {wanted.get(k)!r}"
        for k in keys
        if stored.get(k) != wanted.get(k)
    ]
