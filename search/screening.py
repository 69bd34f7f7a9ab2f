"""Screening: a cheap look at each pruned candidate before paying for its fine-tune.

The proxy is the candidate's val AUC right after pruning and batch-norm recalibration (no
fine-tuning) and its sparse FLOPs. A candidate stops there (Optuna state PRUNED) when an
earlier candidate of the study had no more FLOPs and a proxy AUC higher by more than the
margin: fine-tuning rarely closes such a gap, and the sampler learns from the stopped
trial. The uniform baselines are never stopped, so they always seed the comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import optuna
from optuna.trial import TrialState
from torch import nn

from medslim.objectives.data import Dataset
from medslim.objectives.evaluate import split_scores
from medslim.objectives.metrics import flops_by_module, sparse_flops
from medslim.search.records import trial_record

PROXY_KEY = "proxy"


@dataclass(frozen=True)
class Proxy:
    val_auc: float
    flops: int

    def beats(self, other: Proxy, margin: float) -> bool:
        """No more FLOPs than `other`, and a proxy AUC higher by more than `margin`."""
        return self.flops <= other.flops and self.val_auc > other.val_auc + margin


def measure_proxy(model: nn.Module, data: Dataset) -> Proxy:
    auc, _ = split_scores(model, data.val, data.task)
    return Proxy(val_auc=auc, flops=sparse_flops(model, flops_by_module(model, data.input_shape)))


def study_proxies(study: optuna.Study) -> list[Proxy]:
    """Proxies of the study's finished and screened-out candidates, from every worker."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    records = (trial_record(t) for t in trials)
    return [Proxy(**record[PROXY_KEY]) for record in records if PROXY_KEY in record]


def was_screened_out(trial: optuna.trial.FrozenTrial) -> bool:
    """Stopped by the screen (other PRUNED trials are students rejected before training)."""
    return trial.state == TrialState.PRUNED and PROXY_KEY in trial.user_attrs


def screened_out(study: optuna.Study) -> int:
    trials = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    return sum(was_screened_out(t) for t in trials)


class Screen:
    """The hook `prune_model` calls before the last fine-tune of one trial."""

    def __init__(self, trial: optuna.Trial, data: Dataset, margin: float) -> None:
        self.trial = trial
        self.data = data
        self.margin = margin
        self.proxy: Proxy | None = None

    def __call__(self, model: nn.Module) -> None:
        self.proxy = measure_proxy(model, self.data)
        if self.trial.user_attrs.get("baseline") == "uniform":
            return
        better = [p for p in study_proxies(self.trial.study) if p.beats(self.proxy, self.margin)]
        if better:
            self.trial.set_user_attr(PROXY_KEY, asdict(self.proxy))
            best = max(better, key=lambda p: p.val_auc)
            raise optuna.TrialPruned(
                f"screened out: proxy val AUC {self.proxy.val_auc:.4f} at {self.proxy.flops:,} "
                f"FLOPs; an earlier candidate had {best.val_auc:.4f} at {best.flops:,}"
            )

    def record(self) -> dict[str, dict[str, float]]:
        """What the finished trial stores, so later candidates compare against it."""
        return {PROXY_KEY: asdict(self.proxy)} if self.proxy is not None else {}
