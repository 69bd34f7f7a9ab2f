"""Optuna samplers by name, each one small builder; the CLI lists them."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medslim.errors import UsageError
from medslim.registry import Registry

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler: its builder (a seed in, a sampler out), whether it handles several
    objectives, and a one-line summary for `medslim list`."""

    build: Callable[[int], optuna.samplers.BaseSampler]
    multi_objective: bool
    summary: str


SAMPLERS: Registry[SamplerEntry] = Registry("sampler", "valid samplers")


def register_sampler(name: str, entry: SamplerEntry) -> None:
    """Add a sampler under `name` (`--sampler NAME`); names are unique."""
    SAMPLERS.register(name, entry)


# Builders import Optuna when called, so listing the names stays quick.


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    """Multivariate TPE; `group` models each conditional sub-space (prune vs distill, the
    MobileNet-only expansion) jointly instead of falling back to independent sampling."""
    import optuna

    with warnings.catch_warnings():  # `group` and `constant_liar` are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=10
        )


def _optuna(class_name: str, **settings: object) -> Callable[[int], optuna.samplers.BaseSampler]:
    """A builder of Optuna's sampler `class_name` with these settings and the given seed."""

    def build(seed: int) -> optuna.samplers.BaseSampler:
        import optuna

        with warnings.catch_warnings():  # QMC is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler: optuna.samplers.BaseSampler = getattr(optuna.samplers, class_name)(
                seed=seed, **settings
            )
        return sampler

    return build


register_sampler(
    "tpe",
    SamplerEntry(
        _tpe, True, "multivariate, grouped TPE with constant liar (safe for parallel workers)"
    ),
)
register_sampler(
    "nsga2",
    SamplerEntry(_optuna("NSGAIISampler", population_size=20), True, "NSGA-II genetic algorithm"),
)
register_sampler(
    "nsga3",
    SamplerEntry(
        _optuna("NSGAIIISampler", population_size=20),
        True,
        "NSGA-III genetic algorithm (many objectives)",
    ),
)
register_sampler(
    "random", SamplerEntry(_optuna("RandomSampler"), True, "random search (a control)")
)
register_sampler(
    "gp", SamplerEntry(_optuna("GPSampler"), True, "Gaussian-process Bayesian optimisation")
)
register_sampler(
    "qmc",
    SamplerEntry(
        _optuna("QMCSampler", warn_independent_sampling=False),
        True,
        "quasi-Monte Carlo (Sobol) space filling",
    ),
)
register_sampler(
    "cmaes",
    SamplerEntry(
        _optuna("CmaEsSampler", warn_independent_sampling=False),
        False,
        "CMA-ES (single objective only)",
    ),
)


def sampler_names() -> list[str]:
    return SAMPLERS.names()


def make_sampler(name: str, n_objectives: int, seed: int) -> optuna.samplers.BaseSampler:
    """Build a sampler, refusing one that cannot handle the number of objectives."""
    entry = SAMPLERS.get(name)
    if n_objectives > 1 and not entry.multi_objective:
        raise UsageError(
            f"sampler {name!r} handles one objective only, but {n_objectives} were chosen; "
            f"pass --objectives val_auc (or similar) or pick another sampler"
        )
    return entry.build(seed)
