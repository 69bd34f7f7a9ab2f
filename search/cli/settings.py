"""The one place that documents each study setting: its flag, its argparse options and its
help, grouped as `medslim run --help` and `docs/cli.md` show them. `run` and `sensitivity`
are built from this table, `worker` borrows the entries it shares, `config_from_args` turns
the parsed flags into a `StudyConfig` generically, and `medslim.search.cli.manual` renders
the same table into `docs/cli.md`. Torch-free: `medslim --help` builds it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from medslim.errors import UsageError
from medslim.kinds import (
    CALIBRATIONS,
    OBJECTIVES,
    PRUNING_KINDS,
    QUANTIZE,
    QUANTIZE_MODES,
    QUANTIZE_WEIGHTS,
    TASK_CHOICES,
)
from medslim.objectives.sizes import split_size
from medslim.objectives.windows import PRESETS
from medslim.search.config import (
    DEFAULT_ALLOCATIONS,
    DEFAULT_OBJECTIVES,
    DEFAULT_SAMPLER,
    DEFAULT_SCREEN_MARGIN,
    DEFAULT_STORAGE,
    STORAGE_ENV,
    StudyConfig,
)
from medslim.search.methods import METHODS
from medslim.spaces.allocation import allocation_names
from medslim.spaces.criteria import criterion_names
from medslim.spaces.families import preset_names
from medslim.spaces.sources import source_syntax

DEFAULTS = StudyConfig()
UNSET = object()
"""A `Setting.default` left to the `StudyConfig` field's own default."""


class _Adds(Protocol):
    """A parser or one of its argument groups."""

    def add_argument(self, *flags: str, **options: Any) -> Any: ...


GROUPS = (
    "study and storage",
    "data",
    "model and teacher",
    "search space",
    "training and scoring",
    "objectives and constraints",
    "deployment (ONNX, INT8, latency)",
    "running",
)


@dataclass(frozen=True)
class Setting:
    """One flag of `medslim run`: `name` is its `StudyConfig` field (and argparse dest),
    unless `in_config` is False (a flag of the command, not of the study)."""

    name: str
    group: str
    help: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """argparse keywords besides `default` and `help`: type, choices, metavar, action..."""
    default: Any = UNSET
    convert: Callable[[Any], Any] | None = None
    """The parsed value as the field's value, where argparse's `type` must not do it (an
    error raised here is one line naming the flag, not argparse's)."""
    in_config: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def default_value(self) -> Any:
        if self.default is not UNSET:
            return self.default
        return getattr(DEFAULTS, self.name) if self.in_config else None

    def add_to(self, parser: _Adds, **changes: Any) -> None:
        """Add the flag (`changes` override help, default or argparse options)."""
        keywords = {**self.options, "help": self.help, "default": self.default_value()}
        parser.add_argument(self.flag, **{**keywords, **changes})

    def value(self, args: argparse.Namespace) -> Any:
        raw = getattr(args, self.name)
        return raw if self.convert is None else self.convert(raw)


def names(text: str) -> tuple[str, ...]:
    """A comma-separated flag value as names, blanks dropped."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def json_value(text: str | None) -> Any:
    """`--model-args` as JSON (that it is an object, `StudyConfig` checks)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"--model-args is not valid JSON ({error}): {text}; write e.g. '{{\"width\": 16}}'"
        ) from error


def storage_settings() -> tuple[Setting, ...]:
    """`--storage` and `--study`, shared by every command that opens a study."""
    group = GROUPS[0]
    return (
        Setting(
            "storage",
            group,
            "Optuna storage URL (sqlite:///file.db, postgresql://..., mysql://...) or a "
            f"journal file ending in .log (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE}; "
            "the variable keeps a password out of command lines)",
            default=None,  # filled in by `main` from the environment
        ),
        Setting("study", group, "study name (default: derived from dataset, model, space)"),
    )


