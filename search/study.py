"""Run a pruning study: resolve the config, get the teacher, open or resume the Optuna
study, enqueue the uniform baselines, and optimise."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from torch import nn

from objectives.crossval import cross_validate, cv_folds
from objectives.data import Dataset, load_dataset
from objectives.evaluate import Budget, Scores, evaluate_pruning, score_model
from objectives.sensitivity import DEFAULT_RATIOS, ceilings_from_curves
from objectives.teacher import TeacherScores, load_state_dict_file, obtain_teacher
from objectives.training import Recipe, TrainingDiverged
from search.config import StudyConfig, config_differences
from search.methods import StudentTrials, kd_finetune_loss, sample_method, student_seeds
from search.records import record_result, trial_record
from search.samplers import make_sampler
from search.screening import Screen, was_screened_out
from search.sensitivity import study_curves
from search.storage import check_storage_url, open_storage, storage_dir
from search.trial_models import save_trial_model
from spaces.architectures import ModelSpec, build_model, get_preset, input_kind
from spaces.errors import UsageError
from spaces.sparsity import (
    PruningPlan,
    SparsitySpace,
    prunable_units,
    sample_plan,
    uniform_params,
    uniform_ratios,
)

# Per data kind: (trials, fine-tune epochs per step, teacher epochs); about a minute on a
# 2-core CPU for the tabular default, a few minutes for a 28-px image dataset.
DATA_DEFAULTS = {"tabular": (200, 3, 60), "image": (30, 1, 10)}
# Students start from scratch, so they train longer than a pruned model's fine-tuning.
# Measured: a resnet 8-16-32 student (6% of resnet8's FLOPs) reaches val AUC 0.990 on
# PneumoniaMNIST in 3 epochs; an MLP 32-16-8 on breast-cancer 0.997 at 30, 0.999 at 60.
STUDENT_EPOCHS = {"tabular": 60, "image": 3}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here")
    return torch.device(name)


def on_device(data: Dataset, device: torch.device) -> Dataset:
    """The same dataset with every split's tensors moved to `device` once."""
    if device.type == "cpu":
        return data
    moved = {
        name: replace(
            getattr(data, name),
            x=getattr(data, name).x.to(device),
            y=getattr(data, name).y.to(device),
        )
        for name in ("train", "val", "test")
    }
    return replace(data, **moved)


def resolve_config(config: StudyConfig, data: Dataset, device: torch.device) -> StudyConfig:
    """Fill what follows the data: the model family, and the epoch defaults."""
    model = config.model
    if model is None:
        model = (
            "mlp"
            if data.kind == "tabular"
            else ("resnet18" if device.type == "cuda" else "resnet8")
        )
    spec = get_preset(model)
    if input_kind(spec) != data.kind:
        raise UsageError(
            f"model {model!r} takes {input_kind(spec)} data, but {config.dataset!r} is {data.kind}"
        )
    trials, epochs, teacher_epochs = DATA_DEFAULTS[data.kind]
    return config.with_overrides(
        model=model,
        kd=default_kd(config, data) if config.kd is None else config.kd,
        trials=trials if config.trials is None else config.trials,
        epochs=epochs if config.epochs is None else config.epochs,
        teacher_epochs=teacher_epochs if config.teacher_epochs is None else config.teacher_epochs,
        student_epochs=(
            STUDENT_EPOCHS[data.kind] if config.student_epochs is None else config.student_epochs
        ),
    )


def default_kd(config: StudyConfig, data: Dataset) -> bool:
    """Soft labels in the fine-tuning of pruned image models: on BreastMNIST (3 seeds) they
    lifted the search from 0.99× to 1.03× the uniform sweep's hypervolume, and on
    PneumoniaMNIST cut the smallest FLOPs ratio at teacher-level AUC from 0.17 to 0.12
    (benchmarks/front_quality.py, 40 trials). `--cv` folds cannot reuse the cached soft
    labels, and distilled students have their own loss."""
    return data.kind == "image" and not config.cv and config.method != "distill"


def sparsity_space(config: StudyConfig) -> SparsitySpace:
    return SparsitySpace(
        pruning=config.pruning,
        max_ratio=config.max_ratio,
        max_offset=config.max_offset,
        criterion=None if config.criterion == "search" else config.criterion,
        iterative_steps=config.iterative_steps,
    )


def budget_for(config: StudyConfig) -> Budget:
    recipe = Recipe(epochs=config.epochs or 0, batch_size=config.batch_size, lr=config.lr / 2)
    return Budget(finetune=recipe)


def teacher_recipe(config: StudyConfig, data: Dataset) -> Recipe:
    return Recipe(
        epochs=config.teacher_epochs or 0,
        batch_size=config.batch_size,
        lr=config.lr,
        augment=data.kind == "image",
    )


