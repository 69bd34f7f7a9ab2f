"""`medslim run`, `worker` and `sensitivity`: the flags of a study, and thin handlers over
`medslim.search.api` and `medslim.search.workers`. Nothing heavy is imported until a
handler runs."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

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
from medslim.search import signals
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

logger = logging.getLogger("medslim")
DEFAULTS = StudyConfig()


def add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (sqlite:///file.db, postgresql://..., mysql://...) or a "
        f"journal file ending in .log (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE}; the "
        "variable keeps a password out of command lines)",
    )
    parser.add_argument("--study", help="study name (default: derived from dataset, model, space)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage(parser)
    parser.add_argument(
        "--dataset",
        default=DEFAULTS.dataset,
        help="a registered name (see `medslim datasets`), an image folder "
        "(root/<class>/* or root/{train,val,test}/<class>/*), a CSV manifest "
        "(path,label[,split]) or a MedMNIST-layout .npz (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        help="where MedMNIST files and decoded images are cached (default: "
        "$MEDSLIM_DATA_DIR or the user cache)",
    )
    parser.add_argument(
        "--size",
        type=split_size,
        metavar="N or D,H,W",
        help="image size in pixels: 28, 64, 128 or 224 for MedMNIST+ names (28 or 64 for "
        "3-D ones); folders, CSVs and .npz files are resized; volumes to an N³ cube or to "
        "D,H,W (default: the file's size for .npz and MedMNIST, 224 for image folders and "
        "CSVs, 64³ for NIfTI volumes and DICOM series)",
    )
    parser.add_argument(
        "--window",
        metavar="LOW,HIGH",
        help="how NIfTI and DICOM volumes' intensities become 0-255: LOW,HIGH in HU for CT "
        f"(--window=-160,240), a CT preset ({', '.join(PRESETS)}), or pLOW,pHIGH per-volume "
        "percentiles for MRI (default: p0.5,p99.5)",
    )
    parser.add_argument(
        "--allow-outside-paths",
        action="store_true",
        help="let a CSV manifest list files outside its own folder (refused by default)",
    )
    parser.add_argument(
        "--task",
        choices=TASK_CHOICES,
        help="the task of a folder, CSV or .npz (default: inferred from the labels)",
    )
    parser.add_argument(
        "--subgroups",
        type=_names,
        default=DEFAULTS.subgroups,
        metavar="COLUMN,...",
        help="CSV manifest columns that name subgroups of the images (sex, age_band, site): "
        "not labels; pareto and report score teacher and members within each subgroup",
    )
    parser.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        help="convert every image to grey (1) or RGB (3); needed when files mix both "
        "(default: as the images are)",
    )
    parser.add_argument(
        "--model",
        help=f"the teacher: a preset ({', '.join(preset_names())}) or "
        f"{', '.join(source_syntax()[1:])} (see `medslim list`; default: mlp for tabular "
        "data, resnet8 for images on CPU, resnet18 on CUDA)",
    )
    parser.add_argument(
        "--model-args",
        metavar="JSON",
        help="extra keyword arguments for the model's builder, e.g. '{\"img_size\": 28}'",
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="train the teacher from torchvision's or timm's pretrained weights (downloaded "
        "by the library; offline, pass --teacher instead)",
    )
    parser.add_argument(
        "--teacher",
        help="load the teacher's weights from this file instead of training it: a state "
        "dict, also inside {'state_dict': ...} or {'model': ...}, with DataParallel's "
        "'module.' or Lightning's 'model.' prefixes (loaded with weights_only=True)",
    )
    parser.add_argument(
        "--ignore-layers",
        type=_names,
        default=DEFAULTS.ignore_layers,
        metavar="NAME,...",
        help="layers never pruned besides the classifier head, which is found and kept "
        "anyway (module names, globs allowed: 'conv1,layer4.*')",
    )
    parser.add_argument(
        "--round-to",
        type=int,
        metavar="N",
        help="keep channel counts multiples of N (default: 8 on CUDA, 1 on the CPU; 8 "
        "suits most accelerators you may export to)",
    )
    parser.add_argument(
        "--teacher-epochs",
        type=int,
        help="teacher training epochs (default: 60 tabular, 10 images)",
    )
    parser.add_argument(
        "--pruning",
        default=DEFAULTS.pruning,
        choices=PRUNING_KINDS,
        help="channels removed (smaller model) or weights masked (default: %(default)s)",
    )
    parser.add_argument(
        "--criterion",
        default=DEFAULTS.criterion,
        help=f"importance criterion: {', '.join(criterion_names())}, or `search` "
        "to let each trial choose (default: %(default)s)",
    )
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=DEFAULTS.max_ratio,
        help="largest pruning ratio of any group (default: %(default)s)",
    )
    parser.add_argument(
        "--max-offset",
        type=float,
        default=DEFAULTS.max_offset,
        help="largest per-group deviation from the trial's global ratio; 0 "
        "searches uniform ratios only (default: %(default)s)",
    )
    parser.add_argument(
        "--allocations",
        type=_names,
        metavar="NAME,...",
        help="how a pruning trial spreads its FLOPs target over the groups, each trial "
        f"choosing one of these: {', '.join(allocation_names())}, or offsets (a global "
        "ratio plus per-group offsets, the space before FLOPs targets) alone (default: "
        f"{','.join(DEFAULT_ALLOCATIONS)}; a resumed study keeps its own)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        metavar="N",
        help="candidates a pruning trial draws at its target, prunes and scores by the "
        "proxy (batch norm recalibrated, no fine-tuning) before fine-tuning the best; 1: no "
        "screening (default: as many as cost about one fine-tune epoch, 4 to 16)",
    )
    parser.add_argument(
        "--sparsity-training",
        type=float,
        metavar="LAMBDA",
        help="train the teacher further with this group-sparsity penalty before pruning "
        "(kept as its own cached teacher; default: off)",
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=DEFAULTS.refine,
        metavar="K",
        help="after the trials, refine the K front members a user would look at first "
        "(see `medslim refine`; default: %(default)s)",
    )
    parser.add_argument(
        "--refine-epochs",
        type=int,
        metavar="E",
        help="epochs of each --refine (default: 10)",
    )
    parser.add_argument(
        "--iterative-steps",
        type=int,
        default=DEFAULTS.iterative_steps,
        help="prune in K steps with fine-tuning after each (default: %(default)s)",
    )
    parser.add_argument(
        "--baselines",
        type=int,
        default=DEFAULTS.baselines,
        help="uniform-ratio trials enqueued first (default: a quarter of --trials, 2 to 9)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="fine-tune epochs after each pruning step (default: 3 tabular, 1 images)",
    )
    parser.add_argument(
        "--method",
        default=DEFAULTS.method,
        metavar="METHOD[,METHOD...]",
        help="what a trial does: "
        + "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values())
        + "; several on one front (prune,lowrank), `all` of them, or `both` (prune and "
        "distill); see `medslim list` (default: %(default)s)",
    )
    parser.add_argument(
        "--student-epochs",
        type=int,
        help="training epochs of a distilled student (default: 60 tabular, 3 images)",
    )
    parser.add_argument(
        "--cv",
        type=int,
        default=DEFAULTS.cv,
        help="score each pruning trial by K-fold stratified cross-validation over train+val "
        "instead of the single val split (default: 0, the val split)",
    )
    parser.add_argument(
        "--screen",
        type=float,
        nargs="?",
        const=DEFAULT_SCREEN_MARGIN,
        metavar="MARGIN",
        help="fine-tune a pruned candidate only if no earlier one had fewer FLOPs and a val "
        "AUC more than MARGIN higher right after pruning (default margin with no value: "
        f"{DEFAULT_SCREEN_MARGIN}); stopped candidates are PRUNED trials and do not count "
        "as trials",
    )
    parser.add_argument(
        "--sensitivity-drop",
        type=float,
        help="cap each group's ratio at the largest one whose val AUC drop, pruned alone "
        "without fine-tuning, stays within this (see `medslim sensitivity`)",
    )
    parser.add_argument(
        "--kd",
        action=argparse.BooleanOptionalAction,
        help="fine-tune pruned models on the teacher's soft labels too (default: on for "
        "images without --cv, where it measured best in benchmarks/front_quality.py; off "
        "for tabular data)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument(
        "--lr",
        type=float,
        default=DEFAULTS.lr,
        help="teacher learning rate; fine-tuning uses half (default: %(default)s)",
    )
    parser.add_argument(
        "--objectives",
        default=",".join(DEFAULT_OBJECTIVES),
        help=f"comma-separated subset of {', '.join(OBJECTIVES)}; size_bytes (the ONNX "
        "file) and latency_ms (onnxruntime, batch 1) are measured on this machine (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--max-flops",
        type=float,
        help="constraint: a number <= 1 is a fraction of the teacher's FLOPs, "
        "above 1 an absolute FLOPs count",
    )
    parser.add_argument("--min-auc", type=float, help="constraint: smallest acceptable val AUC")
    add_deployment_arguments(parser)
    parser.add_argument(
        "--accept",
        metavar="CRITERIA",
        help="acceptance criteria, fixed in the study when it is made (before the test split "
        "is read): the paired difference to the teacher each metric may reach at worst, "
        "sign written, e.g. auc=-0.01,sensitivity@spec0.90=-0.03,ece=+0.02,auc@severity3=-0.05 "
        "(metrics: auc, acc, sensitivity, specificity [@specX / @sensX], ece, kappa "
        "(ordinal), flips; @severityN: every corruption at severity N); pareto, report and "
        "the model card judge by them",
    )
    parser.add_argument(
        "--sampler",
        help="an Optuna sampler by name, see `medslim list` (default: "
        f"{DEFAULT_SAMPLER}; a resumed study keeps its own)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument(
        "--trials",
        type=int,
        default=DEFAULTS.trials,
        help="finished trials the study should hold; a re-run continues up to "
        "this number (default: 200 tabular, 30 images)",
    )
    parser.add_argument(
        "--device", default=DEFAULTS.device, help="auto, cpu or cuda (default: auto)"
    )
    parser.add_argument(
        "--force-config",
        action="store_true",
        help="continue an existing study even though its stored config differs",
    )
    add_quiet(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULTS.workers,
        help="worker processes on this machine, sharing its cores (default: %(default)s)",
    )
    add_heartbeat(parser)
    parser.add_argument(
        "--artifacts",
        metavar="URL",
        help="where the study keeps trial models, the teacher and its logits, for every "
        "machine: a folder (shared by the machines) or s3://bucket/prefix (endpoint and "
        "credentials from the AWS environment variables); chosen when the study is made "
        "(default: .medslim/artifacts beside a SQLite or journal file, else this machine's "
        "cache)",
    )


def add_deployment_arguments(parser: argparse.ArgumentParser) -> None:
    """Quantization and the measured objectives (onnxruntime, the onnx extra)."""
    parser.add_argument(
        "--quantize",
        default=DEFAULTS.quantize,
        choices=QUANTIZE,
        help="after fine-tuning, quantize each trial's ONNX model to INT8 with onnxruntime "
        "(static QDQ, calibrated on a seeded sample of train) and score it as that file on "
        "val; `search`: each trial chooses fp32 or int8 (default: %(default)s)",
    )
    parser.add_argument(
        "--quantize-mode",
        default=DEFAULTS.quantize_mode,
        choices=QUANTIZE_MODES,
        help="static (weights and activations int8) or dynamic (activations quantized at "
        "run time; for MLPs) (default: %(default)s)",
    )
    parser.add_argument(
        "--quantize-weights",
        default=DEFAULTS.quantize_weights,
        choices=QUANTIZE_WEIGHTS,
        help="int8 weights with a scale per output channel or one per tensor; per-tensor "
        "keeps accuracy on some CNNs (default: %(default)s)",
    )
    parser.add_argument(
        "--calibration",
        type=int,
        default=DEFAULTS.calibration,
        metavar="N",
        help="training images that calibrate the activations' int8 ranges (default: %(default)s)",
    )
    parser.add_argument(
        "--calibration-method",
        default=DEFAULTS.calibration_method,
        choices=CALIBRATIONS,
        help="how the ranges are calibrated (default: %(default)s)",
    )
    parser.add_argument(
        "--max-size",
        type=float,
        help="constraint: a number <= 1 is a share of the teacher's ONNX file, above 1 bytes",
    )
    parser.add_argument(
        "--max-latency",
        type=float,
        help="constraint: a number <= 1 is a share of the teacher's latency (measured beside "
        "each trial), above 1 milliseconds (batch 1, onnxruntime)",
    )
    parser.add_argument(
        "--latency-batch",
        type=int,
        default=DEFAULTS.latency_batch,
        metavar="N",
        help="the batch measured besides batch 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-rounds",
        type=int,
        default=DEFAULTS.latency_rounds,
        metavar="N",
        help="timed runs of the teacher and the trial's model in turns, after warm-up; the "
        "median after outlier rejection is kept (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-threads",
        type=int,
        default=DEFAULTS.latency_threads,
        metavar="N",
        help="onnxruntime threads latency is measured on (default: %(default)s)",
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar and no log lines (the bar shows only on a terminal anyway)",
    )


def add_heartbeat(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=DEFAULTS.heartbeat,
        help="seconds between a running trial's heartbeats on an RDB storage; a trial "
        "silent for three is failed and retried (default: %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """The flags as a `StudyConfig`: every run flag is one of its fields."""
    return StudyConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        model=args.model,
        teacher=args.teacher,
        teacher_epochs=args.teacher_epochs,
        pruning=args.pruning,
        criterion=args.criterion,
        max_ratio=args.max_ratio,
        max_offset=args.max_offset,
        iterative_steps=args.iterative_steps,
        baselines=args.baselines,
        epochs=args.epochs,
        method=args.method,
        student_epochs=args.student_epochs,
        kd=args.kd,
        cv=args.cv,
        sensitivity_drop=args.sensitivity_drop,
        screen=args.screen,
        batch_size=args.batch_size,
        lr=args.lr,
        objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()),
        max_flops=args.max_flops,
        min_auc=args.min_auc,
        sampler=args.sampler,
        seed=args.seed,
        trials=args.trials,
        storage=args.storage,
        study=args.study,
        device=args.device,
        force_config=args.force_config,
        workers=args.workers,
        heartbeat=args.heartbeat,
        size=args.size,
        window=args.window,
        task=args.task,
        channels=args.channels,
        artifacts=args.artifacts,
        model_args=_json(args.model_args),
        pretrained=args.pretrained,
        ignore_layers=args.ignore_layers,
        round_to=args.round_to,
        allocations=args.allocations,
        candidates=args.candidates,
        sparsity_training=args.sparsity_training,
        refine=args.refine,
        refine_epochs=args.refine_epochs,
        subgroups=args.subgroups,
        accept=args.accept,
        allow_outside_paths=args.allow_outside_paths,
        quantize=args.quantize,
        quantize_mode=args.quantize_mode,
        quantize_weights=args.quantize_weights,
        calibration=args.calibration,
        calibration_method=args.calibration_method,
        latency_batch=args.latency_batch,
        latency_rounds=args.latency_rounds,
        latency_threads=args.latency_threads,
        max_size=args.max_size,
        max_latency=args.max_latency,
    )


def _json(text: str | None) -> Any:
    """`--model-args` as JSON (that it is an object, `StudyConfig` checks)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"--model-args is not valid JSON ({error}): {text}; write e.g. '{{\"width\": 16}}'"
        ) from error


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def cmd_run(args: argparse.Namespace) -> int:
    from medslim.search.api import run
    from medslim.search.inspection.front_table import render_text

    stored = run(config_from_args(args), progress=False if args.no_progress else None)
    front = stored.front()
    print(f"study {front.study}: {front.finished} finished trials")
    print(render_text(stored.table(test=False)))
    pick = front.smallest_within(0.01)
    why = "the fewest FLOPs within 0.01 of the teacher's val AUC"
    if pick is None:
        pick, why = max(front.members, key=lambda m: m.val_auc), "the best val AUC"
    print(next_steps(stored.storage, stored.name, pick.trial, why))
    return 0


