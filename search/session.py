"""Prepare a study: resolve the config against the data, get the teacher, open or resume
the Optuna study, and enqueue its seeds (uniform baselines, scaled-down students).

Everything that can fail on bad input runs before the study is made, except the teacher's
training: the study is made and claimed first, so that a second first run waits for this
teacher instead of training it again, and deleted again if the setup fails. A refused run
leaves no half-made study behind, and no storage file it created.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import BaseStorage
from torch import nn

from medslim.errors import TrainingDiverged, UsageError
from medslim.kinds import DEPLOYMENT, KIND_NAMES, DataKind
from medslim.objectives import memory, recipes
from medslim.objectives.checkpoints import load_weights
from medslim.objectives.data import Dataset, ShapeCheck
from medslim.objectives.evaluate import Budget, Scores, score_model
from medslim.objectives.footprint import check_fits
from medslim.objectives.onnx_models import require_onnx
from medslim.objectives.recipes import default_teacher_epochs
from medslim.objectives.sensitivity import DEFAULT_RATIOS, ceilings_from_curves
from medslim.objectives.teacher import SparsityTraining, TeacherScores
from medslim.objectives.training import Recipe
from medslim.search.acceptance import check_accept, check_criteria, fix_criteria
from medslim.search.artifacts import Artifacts, chosen_artifacts
from medslim.search.config import (
    DEFAULT_ALLOCATIONS,
    DEFAULT_SAMPLER,
    FOLLOW_STUDY,
    ResolvedConfig,
    StudyConfig,
    config_differences,
    follow_study,
)
from medslim.search.datasource import check_same_data, describe, load_study_data
from medslim.search.joining import choose_sampler_seed, find_study, open_or_make, setting_up
from medslim.search.methods import METHOD_PARAM, Seed, SeedContext, methods_of, study_methods
from medslim.search.methods.precision import alternate
from medslim.search.progress import teacher_progress
from medslim.search.pruning_trials import StudyAllocations, allocation_basis, study_allocations
from medslim.search.samplers import make_sampler
from medslim.search.sensitivity import study_curves
from medslim.search.storage import (
    check_storage_url,
    display_url,
    open_storage,
    removed_if_refused,
    storage_dir,
)
from medslim.search.study_format import (
    ARTIFACTS_ATTR,
    CONFIG_ATTR,
    DATASET_ATTR,
    OFFSET_PREFIX_ATTR,
    TEACHER_ATTR,
    UNITS_ATTR,
    stored_config,
    stored_dataset,
    stored_offset_prefix,
    stored_teacher,
    study_attrs,
)
from medslim.search.study_teacher import (
    FINGERPRINT,
    StudyTeacher,
    TeacherSource,
    describe_teacher,
    obtain_study_teacher,
    publish_teacher,
)
from medslim.search.teacher_files import study_teacher_file
from medslim.spaces.blueprints import Blueprint, blueprint_for, input_kind
from medslim.spaces.graphs import matching_modules
from medslim.spaces.sparsity import OFFSET_PREFIX, SparsitySpace, prunable_units

logger = logging.getLogger(__name__)

# Per data kind: (trials, fine-tune epochs per step); about a minute on a 2-core CPU for
# the tabular default, a few minutes for a 28-px image dataset. Teacher epochs follow from
# the data's size (`objectives.recipes`).
DATA_DEFAULTS: dict[DataKind, tuple[int, int]] = {
    "tabular": (200, 3),
    "image": (30, 1),
    "volume": (20, 1),
}
# Students start from scratch, so they train longer than a pruned model's fine-tuning.
# Measured: a resnet 8-16-32 student (6% of resnet8's FLOPs) reaches val AUC 0.990 on
# PneumoniaMNIST in 3 epochs; an MLP 32-16-8 on breast-cancer 0.997 at 30, 0.999 at 60.
STUDENT_EPOCHS: dict[DataKind, int] = {"tabular": 60, "image": 3, "volume": 3}
DEFAULT_MODELS: dict[DataKind, tuple[str, str]] = {
    "tabular": ("mlp", "mlp"),
    "image": ("resnet8", "resnet18"),
    "volume": ("resnet3d8", "resnet3d18"),
}
"""The teacher per data kind when --model is not given: (on the CPU, on CUDA)."""


@dataclass
class Session:
    """Everything a study's trials share, built once per process."""

    config: ResolvedConfig
    data: Dataset
    device: torch.device
    teacher: nn.Module
    teacher_blueprint: Blueprint
    teacher_scores: TeacherScores
    teacher_flops: int
    unit_names: list[str]
    study: optuna.Study
    storage: BaseStorage
    artifacts: Artifacts
    space: SparsitySpace
    sampler_seed: int
    allocations: StudyAllocations | None = None
    """What pruning trials share in a space of FLOPs targets (None: offsets)."""

    @property
    def files_dir(self) -> Path:
        """Where the study's files (teachers, logits) live: beside the storage."""
        return storage_dir(self.config.storage)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here")
    return torch.device(name)


