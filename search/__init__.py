"""Studies: samplers, storages, the `medslim` CLI, the Pareto front."""

from search.config import StudyConfig
from search.pareto import Front, FrontMember, compute_front
from search.samplers import make_sampler, sampler_names
from search.storage import open_storage
from search.study import Session, prepare, run_study

__all__ = [
    "Front",
    "FrontMember",
    "Session",
    "StudyConfig",
    "compute_front",
    "make_sampler",
    "open_storage",
    "prepare",
    "run_study",
    "sampler_names",
]