def next_steps(storage: str, study: str, trial: int, why: str) -> str:
    """The commands that come after a run, ready to paste (a password masked)."""
    from medslim.search.inspection.commands import location_flags, storage_flag

    url = storage_flag(storage)
    where = location_flags(storage, study)
    return "\n".join(
        [
            "\nnext:",
            f"  medslim pareto{where}   # the front's test scores, 95% intervals",
            f"  medslim report{where} --out report.html",
            f"  medslim export{where} --trial {trial} --format onnx --out model.onnx   # {why}",
            f"  medslim dashboard{url}",
        ]
    )


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage(parser)
    parser.add_argument(
        "--trials", type=int, help="finished trials to reach (default: the run's --trials)"
    )
    parser.add_argument("--device", default=DEFAULTS.device, help="auto, cpu or cuda")
    parser.add_argument(
        "--data-dir", help="where this machine keeps the data (default: the study's)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--seed", type=int, help="sampler seed (default: random per worker)")
    add_quiet(parser)
    # Set by `run --workers`: the parent's pid; the worker stops when that process dies.
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    add_heartbeat(parser)


def cmd_worker(args: argparse.Namespace) -> int:
    if args.parent is not None:
        signals.die_with_parent(args.parent)
    from medslim.search.workers import run_worker

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be 1 or more, got {args.threads}")
    try:
        ran, finished, name = run_worker(
            args.storage,
            args.study,
            trials=args.trials,
            seed=args.seed,
            threads=args.threads,
            device=args.device,
            data_dir=args.data_dir,
            heartbeat=args.heartbeat,
            progress=False if args.no_progress else None,
            managed=args.parent is not None,
        )
    except KeyboardInterrupt:
        if args.parent is not None:  # a managed worker's parent prints the one line
            return signals.exit_code()
        raise
    logger.info("worker ran %d trials; study %s holds %d finished", ran, name, finished)
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """Prune one group at a time, print the AUC-drop curves, keep them in the study."""
    from medslim.search.api import sensitivity
    from medslim.search.sensitivity import format_curves

    config = config_from_args(args)
    analysis = sensitivity(config)
    print(format_curves(analysis.curves, analysis.ceilings))
    print(
        f"curves kept in study {analysis.study.name}; `medslim run` with the same flags "
        "and --sensitivity-drop D caps each group's ratio by them"
    )
    return 0