@dataclass
class Session:
    """Everything a study's trials share, built once per process."""

    config: StudyConfig
    data: Dataset
    device: torch.device
    teacher: nn.Module
    teacher_spec: ModelSpec
    teacher_scores: TeacherScores
    teacher_flops: int
    unit_names: list[str]
    study: optuna.Study
    space: SparsitySpace


def prepare(config: StudyConfig, log: Callable[[str], None] = print) -> Session:
    """Validate everything before any work, then load data, teacher, and the study."""
    sampler = make_sampler(config.sampler, len(config.objectives), config.seed)
    space = sparsity_space(config)
    device = resolve_device(config.device)
    check_storage_url(config.storage)
    data_dir = Path(config.data_dir) if config.data_dir else None
    data = on_device(load_dataset(config.dataset, data_dir=data_dir, seed=config.seed), device)
    config = resolve_config(config, data, device)
    spec = get_preset(config.model)
    teacher_file = Path(config.teacher) if config.teacher else None
    if teacher_file is not None:  # refuse a mismatched file before the storage is touched
        model = build_model(spec, data.input_shape, data.n_outputs)
        load_state_dict_file(model, teacher_file, "teacher")
    storage = open_storage(config.storage, heartbeat=config.heartbeat)
    study_name = config.study or config.default_study_name()
    existing = _existing_config(storage, study_name)
    if existing is not None and not config.force_config:
        differences = config_differences(existing, config.stored())
        if differences:
            raise UsageError(
                f"study {study_name!r} exists with a different config ("
                + "; ".join(differences)
                + "); use another --study name, or --force-config to continue it anyway"
            )
    cache = storage_dir(config.storage) / "teachers"
    log(f"teacher: {config.model} on {data.name} ({device.type}) ...")
    try:
        teacher, teacher_scores, trained = obtain_teacher(
            data,
            spec,
            teacher_recipe(config, data),
            seed=config.seed,
            cache_dir=cache,
            device=device,
            teacher_file=teacher_file,
        )
    except TrainingDiverged as error:
        raise UsageError(
            f"the teacher's own training diverged ({error}) at --lr {config.lr:g}; "
            "lower --lr, or pass a trained model with --teacher"
        ) from None
    log(
        f"teacher {'trained' if trained else 'loaded'}: val AUC {teacher_scores.val_auc:.4f}, "
        f"val ACC {teacher_scores.val_acc:.4f}"
    )
    budget = budget_for(config)
    reference = score_model(teacher, data, budget)
    units = list(prunable_units(teacher, data.train.x[:2], space.pruning))
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=sampler,
        directions=config.directions,
        load_if_exists=True,
    )
    if existing is None:  # all that can fail ran before create_study: no half-made study
        with warnings.catch_warnings():  # experimental in name only; the dashboard reads it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
        study.set_user_attr("config", config.stored())
        study.set_user_attr(
            "dataset", {"name": data.name, "task": data.task, "source": data.source}
        )
        study.set_user_attr("teacher", {**vars(teacher_scores), **_size_attrs(reference)})
        study.set_user_attr("units", units)
        _enqueue_students(study, spec, config.method)
        _enqueue_baselines(
            study, space, units, min(config.baselines, config.trials), config.method
        )
    if config.sensitivity_drop is not None:
        curves = study_curves(
            study,
            teacher,
            data,
            units,
            teacher_auc=teacher_scores.val_auc,
            criterion=space.criterion or "l1",
            pruning=space.pruning,
            seed=config.seed,
            log=log,
        )
        floor = min(DEFAULT_RATIOS)
        ceilings = ceilings_from_curves(curves, config.sensitivity_drop, floor)
        space = replace(space, ceilings=tuple(ceilings.items()))
    return Session(
        config, data, device, teacher, spec, teacher_scores, reference.flops, units, study, space
    )


def _size_attrs(scores: Any) -> dict[str, float]:
    return {
        "flops": scores.flops,
        "sparse_flops": scores.sparse_flops,
        "params": scores.params,
        "latency_ms": scores.latency_ms,
    }


def _existing_config(storage: optuna.storages.BaseStorage, name: str) -> dict[str, Any] | None:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    return study.user_attrs.get("config")


def _enqueue_baselines(
    study: optuna.Study, space: SparsitySpace, units: list[str], count: int, method: str
) -> None:
    """Uniform ratios first, so the front always shows what the search gained over them."""
    if count <= 0 or method == "distill":
        return
    prefix = {"method": "prune"} if method == "both" else {}
    for ratio in uniform_ratios(space, count):
        study.enqueue_trial(
            {**prefix, **uniform_params(space, units, ratio)},
            user_attrs={"baseline": "uniform"},
            skip_if_exists=True,
        )


