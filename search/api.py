"""medslim's Python API: run a study, open a stored one, and read what it found.

    import medslim
    study = medslim.run(dataset="breastmnist", trials=20)   # or medslim.run(StudyConfig(...))
    study.front()                    # the Pareto front on validation scores, as plain data
    study.rescore()                  # the front's test scores with bootstrap intervals
    study.export(12, "model.onnx", format="onnx")
    model = study.model(12)          # an nn.Module

The command line (`medslim run`, `pareto`, `report`, `export`) is a thin layer over these.
Progress is logged through `logging.getLogger("medslim")`; nothing is printed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medslim.errors import MedslimError, StudyInterrupted, UsageError
from medslim.search.config import StudyConfig
from medslim.search.storage import display_url
from medslim.search.stored import StudyRef, open_study
from medslim.search.study_format import stored_dataset

if TYPE_CHECKING:
    import optuna
    import pandas
    from torch import nn

    from medslim.objectives.sensitivity import SensitivityCurve
    from medslim.search.inspection.export import OnnxCheck
    from medslim.search.inspection.front_table import FrontTable
    from medslim.search.inspection.pareto import Front
    from medslim.search.inspection.refine import Refined
    from medslim.search.inspection.rescore import Rescored

logger = logging.getLogger(__name__)


class StudyFailed(MedslimError):
    """A run ended without a single finished trial; the message lists why trials failed."""


class StoredStudy:
    """A medslim study in an Optuna storage: its front, test scores, models and report.

    Get one from `medslim.run(...)` or `medslim.load_study(storage, name)`. Reading never
    changes the study, except that test scores are cached in it once computed.
    """

    def __init__(self, ref: StudyRef) -> None:
        self.ref = ref

    def __repr__(self) -> str:
        return f"StoredStudy({self.name!r}, {len(self.study.trials)} trials)"

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def study(self) -> optuna.Study:
        """The Optuna study itself (trials, user attrs, samplers' view)."""
        return self.ref.study

    @property
    def storage(self) -> str:
        return self.ref.url

    @property
    def config(self) -> StudyConfig:
        """The settings the study was run with."""
        return self.ref.config()

    def front(self) -> Front:
        """The Pareto front chosen on validation scores (`.as_json()` for plain dicts)."""
        from medslim.search.inspection.pareto import compute_front

        return compute_front(self.study)

    def rescore(
        self,
        *,
        resamples: int = 1000,
        positive_class: str | None = None,
        data_dir: str | Path | None = None,
    ) -> Rescored:
        """Test scores of the teacher and each front member: bootstrap intervals, paired
        differences to the teacher (AUC, ACC, sensitivity, specificity), operating points,
        calibration, one-class flags and side-by-side latency. Computed once (per settings),
        then read from the study. `positive_class`: a class name or label of a binary task
        (by default the dataset's disease class, else label 1)."""
        from medslim.search.inspection.classes import positive_class as resolve
        from medslim.search.inspection.rescore import rescore_front
        from medslim.search.inspection.scoring import Bootstrap, RescoreSettings

        positive = resolve(stored_dataset(self.study), positive_class)
        settings = RescoreSettings(Bootstrap(resamples), positive.index if positive else 1)
        folder = Path(data_dir) if data_dir is not None else None
        return rescore_front(self.ref, self.front(), settings, data_dir=folder)

    def table(self, **settings: Any) -> FrontTable:
        """The front table `pareto`, the report and the dashboard show: the teacher, then
        each member with its test scores (unless `test=False`), verdict, flags and export
        command. `settings` (`validation.ValidationSettings`): `accept` (criteria, e.g.
        `auc=-0.01,ece=+0.02`; by default those the study fixed, else ΔAUC > −0.01),
        `non_inferior_on`/`margin` (the older spelling), `positive_class`, `resamples`,
        `robustness` (score corrupted test images too), `corruptions`, `severities`,
        `data_dir`."""
        from medslim.search.inspection.validation import ValidationSettings, validate

        return validate(self.ref, ValidationSettings(**settings))

    def report(self, path: str | Path = "report.html", **settings: Any) -> Path:
        """Write the standalone HTML report and save its figures and notes for
        optuna-dashboard. `settings` are `table`'s; robustness is scored unless
        `robustness=False`. When the test split cannot be re-scored here (no cached teacher,
        no data), the report says why and shows validation scores only."""
        from medslim.search.inspection.dashboard import publish
        from medslim.search.inspection.report import write_report

        out = Path(path)
        if not out.parent.is_dir():
            raise UsageError(f"cannot write {out}: folder {out.parent} does not exist")
        settings = {"robustness": True, **settings}
        try:
            table = self.table(**settings)
        except UsageError as error:
            if not settings.get("test", True):
                raise
            logger.warning("report without test scores: %s", error)
            table = self.table(**{**settings, "test": False})
            table = replace(table, notes=[*table.notes, f"no test scores: {error}"])
        folder = settings.get("data_dir")
        write_report(self.ref, table, out, data_dir=Path(folder) if folder else None)
        publish(self.ref, table)
        return out

    def export(
        self,
        trial: int,
        path: str | Path,
        *,
        format: str = "pt",  # noqa: A002 - the CLI's --format
        data_dir: str | Path | None = None,
        original: bool = False,
    ) -> OnnxCheck | None:
        """Write trial `trial`'s model (its refined one where `refine` made one, unless
        `original`): `pt` (state dict + spec, loads with weights_only) or `onnx` (checked
        against PyTorch by onnxruntime; the check is returned)."""
        from medslim.search.inspection.export import export_trial

        folder = Path(data_dir) if data_dir is not None else None
        return export_trial(
            self.ref, trial, format, Path(path), data_dir=folder, original=original
        )

    def card(
        self,
        trial: int,
        model_file: str | Path,
        *,
        intended_use: str | None = None,
        data_dir: str | Path | None = None,
        **settings: Any,
    ) -> tuple[Path, Path]:
        """Write a Markdown and a JSON model card beside `model_file` (trial `trial`'s
        exported model, a front member): judged by the study's fixed criteria unless
        `settings` (`table`'s) say otherwise, with robustness scored. Returns both paths."""
        from medslim.search.inspection.model_card import card_data, write_card

        folder = Path(data_dir) if data_dir is not None else None
        table = self.table(**{"robustness": True, **settings, "data_dir": folder})
        out = Path(model_file)
        card = card_data(self.ref, table, trial, out, intended_use=intended_use, data_dir=folder)
        return write_card(card, out)

    def on_front(self, trial: int) -> None:
        """Refuse a trial that is not on the front (cards describe front members only)."""
        members = [m.trial for m in self.front().members]
        if trial not in members:
            raise UsageError(
                f"trial {trial} is not on the study's front (members: "
                f"{', '.join(map(str, members)) or 'none'}); --card describes front members, "
                "the only ones scored on the test split"
            )

    def refine(
        self,
        trial: int,
        *,
        epochs: int | None = None,
        device: str = "auto",
        data_dir: str | Path | None = None,
    ) -> Refined:
        """Fine-tune trial `trial`'s model longer (default 10 epochs) on the teacher's soft
        labels, keep its best val epoch, and store it beside the trial: `front()`, `table()`,
        `report()` and `export()` use it from then on."""
        from medslim.search.inspection.refine import refine_trial

        folder = Path(data_dir) if data_dir is not None else None
        return refine_trial(self.ref, trial, epochs=epochs, device=device, data_dir=folder)

    def model(self, trial: int, *, original: bool = False) -> nn.Module:
        """Trial `trial`'s model, rebuilt from its stored widths and weights (eval mode);
        its refined model where `refine` made one, unless `original`; for a member that
        deploys as int8, its quantized ONNX file run by onnxruntime (`OnnxModule`)."""
        from medslim.search.inspection.rescore import member_model

        return member_model(self.ref, self.ref.finished_trial(trial), not original)

    def teacher(self, *, data_dir: str | Path | None = None) -> nn.Module:
        """The teacher the study compressed (CPU, eval mode), from the cache or --teacher."""
        from medslim.search.inspection.reopen import reopen

        return reopen(self.ref, Path(data_dir) if data_dir is not None else None).teacher

    def dataframe(self) -> pandas.DataFrame:
        """One row per trial, flat columns: number, state, method, baseline, the scores
        (val_auc, val_acc, flops, flops_ratio, params, latency_ms, ...), the global ratio,
        criterion and `ratio.<group>` of pruned trials, `student.<field>` of students."""
        import pandas

        from medslim.search.records import flat_record

        return pandas.DataFrame.from_records([flat_record(t) for t in self.study.trials])


def run(
    config: StudyConfig | None = None, /, *, progress: bool | None = None, **settings: Any
) -> StoredStudy:
    """Run (or resume) a study until it holds `trials` finished trials, and return it.

    Pass a `StudyConfig`, its fields as keyword arguments, or both (keywords override):
    `medslim.run(dataset="pneumoniamnist", trials=20, method="all", quantize="search")`.
    With `workers > 1`
    the trials run in that many processes. `progress`: a progress bar on stderr (None: only
    on a terminal). Ctrl-C raises KeyboardInterrupt; every finished trial is kept, and the
    same call resumes the study.
    """
    from medslim.search.loop import quiet_optuna

    with quiet_optuna():
        return _run(_config(config, settings), progress)


def _run(settings: StudyConfig, progress: bool | None) -> StoredStudy:
    from medslim.search.artifacts import say_if_local_only
    from medslim.search.cpu_share import share_cores
    from medslim.search.inspection.dashboard import publish_cached
    from medslim.search.loop import finished_count, run_trials
    from medslim.search.methods import DISTILL, study_methods
    from medslim.search.screening import screened_out
    from medslim.search.session import prepare
    from medslim.search.workers import publish_target, run_workers

    session = prepare(settings, progress=progress)
    study = session.study
    config = session.config
    target = session.config.trials
    logger.info("%d finished trials, target %d", finished_count(study), target)
    say_if_local_only(session.artifacts)
    publish_target(study, target)
    try:
        if session.config.workers > 1:
            run_workers(session, progress=progress)
        else:
            share_cores(None)  # a fair share where other medslim processes run trials
            run_trials(session, progress=progress)
    except KeyboardInterrupt as interrupt:
        where = display_url(session.config.storage)
        raise StudyInterrupted(study.study_name, where, finished_count(study)) from interrupt
    stored = StoredStudy(StudyRef(study, session.config.storage, session.storage))
    front = stored.front()
    if not front.members and front.finished:
        limits = [
            f"--{name.replace('_', '-')} {value:g}"
            for name, value in (("max_flops", config.max_flops), ("min_auc", config.min_auc))
            if value is not None
        ]
        raise StudyFailed(
            f"{front.finished} trials of study {study.study_name!r} finished, but none meets "
            f"the constraints ({', '.join(limits)}): loosen them, or run more trials"
        )
    if not front.members:
        raise StudyFailed(f"no trial of study {study.study_name!r} finished; {_failures(study)}")
    if DISTILL.name in study_methods(config.method):
        _say_if_no_student(study, front)
    done = finished_count(study)
    if done < target:  # too many trials failed, or the rest run where no heartbeat tells
        raise StudyFailed(
            f"only {done} of {target} trials of study {study.study_name!r} finished "
            f"({_failures(study)}); run the same command again to continue"
        )
    if session.config.screen is not None:
        logger.info("screening stopped %d candidates before their fine-tune", screened_out(study))
    _refine_first_looks(stored, session.config)
    publish_cached(stored.ref)  # figures and notes for optuna-dashboard
    return stored


def _refine_first_looks(stored: StoredStudy, config: StudyConfig) -> None:
    """`refine`: the front members a user would look at first, each refined once."""
    from medslim.search.inspection.refine import first_looks
    from medslim.search.refined import refined_record

    for number in first_looks(stored.front(), config.refine):
        if refined_record(stored.study, number) is None:
            done = stored.refine(number, epochs=config.refine_epochs, device=config.device)
            logger.info(
                "refined trial %d: val AUC %.4f → %.4f",
                number,
                done.before["val_auc"],
                done.record["val_auc"],
            )


@dataclass(frozen=True)
class Sensitivity:
    """`sensitivity`'s result: the study the curves are kept in, one curve per group, and
    the per-group ratio caps when `sensitivity_drop` was set."""

    study: StoredStudy
    curves: list[SensitivityCurve]
    ceilings: dict[str, float] | None


def sensitivity(config: StudyConfig | None = None, /, **settings: Any) -> Sensitivity:
    """Performance-based pruning: prune one group at a time at a few ratios (batch norm
    recalibrated, no fine-tuning) and measure each group's val AUC drop. The curves are kept
    in the study, so a `run` with the same settings and `sensitivity_drop` reuses them."""
    from medslim.search.inspection.dashboard import publish_cached
    from medslim.search.loop import quiet_optuna
    from medslim.search.sensitivity import study_curves
    from medslim.search.session import prepare

    with quiet_optuna():
        session = prepare(_config(config, settings))
    curves = study_curves(
        session.study,
        session.teacher,
        session.data,
        session.unit_names,
        teacher_auc=session.teacher_scores.val_auc,
        criterion=session.space.criterion or "l1",
        pruning=session.space.pruning,
        seed=session.config.seed,
    )
    capped = session.config.sensitivity_drop is not None
    ref = StudyRef(session.study, session.config.storage, session.storage)
    publish_cached(ref)
    return Sensitivity(
        StoredStudy(ref),
        curves,
        dict(session.space.ceilings) if capped else None,
    )


def load_study(storage: str, name: str | None = None) -> StoredStudy:
    """The study `name` in `storage` (a URL, or a journal file path); without a name, the
    storage's only study."""
    return StoredStudy(open_study(storage, name))


def _config(config: StudyConfig | None, settings: dict[str, Any]) -> StudyConfig:
    known = {f.name for f in fields(StudyConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UsageError(
            f"unknown setting(s) {', '.join(unknown)}; StudyConfig has {', '.join(sorted(known))}"
        )
    if "objectives" in settings and isinstance(settings["objectives"], str):
        settings["objectives"] = tuple(o.strip() for o in settings["objectives"].split(","))
    base = config if config is not None else StudyConfig()
    return base.with_overrides(**settings) if settings else base


def _say_if_no_student(study: optuna.Study, front: Front) -> None:
    """A study that distills, whose front holds no student: say so, with what happened to
    the students (trained and beaten, or rejected before training)."""
    if any(member.kind == "distilled" for member in front.members):
        return
    from optuna.trial import TrialState

    from medslim.search.records import trial_record

    records = [(t, trial_record(t)) for t in study.trials]
    trained = [
        r for t, r in records if t.state == TrialState.COMPLETE and r.get("method") == "distill"
    ]
    rejected = [r for _, r in records if "rejected" in r]
    logger.warning(
        "no distilled student reached the front: %d trained, each beaten by a pruned model at "
        "no more FLOPs; %d rejected before training (too costly or not buildable)",
        len(trained),
        len(rejected),
    )


def _failures(study: optuna.Study) -> str:
    reasons = {
        str(t.user_attrs["fail_reason"]) for t in study.trials if "fail_reason" in t.user_attrs
    }
    return f"failures: {'; '.join(sorted(reasons)) or 'unknown'}"