def on_device(data: Dataset, device: torch.device) -> Dataset:
    """The same dataset with its batches computed on `device` (see `Split.to`)."""
    if device.type == "cpu":
        return data
    return replace(
        data, train=data.train.to(device), val=data.val.to(device), test=data.test.to(device)
    )


def resolve_config(config: StudyConfig, data: Dataset, device: torch.device) -> ResolvedConfig:
    """Fill what follows the data: the model family, the epoch defaults, the study name."""
    model = config.model or default_model(data.kind, device)
    kind = input_kind(blueprint_for(model, config.model_args, data.input_shape, data.n_outputs))
    if kind is not None and kind != data.kind:
        cpu_default = DEFAULT_MODELS[data.kind][0]
        raise UsageError(
            f"model {model!r} takes {KIND_NAMES[kind]}, but {config.dataset!r} holds "
            f"{KIND_NAMES[data.kind]}; pick a model for them (e.g. --model {cpu_default})"
        )
    trials, epochs = DATA_DEFAULTS[data.kind]
    teacher_epochs = default_teacher_epochs(data.kind, len(data.train), config.batch_size)
    filled = config.with_overrides(
        model=model,
        kd=default_kd(config, data.kind) if config.kd is None else config.kd,
        trials=trials if config.trials is None else config.trials,
        epochs=epochs if config.epochs is None else config.epochs,
        teacher_epochs=teacher_epochs if config.teacher_epochs is None else config.teacher_epochs,
        student_epochs=(
            STUDENT_EPOCHS[data.kind] if config.student_epochs is None else config.student_epochs
        ),
        round_to=default_round_to(device) if config.round_to is None else config.round_to,
        sampler=DEFAULT_SAMPLER if config.sampler is None else config.sampler,
        allocations=DEFAULT_ALLOCATIONS if config.allocations is None else config.allocations,
    )
    # Named by the follow-the-study settings as given, so the same flags find an older study.
    as_given = filled.with_overrides(**{name: getattr(config, name) for name in FOLLOW_STUDY})
    study = config.study or as_given.default_study_name()
    return ResolvedConfig(**{**asdict(filled), "study": study})


def default_model(kind: DataKind, device: torch.device) -> str:
    """The teacher `DEFAULT_MODELS` names for the data's kind and the device."""
    return DEFAULT_MODELS[kind][device.type == "cuda"]


def fits_here(config: StudyConfig, device: torch.device) -> ShapeCheck:
    """Before any image is decoded: refuse a size whose decoded images or whose model's
    training step will not fit this machine (`footprint.check_fits`). Volumes are held to a
    batch of two here: `fitting_batch` lowers their batch size, saying so, once loaded."""

    def check(images: int, shape: tuple[int, ...], outputs: int, decoded_to: Path | None) -> None:
        kind: DataKind = "volume" if len(shape) == 4 else "image"
        model = config.model or default_model(kind, device)
        blueprint = blueprint_for(model, config.model_args, shape, outputs)
        batch = min(config.batch_size, 2) if kind == "volume" else config.batch_size
        check_fits(blueprint, images, batch, device, decoded_to, name=model)

    return check