def _enqueue_students(study: optuna.Study, teacher: ModelSpec, method: str) -> None:
    """Scaled-down copies of the teacher, so the front holds students from the start."""
    if method == "prune":
        return
    for params in student_seeds(teacher, method):
        study.enqueue_trial(params, user_attrs={"baseline": "scaled"}, skip_if_exists=True)


def make_objective(session: Session) -> Callable[[optuna.Trial], tuple[float, ...]]:
    config = session.config
    space = session.space
    budget = budget_for(config)
    folds = cv_folds(session.data, config.cv, config.seed) if config.cv else []
    max_flops = config.max_flops
    if max_flops is not None and max_flops <= 1.0:  # a fraction of the teacher's FLOPs
        max_flops = max_flops * session.teacher_flops
    kd = kd_finetune_loss(session) if config.kd else None
    students = StudentTrials(session, budget, max_flops)

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        method = sample_method(trial, config.method)
        # `base`: the spec a saved model is rebuilt from (the student's, or the teacher's).
        choices: dict[str, Any] = {}
        screen = None
        if method == "distill":
            base, settings = students.sample(trial)  # pruned here, untrained, if unusable
            evaluate = partial(students.evaluate, base, settings)
        else:
            plan = sample_plan(trial, space, session.unit_names)
            choices["plan"] = plan.describe()
            base = session.teacher_spec
            if config.screen is not None:
                screen = Screen(trial, session.data, config.screen)
            evaluate = partial(
                evaluate_pruning,
                session.teacher,
                plan,
                session.data,
                budget,
                loss=kd,
                screen=screen,
            )
            if folds:
                evaluate = partial(_cross_validated, trial, session.teacher, plan, budget, folds)
        try:
            model, scores = evaluate(seed=config.seed + trial.number)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # recorded on the trial as FAIL; the study goes on
            for key, value in choices.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            raise
        result = {
            "method": method,
            **choices,
            **(screen.record() if screen is not None else {}),
            **scores.as_dict(),
            "flops_ratio": scores.flops / session.teacher_flops,
        }
        record_result(trial, result)
        save_trial_model(
            trial,
            model,
            base,
            session.data.input_shape,
            session.data.n_outputs,
            config.storage,
        )
        if max_flops is not None:
            trial.set_constraint("max_flops", scores.flops - max_flops)
        if config.min_auc is not None:
            trial.set_constraint("min_auc", config.min_auc - scores.val_auc)
        return tuple(float(result[name]) for name in config.objectives)

    return objective


def _cross_validated(
    trial: optuna.Trial,
    teacher: nn.Module,
    plan: PruningPlan,
    budget: Budget,
    folds: list[Dataset],
    *,
    seed: int,
) -> tuple[nn.Module, Scores]:
    """`--cv K`: the trial's val scores are K-fold means over train+val; each fold's AUC is
    kept on the trial."""

    def one_fold(fold: Dataset, fold_seed: int) -> tuple[nn.Module, Scores]:
        return evaluate_pruning(teacher, plan, fold, budget, seed=fold_seed)

    model, scores, fold_aucs = cross_validate(one_fold, folds, seed)
    trial.set_user_attr("cv_fold_auc", fold_aucs)
    return model, scores


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_study(
    session: Session,
    *,
    progress: bool = True,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
) -> int:
    """Optimise until the study holds `config.trials` finished trials; returns how many ran."""
    target = session.config.trials
    remaining = target - finished_count(session.study)
    if remaining <= 0:
        return 0
    stop_at_target = optuna.study.MaxTrialsCallback(target, states=(TrialState.COMPLETE,))
    bar = _progress_bar(remaining, finished_count(session.study), target) if progress else None
    before = len(session.study.trials)

    screened = 0

    def tick(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal screened
        screened += was_screened_out(trial)
        if bar is not None and trial.state == TrialState.COMPLETE:
            bar.update(1)
            note = f", {screened} screened out" if screened else ""
            bar.set_postfix_str(_postfix(trial) + note)

    # Room for failed, rejected or screened-out trials; the callback stops at the target.
    attempts = remaining * (10 if session.config.screen is not None else 3)
    try:
        session.study.optimize(
            make_objective(session),
            n_trials=attempts,
            callbacks=[stop_at_target, tick, *(callbacks or [])],
            catch=(Exception,),
        )
    finally:
        if bar is not None:
            bar.close()
    return len(session.study.trials) - before


def _postfix(trial: optuna.trial.FrozenTrial) -> str:
    record = trial_record(trial)
    auc = record.get("val_auc", float("nan"))
    ratio = record.get("flops_ratio", float("nan"))
    return f"#{trial.number} AUC {auc:.3f} FLOPs×{ratio:.2f}"


def _progress_bar(total: int, done: int, target: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"trials ({done}/{target} done before)", unit="trial")
