"""What a compression method is to medslim: one registered record per method.

A method says what a trial of it samples and how it builds and scores the trial's model
(`trials`), which trials it seeds a new study with (`seeds`), which blueprint a stored
trial's model is rebuilt from (`base`), and how a finished trial is described and drawn
(`choices`, `describe`, `kind`, `styles`). Everything else (the objective, the study's
seeds, the records, the front, the report) asks the registry instead of comparing names.

Torch-free and Optuna-free at import (the CLI lists the methods): each method loads what it
computes with on first use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from medslim.registry import Registry

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from medslim.objectives.data import Dataset
    from medslim.objectives.evaluate import Budget, Scores, Screen
    from medslim.objectives.training import BatchLoss
    from medslim.search.config import ResolvedConfig
    from medslim.search.session import Session
    from medslim.spaces.allocation import AllocationBasis
    from medslim.spaces.blueprints import Blueprint
    from medslim.spaces.sparsity import SparsitySpace

METHOD_PARAM = "method"
"""Trial parameter of a study of several methods: the method the trial runs."""


@dataclass(frozen=True)
class Style:
    """How members of one kind are named and drawn in the report's figures."""

    label: str
    colour: str
    symbol: str


@dataclass
class Prepared:
    """A trial's evaluation (called with `seed=`), what its record keeps of its choices
    (filled in further while it runs), and the blueprint its model is rebuilt from."""

    evaluate: Callable[..., tuple[nn.Module, Scores]]
    choices: dict[str, Any]
    base: Blueprint


class MethodTrials(Protocol):
    """One process's trials of a method: sample a trial, and say how to score it."""

    def prepare(self, trial: optuna.Trial, screen: Screen | None) -> Prepared: ...


@dataclass(frozen=True)
class TrialShared:
    """What every method's trials share in one process."""

    session: Session
    budget: Budget
    max_flops: float | None
    """Absolute FLOPs bound (`max_flops` resolved against the teacher's), or None."""
    loss: BatchLoss | None
    """The fine-tuning loss of teacher-derived models (soft labels under `kd`)."""
    folds: list[Dataset]


@dataclass(frozen=True)
class Seed:
    """A trial enqueued when a study is made: its parameters and user attrs."""

    params: dict[str, Any]
    attrs: dict[str, Any]


@dataclass(frozen=True)
class SeedContext:
    """What methods seed a new study from."""

    config: ResolvedConfig
    data: Dataset
    space: SparsitySpace
    units: list[str]
    basis: AllocationBasis | None
    """The pruning allocations' basis (None in a study of offsets, or without groups)."""
    teacher: nn.Module
    blueprint: Blueprint
    teacher_flops: int
    count: int
    """Baselines asked for (`baselines`, or a quarter of the trials)."""


class Method(ABC):
    """One compression method. Class attributes say what the study may combine it with;
    the methods say how its trials run, are seeded, rebuilt, described and drawn."""

    name: ClassVar[str]
    summary: ClassVar[str]
    title: ClassVar[str]
    """Its trials as a group (`pruned trials`): the report's importances per method."""
    styles: ClassVar[dict[str, Style]]
    """Member kinds (`kind`) this method's trials have, each with its style; the first is
    the default kind."""
    cross_validates: ClassVar[bool] = False
    """Whether `cv` can score its trials (over folds of train+val)."""
    screens: ClassVar[bool] = True
    """Whether `screen` can look at its models before their fine-tune."""
    derives: ClassVar[bool] = True
    """Whether its models start from the teacher's weights (the `kd` default applies)."""
    needs_groups: ClassVar[bool] = False
    """Whether it needs the pruning allocations' basis (the teacher's channel groups)."""
    needs_targets: ClassVar[bool] = False
    """Whether its trials choose a FLOPs target (a study of `offsets` has none)."""
    rejects: ClassVar[bool] = False
    """Whether its trials may stop before training (pruned by Optuna on purpose)."""
    drops_out: ClassVar[bool] = False
    """Whether a study of several methods stops proposing it once enough of its trials
    finished and none reached the front (see `choice.method_lost`)."""
    stopped_attr: ClassVar[str] = ""
    """Study attr a method that dropped out keeps the finished trials at that moment in."""
    seed_rank: ClassVar[int] = 1
    """Seeds of lower ranks are enqueued first."""

    @abstractmethod
    def trials(self, shared: TrialShared) -> MethodTrials:
        """This process's trials of the method."""

    def seeds(self, context: SeedContext) -> list[Seed]:
        """Trials a new study enqueues first, so the front shows the method from the start."""
        return []

    def base(self, config: dict[str, Any], trial: Any, stored: Blueprint) -> Blueprint:
        """The blueprint trial `trial`'s model is rebuilt from (`config`: the study's stored
        config; `stored`: the bundle's own blueprint, for its input shape and outputs). By
        default the study's teacher."""
        from medslim.spaces.blueprints import blueprint_for

        return blueprint_for(
            config["model"], config.get("model_args"), stored.input_shape, stored.n_outputs
        )

    @abstractmethod
    def choices(
        self, record: dict[str, Any], config: dict[str, Any], units: list[str]
    ) -> dict[str, Any]:
        """What a finished trial chose, as plain data (a front member's `choices`); `config`
        fills in study-wide settings, `units` orders per-group values."""

    @abstractmethod
    def describe(self, choices: dict[str, Any], *, groups: bool = False) -> str:
        """`choices` in one line; with `groups`, each group's value by its module path,
        else the values alone."""

    def kind(self, record: dict[str, Any]) -> str:
        """Which of `styles` a finished trial is."""
        return next(iter(self.styles))

    def columns(self, record: dict[str, Any]) -> dict[str, Any]:
        """Flat columns of what the record nests (a DataFrame's `student.<field>`)."""
        return {}

    def spec_row(self, choices: dict[str, Any]) -> dict[str, Any] | None:
        """A row of the report's table of this method's front members' specs (None: none)."""
        return None

    def study_label(self, config: Any) -> str:
        """The space part of a default study name."""
        return self.name


METHODS: Registry[Method] = Registry("method")
"""Every method, by name (`--method NAME`)."""


def register_method(method: Method) -> Method:
    """Add a method a study may run (`--method NAME`; `--method all` runs every one)."""
    return METHODS.register(method.name, method)


def get_method(name: str) -> Method:
    return METHODS.get(name)


def method_names() -> list[str]:
    return METHODS.names()


def short(value: float) -> str:
    """`.30`, `.00`: a ratio without its leading zero."""
    return f"{value:.2f}".lstrip("0") or "0"


def per_group(values: dict[str, float], groups: bool) -> str:
    """Per-group ratios in one line, each group by its module path (one name per layer):
    `conv1 .30 layers.0.0.conv1 .51` with `groups`, else the ratios alone in network
    order: `[.30 .51]`."""
    if not groups:
        return f"[{' '.join(short(v) for v in values.values())}]"
    return " ".join(f"{g} {short(v)}" for g, v in values.items())


def in_order(values: dict[str, Any], units: list[str]) -> dict[str, Any]:
    """`values` with the study's groups first, in network order."""
    ordered = {u: values[u] for u in units if u in values}
    ordered.update({u: v for u, v in values.items() if u not in ordered})
    return ordered