def default_kd(config: StudyConfig, kind: DataKind) -> bool:
    """Soft labels in the fine-tuning of pruned image models: on BreastMNIST (3 seeds) they
    lifted the search from 0.99× to 1.03× the uniform sweep's hypervolume, and on
    PneumoniaMNIST cut the smallest FLOPs ratio at teacher-level AUC from 0.17 to 0.12
    (benchmarks/front_quality.py, 40 trials). `--cv` folds cannot reuse the cached soft
    labels, and distilled students have their own loss."""
    derived = any(m.derives for m in methods_of(config.method))
    return kind != "tabular" and not config.cv and derived


def default_round_to(device: torch.device) -> int:
    """Channel counts in multiples of 8 on a GPU (tensor cores), unrounded on the CPU."""
    return 8 if device.type == "cuda" else 1


def sparsity_space(config: StudyConfig) -> SparsitySpace:
    return SparsitySpace(
        pruning=config.pruning,
        max_ratio=config.max_ratio,
        max_offset=config.max_offset,
        criterion=None if config.criterion == "search" else config.criterion,
        iterative_steps=config.iterative_steps,
        ignore_layers=config.ignore_layers,
        round_to=config.round_to or 1,
        allocations=config.allocations or DEFAULT_ALLOCATIONS,
    )


def budget_for(config: ResolvedConfig) -> Budget:
    recipe = Recipe(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr / 2)
    return Budget(finetune=recipe)


def teacher_recipe(config: ResolvedConfig, kind: DataKind) -> Recipe:
    return recipes.teacher_recipe(kind, config.teacher_epochs, config.batch_size, config.lr)


def teacher_source(
    config: ResolvedConfig,
    data: Dataset,
    blueprint: Blueprint,
    files_dir: Path,
    study_attrs: dict[str, Any] | None,
) -> TeacherSource:
    """Where a study's teacher comes from: the --teacher file, else the cache beside the
    storage, where a resumed study (`study_attrs`) keeps the file it recorded."""
    cache_dir = files_dir / "teachers"
    teacher_file = Path(config.teacher) if config.teacher else None
    recorded_file = None
    if teacher_file is None and study_attrs is not None:
        recorded_file = study_teacher_file(cache_dir, study_attrs, data, blueprint)
    sparsity = None
    if config.sparsity_training is not None:
        sparsity = SparsityTraining(config.sparsity_training, teacher_file)
    return TeacherSource(
        data,
        blueprint,
        teacher_recipe(config, data.kind),
        config.seed,
        cache_dir,
        teacher_file,
        recorded_file,
        config.pretrained,
        sparsity,
    )