def study_settings() -> tuple[Setting, ...]:
    """Every flag of `medslim run` and `medslim sensitivity`, in the order of `--help`.
    Built on each call, so the methods and presets registered by then are named."""
    study, data, model, space, training, objectives, deployment, running = GROUPS
    return (
        *storage_settings(),
        Setting(
            "dataset",
            data,
            "a registered name (see `medslim datasets`), an image folder "
            "(root/<class>/* or root/{train,val,test}/<class>/*), a CSV manifest "
            "(path,label[,split]) or a MedMNIST-layout .npz (default: %(default)s)",
        ),
        Setting(
            "data_dir",
            data,
            "where MedMNIST files and decoded images are cached (default: "
            "$MEDSLIM_DATA_DIR or the user cache)",
        ),
        Setting(
            "size",
            data,
            "image size in pixels: 28, 64, 128 or 224 for MedMNIST+ names (28 or 64 for "
            "3-D ones); folders, CSVs and .npz files are resized; volumes to an N³ cube or to "
            "D,H,W (default: the file's size for .npz and MedMNIST, 224 for image folders and "
            "CSVs, 64³ for NIfTI volumes and DICOM series)",
            {"type": split_size, "metavar": "N or D,H,W"},
        ),
        Setting(
            "window",
            data,
            "how NIfTI and DICOM volumes' intensities become 0-255: LOW,HIGH in HU for CT "
            f"(--window=-160,240), a CT preset ({', '.join(PRESETS)}), or pLOW,pHIGH "
            "per-volume percentiles for MRI (default: p0.5,p99.5)",
            {"metavar": "LOW,HIGH"},
        ),
        Setting(
            "allow_outside_paths",
            data,
            "let a CSV manifest list files outside its own folder (refused by default)",
            {"action": "store_true"},
        ),
        Setting(
            "task",
            data,
            "the task of a folder, CSV or .npz (default: inferred from the labels)",
            {"choices": TASK_CHOICES},
        ),
        Setting(
            "subgroups",
            data,
            "CSV manifest columns that name subgroups of the images (sex, age_band, site): "
            "not labels; pareto and report score teacher and members within each subgroup",
            {"type": names, "metavar": "COLUMN,..."},
        ),
        Setting(
            "channels",
            data,
            "convert every image to grey (1) or RGB (3); needed when files mix both "
            "(default: as the images are)",
            {"type": int, "choices": (1, 3)},
        ),
        Setting(
            "model",
            model,
            f"the teacher: a preset ({', '.join(preset_names())}) or "
            f"{', '.join(source_syntax()[1:])} (see `medslim list`; default: mlp for tabular "
            "data, resnet8 for images on CPU, resnet18 on CUDA)",
        ),
        Setting(
            "model_args",
            model,
            "extra keyword arguments for the model's builder, e.g. '{\"img_size\": 28}'",
            {"metavar": "JSON"},
            convert=json_value,
        ),
        Setting(
            "pretrained",
            model,
            "train the teacher from torchvision's or timm's pretrained weights (downloaded "
            "by the library; offline, pass --teacher instead)",
            {"action": "store_true"},
        ),
        Setting(
            "teacher",
            model,
            "load the teacher's weights from this file instead of training it: a state "
            "dict, also inside {'state_dict': ...} or {'model': ...}, with DataParallel's "
            "'module.' or Lightning's 'model.' prefixes (loaded with weights_only=True)",
        ),
        Setting(
            "ignore_layers",
            space,
            "layers never pruned besides the classifier head, which is found and kept "
            "anyway (module names, globs allowed: 'conv1,layer4.*')",
            {"type": names, "metavar": "NAME,..."},
        ),
        Setting(
            "round_to",
            space,
            "keep channel counts multiples of N (default: 8 on CUDA, 1 on the CPU; 8 "
            "suits most accelerators you may export to)",
            {"type": int, "metavar": "N"},
        ),
        Setting(
            "teacher_epochs",
            model,
            "teacher training epochs (default: 60 tabular; images: 600 optimiser steps' worth, "
            "10 to 100 epochs, with the image recipe: batches of at most 64, random affine "
            "augmentation without flips, label smoothing 0.1, one warm-up epoch, a moving "
            "average of the weights, the epoch whose average has the best val AUC kept)",
            {"type": int},
        ),
        Setting(
            "pruning",
            space,
            "channels removed (smaller model) or weights masked (default: %(default)s)",
            {"choices": PRUNING_KINDS},
        ),
        Setting(
            "criterion",
            space,
            f"importance criterion: {', '.join(criterion_names())}, or `search` "
            "to let each trial choose (default: %(default)s)",
        ),
        Setting(
            "max_ratio",
            space,
            "largest pruning ratio of any group (default: %(default)s)",
            {"type": float},
        ),
        Setting(
            "max_offset",
            space,
            "largest per-group deviation from the trial's global ratio; 0 "
            "searches uniform ratios only (default: %(default)s)",
            {"type": float},
        ),
        Setting(
            "allocations",
            space,
            "how a pruning trial spreads its FLOPs target over the groups, each trial "
            f"choosing one of these: {', '.join(allocation_names())}, or offsets (a global "
            "ratio plus per-group offsets, the space before FLOPs targets) alone (default: "
            f"{','.join(DEFAULT_ALLOCATIONS)}; a resumed study keeps its own)",
            {"type": names, "metavar": "NAME,..."},
        ),
        Setting(
            "candidates",
            space,
            "candidates a pruning trial draws at its target, prunes and scores by the "
            "proxy (batch norm recalibrated, no fine-tuning) before fine-tuning the best; 1: "
            "no screening (default: as many as cost about one fine-tune epoch, 2 to 16; "
            "1 for tabular data)",
            {"type": int, "metavar": "N"},
        ),
        Setting(
            "sparsity_training",
            model,
            "train the teacher further with this group-sparsity penalty before pruning "
            "(kept as its own cached teacher; default: off)",
            {"type": float, "metavar": "LAMBDA"},
        ),
        Setting(
            "refine",
            running,
            "after the trials, refine the K front members a user would look at first "
            "(see `medslim refine`; default: %(default)s)",
            {"type": int, "metavar": "K"},
        ),
        Setting(
            "refine_epochs",
            running,
            "epochs of each --refine (default: 10)",
            {"type": int, "metavar": "E"},
        ),
        Setting(
            "iterative_steps",
            training,
            "prune in K steps with fine-tuning after each (default: %(default)s)",
            {"type": int},
        ),
        Setting(
            "baselines",
            study,
            "uniform-ratio trials enqueued first (default: a quarter of --trials, 2 to 9)",
            {"type": int},
        ),
        Setting(
            "epochs",
            training,
            "fine-tune epochs after each pruning step (default: 3 tabular, 1 images)",
            {"type": int},
        ),
        Setting(
            "method",
            space,
            "what a trial does: "
            + "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values())
            + "; several on one front (prune,lowrank), `all` of them, or `both` (prune and "
            "distill); see `medslim list` (default: %(default)s)",
            {"metavar": "METHOD[,METHOD...]"},
        ),
        Setting(
            "student_epochs",
            training,
            "training epochs of a distilled student (default: 60 tabular, 3 images)",
            {"type": int},
        ),
        Setting(
            "cv",
            training,
            "score each pruning trial by K-fold stratified cross-validation over train+val "
            "instead of the single val split (default: 0, the val split)",
            {"type": int},
        ),
        Setting(
            "screen",
            training,
            "fine-tune a pruned candidate only if no earlier one had fewer FLOPs and a val "
            "AUC more than MARGIN higher right after pruning (default margin with no value: "
            f"{DEFAULT_SCREEN_MARGIN}); stopped candidates are PRUNED trials and do not count "
            "as trials",
            {"type": float, "nargs": "?", "const": DEFAULT_SCREEN_MARGIN, "metavar": "MARGIN"},
        ),
        Setting(
            "sensitivity_drop",
            space,
            "cap each group's ratio at the largest one whose val AUC drop, pruned alone "
            "without fine-tuning, stays within this (see `medslim sensitivity`)",
            {"type": float},
        ),
        Setting(
            "kd",
            training,
            "fine-tune pruned models on the teacher's soft labels too (default: on for "
            "images without --cv, where it measured best in benchmarks/front_quality.py; off "
            "for tabular data)",
            {"action": argparse.BooleanOptionalAction},
        ),
        Setting(
            "batch_size",
            training,
            "training batch size of the teacher and the trials (default: %(default)s)",
            {"type": int},
        ),
        Setting(
            "lr",
            model,
            "teacher learning rate; fine-tuning uses half (default: %(default)s)",
            {"type": float},
        ),
        Setting(
            "objectives",
            objectives,
            f"comma-separated subset of {', '.join(OBJECTIVES)}; size_bytes (the ONNX "
            "file) and latency_ms (onnxruntime, batch 1) are measured on this machine "
            "(default: %(default)s)",
            {"type": names},
            default=",".join(DEFAULT_OBJECTIVES),  # argparse applies `type` to it
        ),
        Setting(
            "max_flops",
            objectives,
            "constraint: a number <= 1 is a fraction of the teacher's FLOPs, "
            "above 1 an absolute FLOPs count",
            {"type": float},
        ),
        Setting("min_auc", objectives, "constraint: smallest acceptable val AUC", {"type": float}),
        *deployment_settings(deployment),
        Setting(
            "accept",
            objectives,
            "acceptance criteria, fixed in the study when it is made (before the test split "
            "is read): the paired difference to the teacher each metric may reach at worst, "
            "sign written, e.g. auc=-0.01,sensitivity@spec0.90=-0.03,ece=+0.02,"
            "auc@severity3=-0.05 (metrics: auc, acc, sensitivity, specificity [@specX / "
            "@sensX], ece, kappa (ordinal), flips; @severityN: every corruption at severity "
            "N); pareto, report and the model card judge by them",
            {"metavar": "CRITERIA"},
        ),
        Setting(
            "sampler",
            study,
            "an Optuna sampler by name, see `medslim list` (default: "
            f"{DEFAULT_SAMPLER}; a resumed study keeps its own)",
        ),
        Setting(
            "seed",
            study,
            "seed of the data split, the teacher, the sampler and each trial's training "
            "(default: %(default)s)",
            {"type": int},
        ),
        Setting(
            "trials",
            study,
            "finished trials the study should hold; a re-run continues up to "
            "this number (default: 200 tabular, 30 images)",
            {"type": int},
        ),
        Setting(
            "device",
            running,
            "auto, cpu or cuda; on CUDA training runs in bf16 autocast with channels-last "
            "batches and cuDNN autotuning off, as each pruned model has new shapes (default: "
            "auto)",
        ),
        Setting(
            "force_config",
            study,
            "continue an existing study even though its stored config differs (never with another "
            "--model, --model-args or --teacher: a study keeps its teacher)",
            {"action": "store_true"},
        ),
        quiet_setting(),
        Setting(
            "workers",
            running,
            "worker processes on this machine, each with its share of the cores as torch threads "
            "(default: %(default)s)",
            {"type": int},
        ),
        heartbeat_setting(),
        Setting(
            "artifacts",
            study,
            "where the study keeps trial models, the teacher and its logits, for every "
            "machine: a folder (shared by the machines) or s3://bucket/prefix (endpoint and "
            "credentials from the AWS environment variables); chosen when the study is made "
            "(default: .medslim/artifacts beside a SQLite or journal file, else this "
            "machine's cache)",
            {"metavar": "URL"},
        ),
    )