def prepare(
    config: StudyConfig, *, sampler_seed: int | None = None, progress: bool | None = None
) -> Session:
    """Validate everything before any work, then load data, teacher, and the study.

    The sampler is seeded with `sampler_seed` (a worker's own), else `config.seed`, or a
    fresh seed when other processes are running the study right now. `progress`: the
    teacher's training as a bar (None: on a terminal; elsewhere a log line per epoch)."""
    sampler = make_sampler(config.sampler or DEFAULT_SAMPLER, len(config.objectives), config.seed)
    sparsity_space(config)  # refuses bad pruning flags before any data is loaded
    if config.deploys:
        require_onnx(_deployment_flag(config))
    device = resolve_device(config.device)
    check_storage_url(config.storage)
    data = on_device(load_study_data(config, check=fits_here(config, device)), device)
    check_accept(config.accept, data.task)
    resolved = resolve_config(config, data, device)
    blueprint = blueprint_for(
        resolved.model, resolved.model_args, data.input_shape, data.n_outputs
    )
    teacher_file = Path(resolved.teacher) if resolved.teacher else None
    example = data.train.batch(slice(0, 2))
    probe = _check_model(blueprint, teacher_file, resolved, example)  # before the storage
    resolved = fitting_batch(resolved, probe, data, device)
    with removed_if_refused(resolved.storage):  # a refused run leaves no file behind
        storage = open_storage(resolved.storage, heartbeat=resolved.heartbeat)
        found = find_study(storage, resolved.study)
        existing = None if found is None else stored_config(found)
        resolved = follow_study(config, resolved, existing)
        _check_same_config(existing, resolved)
        space = sparsity_space(resolved)
        if resolved.sensitivity_drop is not None and space.targets:
            raise UsageError(
                "--sensitivity-drop caps the groups of the offsets space; with FLOPs targets, "
                "choose the sensitivity allocation (--allocations sensitivity) instead"
            )
        if found is not None:
            check_same_data(data, stored_dataset(found))
            check_criteria(found, config.accept)
        artifacts = chosen_artifacts(resolved.artifacts, found, resolved.storage)
        attrs = study_attrs(found) if found is not None else None
        source = teacher_source(resolved, data, blueprint, storage_dir(resolved.storage), attrs)
        opened = open_or_make(storage, resolved, sampler, found)  # claimed before the teacher
        study, made, raced = opened
        with setting_up(opened, storage):
            if raced:  # made by another run a moment ago: the same config, its teacher
                _check_same_config(stored_config(study), resolved)
            logger.info("teacher: %s on %s (%s) ...", resolved.model, data.name, device.type)
            teacher = _study_teacher(source, study, artifacts, device, resolved, progress)
            logger.info(describe_teacher(teacher))
            reference = score_model(teacher.model, data, budget_for(resolved))
            units = list(
                prunable_units(teacher.model, example, space.pruning, space.ignore_layers)
            )
            basis = None
            if space.targets and any(m.needs_groups for m in methods_of(resolved.method)):
                basis = allocation_basis(teacher.model, data, space, units)
            if made:
                publish_teacher(study, artifacts, teacher)
                _describe_new_study(study, resolved, data, teacher, reference, units, artifacts)
                context = SeedContext(
                    resolved,
                    data,
                    space,
                    units,
                    basis,
                    teacher.model,
                    blueprint,
                    reference.flops,
                    baseline_count(resolved.baselines, resolved.trials),
                )
                _enqueue(study, study_seeds(context))
                fix_criteria(study, config.accept)  # before any member meets the test split
                study.set_user_attr(CONFIG_ATTR, resolved.stored())  # last: racing runs wait
    if not made:  # an older study keeps the parameter names its trials already have
        space = replace(space, offset_prefix=stored_offset_prefix(study))
        _keep_teacher(study, artifacts, teacher)
        fix_criteria(study, config.accept)
    allocations = None
    if basis is not None:
        allocations = study_allocations(
            study,
            basis,
            teacher.model,
            data,
            space,
            seed=resolved.seed,
            candidates=resolved.candidates,
            epochs=resolved.epochs,
            bn_batches=Budget().bn_batches,
            batch_size=resolved.batch_size,
        )
    seed = choose_sampler_seed(study, resolved, raced) if sampler_seed is None else sampler_seed
    study.sampler = make_sampler(resolved.sampler, len(resolved.objectives), seed)
    logger.info("study %s in %s", study.study_name, display_url(resolved.storage))
    if resolved.sensitivity_drop is not None:
        curves = study_curves(
            study,
            teacher.model,
            data,
            units,
            teacher_auc=teacher.scores.val_auc,
            criterion=space.criterion or "l1",
            pruning=space.pruning,
            seed=resolved.seed,
        )
        floor = min(DEFAULT_RATIOS)
        ceilings = ceilings_from_curves(curves, resolved.sensitivity_drop, floor)
        space = replace(space, ceilings=tuple(ceilings.items()))
    return Session(
        config=resolved,
        data=data,
        device=device,
        teacher=teacher.model,
        teacher_blueprint=blueprint,
        teacher_scores=teacher.scores,
        teacher_flops=reference.flops,
        unit_names=units,
        study=study,
        storage=storage,
        artifacts=artifacts,
        space=space,
        sampler_seed=seed,
        allocations=allocations,
    )