def deployment_settings(group: str) -> tuple[Setting, ...]:
    """Quantization and the measured objectives (onnxruntime, the onnx extra)."""
    return (
        Setting(
            "quantize",
            group,
            "after fine-tuning, quantize each trial's ONNX model to INT8 with onnxruntime "
            "(static QDQ, calibrated on a seeded sample of train) and score it as that file "
            "on val; `search`: each trial chooses fp32 or int8 (default: %(default)s)",
            {"choices": QUANTIZE},
        ),
        Setting(
            "quantize_mode",
            group,
            "static (weights and activations int8) or dynamic (activations quantized at "
            "run time; for MLPs) (default: %(default)s)",
            {"choices": QUANTIZE_MODES},
        ),
        Setting(
            "quantize_weights",
            group,
            "int8 weights with a scale per output channel or one per tensor; per-tensor "
            "keeps accuracy on some CNNs (default: %(default)s)",
            {"choices": QUANTIZE_WEIGHTS},
        ),
        Setting(
            "calibration",
            group,
            "training images that calibrate the activations' int8 ranges (default: %(default)s)",
            {"type": int, "metavar": "N"},
        ),
        Setting(
            "calibration_method",
            group,
            "how the ranges are calibrated (default: %(default)s)",
            {"choices": CALIBRATIONS},
        ),
        Setting(
            "max_size",
            group,
            "constraint: a number <= 1 is a share of the teacher's ONNX file, above 1 bytes",
            {"type": float},
        ),
        Setting(
            "max_latency",
            group,
            "constraint: a number <= 1 is a share of the teacher's latency (measured beside "
            "each trial), above 1 milliseconds (batch 1, onnxruntime)",
            {"type": float},
        ),
        Setting(
            "latency_batch",
            group,
            "the batch measured besides batch 1 (default: %(default)s)",
            {"type": int, "metavar": "N"},
        ),
        Setting(
            "latency_rounds",
            group,
            "timed runs of the teacher and the trial's model in turns, after warm-up; the "
            "median after outlier rejection is kept (default: %(default)s)",
            {"type": int, "metavar": "N"},
        ),
        Setting(
            "latency_threads",
            group,
            "onnxruntime threads latency is measured on (default: %(default)s)",
            {"type": int, "metavar": "N"},
        ),
    )


def quiet_setting() -> Setting:
    return Setting(
        "no_progress",
        GROUPS[-1],
        "no progress bar and no log lines (the bar shows only on a terminal anyway)",
        {"action": "store_true"},
        default=False,
        in_config=False,
    )


def heartbeat_setting() -> Setting:
    return Setting(
        "heartbeat",
        GROUPS[-1],
        "seconds between a running trial's heartbeats on an RDB storage; a trial "
        "silent for three is failed and retried (default: %(default)s)",
        {"type": int},
    )


def add_settings(parser: argparse.ArgumentParser, settings: tuple[Setting, ...]) -> None:
    """The settings as flags, in argument groups titled by `Setting.group`."""
    groups = {title: parser.add_argument_group(title) for title in GROUPS}
    for setting in settings:
        setting.add_to(groups[setting.group])


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """The flags as a `StudyConfig`: every study setting is one of its fields."""
    values = {s.name: s.value(args) for s in study_settings() if s.in_config}
    return StudyConfig(**values)