def _deployment_flag(config: StudyConfig) -> str:
    """The setting that makes a study measure in onnxruntime, as the user wrote it."""
    if config.quantize != "none":
        return f"--quantize {config.quantize}"
    asked = [o for o in config.objectives if o in DEPLOYMENT]
    if asked:
        return f"objective {asked[0]}"
    return "--max-size" if config.max_size is not None else "--max-latency"


TEACHER_MODEL_KEYS = ("model", "model_args", "teacher")


def _check_same_config(existing: dict[str, Any] | None, config: ResolvedConfig) -> None:
    """A study continues only with the config it was made with; --force-config lets any
    setting differ but the teacher's model and file (a study keeps its teacher), refused
    before anything is trained."""
    if existing is None:
        return
    stored = config.stored()
    if config.force_config:
        changed = [k for k in TEACHER_MODEL_KEYS if existing.get(k) != stored.get(k)]
        if changed:
            was = ", ".join(f"{k} {existing.get(k)!r}" for k in changed)
            raise UsageError(
                f"study {config.study!r} was made with {was}; a study keeps its teacher, even "
                "with --force-config: use another --study name for another model"
            )
        return
    differences = config_differences(existing, stored)
    if differences:
        raise UsageError(
            f"study {config.study!r} exists with a different config ("
            + "; ".join(differences)
            + "); use another --study name, or --force-config to continue it anyway"
        )


def _study_teacher(
    source: TeacherSource,
    study: optuna.Study | None,
    artifacts: Artifacts,
    device: torch.device,
    config: ResolvedConfig,
    progress: bool | None,
) -> StudyTeacher:
    try:
        with teacher_progress(progress) as report:
            return obtain_study_teacher(source, study, artifacts, device, report=report)
    except TrainingDiverged as error:
        raise UsageError(
            f"the teacher's own training diverged ({error}) at --lr {config.lr:g}; "
            "lower --lr, or pass a trained model with --teacher"
        ) from error


def _keep_teacher(study: optuna.Study, artifacts: Artifacts, teacher: StudyTeacher) -> None:
    """A study made before teachers had fingerprints gets its teacher's (the scores agreed),
    and its store the weights, so that other machines can check and fetch it."""
    record = stored_teacher(study) or {}
    if FINGERPRINT not in record:
        study.set_user_attr(TEACHER_ATTR, {**record, FINGERPRINT: teacher.fingerprint})
    publish_teacher(study, artifacts, teacher)


def _describe_new_study(
    study: optuna.Study,
    config: ResolvedConfig,
    data: Dataset,
    teacher: StudyTeacher,
    reference: Scores,
    units: list[str],
    artifacts: Artifacts,
) -> None:
    """What readers of the study need: its data, teacher, groups and store (the config
    comes last, once the seeds are queued: a run that joins a study being made waits for
    it)."""
    with warnings.catch_warnings():  # experimental in name only; the dashboard reads it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(config.objectives))
    if config.artifacts is not None:  # the default is found from the storage URL
        study.set_user_attr(ARTIFACTS_ATTR, artifacts.url)
    study.set_user_attr(DATASET_ATTR, describe(data, config))
    sizes = {
        "flops": reference.flops,
        "sparse_flops": reference.sparse_flops,
        "params": reference.params,
        "latency_ms": reference.latency_ms,
    }
    study.set_user_attr(TEACHER_ATTR, teacher.record(sizes))
    study.set_user_attr(UNITS_ATTR, units)
    study.set_user_attr(OFFSET_PREFIX_ATTR, OFFSET_PREFIX)


def baseline_count(baselines: int | None, trials: int) -> int:
    """`--baselines`, or by default a quarter of the trials (2 to 9): the uniform sweep
    scales with the budget, so a small study leaves most trials to the search (9 of 16
    used to be baselines)."""
    if baselines is None:
        baselines = min(9, max(2, trials // 4))
    return min(baselines, trials)


def _check_model(
    blueprint: Blueprint,
    teacher_file: Path | None,
    config: ResolvedConfig,
    example: torch.Tensor,
) -> nn.Module:
    """Build the model once (an unknown name, a failing import, a wrong factory, outputs
    that do not fit the data all fail here), check --ignore-layers and the --teacher file,
    fetch --pretrained weights, and run it on a few training images: outputs that are NaN
    before any training are the model's fault, not the learning rate's. All before the
    storage is touched."""
    probe = blueprint.build()
    matching_modules(probe, config.ignore_layers)
    weights = "untrained"
    if teacher_file is not None:
        load_weights(probe, teacher_file, f"--model {config.model}", "teacher")
        weights = f"with the weights of {teacher_file}"
    elif config.pretrained:
        probe = blueprint.build(pretrained=True)  # downloads now, or says to pass --teacher
        weights = "with its pretrained weights"
    with torch.no_grad():
        outputs = probe.eval().to(example.device)(example)
    if not torch.isfinite(outputs).all():
        raise UsageError(
            f"--model {config.model} ({weights}) outputs NaN or infinity on the first "
            f"training images, before any training, so a lower --lr cannot help: check the "
            "model's initialisation and forward pass"
        )
    return probe


def fitting_batch(
    config: ResolvedConfig, model: nn.Module, data: Dataset, device: torch.device
) -> ResolvedConfig:
    """Volumes: the batch size lowered (saying so) to what the teacher's activations leave
    room for on `device`, or a one-line refusal when not even two volumes fit. Images keep
    theirs, as their studies always have."""
    if data.kind != "volume":
        return config
    per_sample = memory.activation_bytes(model, data.input_shape)
    budget = memory.memory_budget(device)
    batch = memory.fitting_batch(per_sample, config.batch_size, budget)
    shape = "×".join(map(str, data.input_shape[1:]))
    if batch < 2:
        raise UsageError(
            f"training {config.model} on {shape} volumes needs about "
            f"{memory.gib(2 * per_sample)} of activations for a batch of 2, more than the "
            f"{memory.gib(budget)} allowed on {device.type}; pass a smaller --size or --model"
        )
    if batch < config.batch_size:
        logger.warning(
            "--batch-size lowered from %d to %d: a batch of %s volumes through %s keeps about "
            "%s of activations, and %s is allowed on %s",
            config.batch_size,
            batch,
            shape,
            config.model,
            memory.gib(per_sample * config.batch_size),
            memory.gib(budget),
            device.type,
        )
        return config.with_overrides(batch_size=batch)
    return config


def study_seeds(context: SeedContext) -> list[Seed]:
    """Every method's seeds, each with its `method` parameter where the study runs several
    (students first, so the front holds them from the start), and under `quantize=search`
    the precisions in turn."""
    setting = context.config.method
    names = study_methods(setting)
    seeds = []
    for method in sorted(methods_of(setting), key=lambda m: m.seed_rank):
        prefix = {METHOD_PARAM: method.name} if len(names) > 1 else {}
        seeds += [Seed({**prefix, **s.params}, s.attrs) for s in method.seeds(context)]
    if context.config.quantize == "search":
        params = alternate([seed.params for seed in seeds])
        seeds = [Seed(p, seed.attrs) for p, seed in zip(params, seeds, strict=True)]
    return seeds


def _enqueue(study: optuna.Study, seeds: list[Seed]) -> None:
    for seed in seeds:
        study.enqueue_trial(seed.params, user_attrs=seed.attrs)
