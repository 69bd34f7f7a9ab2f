"""Where a study's data came from, kept in the study so that every reader finds the same data.

The study stores its data source under the user attr `dataset`: the name or path, the
size, the data dir it was read from, the layout, how it was split and a digest of that
split. `medslim worker`, `pareto`, `report` and `export` load the data from there without
flags (a `--data-dir` of their own wins), and refuse data whose split differs from the
study's (a folder that changed since, say) instead of scoring on other images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medslim.errors import DataError
from medslim.objectives.data import DataRequest, Dataset, ShapeCheck, load_request
from medslim.search.config import StudyConfig
from medslim.spaces.blueprints import model_kind

OUTSIDE_PATHS = "allow_outside_paths"
"""Kept in the `dataset` attr of a study whose CSV lists files outside its folder, so its
workers and readers may read them too."""


def data_request(config: StudyConfig, stored: dict[str, Any] | None = None) -> DataRequest:
    """The data a config asks for; the study's own data dir when the config names none."""
    data_dir = config.data_dir or (stored or {}).get("data_dir")
    outside = config.allow_outside_paths or bool((stored or {}).get(OUTSIDE_PATHS))
    return DataRequest(
        source=config.dataset,
        data_dir=Path(data_dir) if data_dir else None,
        seed=config.seed,
        size=config.size,
        task=config.task,
        channels=config.channels,
        subgroups=config.subgroups,
        window=config.window,
        kind=model_kind(config.model) if config.model is not None else None,
        allow_outside_paths=outside,
    )


def load_study_data(
    config: StudyConfig, stored: dict[str, Any] | None = None, check: ShapeCheck | None = None
) -> Dataset:
    """The study's data, checked against what the study stored about it (and by `check`
    before any image is decoded)."""
    data = load_request(data_request(config, stored), check)
    check_same_data(data, stored)
    return data


def describe(data: Dataset, config: StudyConfig) -> dict[str, Any]:
    """The `dataset` user attr of a new study."""
    return {
        "name": data.name,
        "task": data.task,
        "source": data.source,
        "class_names": list(data.class_names),
        "input_shape": list(data.input_shape),
        "data_dir": str(data_request(config).directory.resolve()),
        **data.origin,
        **({OUTSIDE_PATHS: True} if config.allow_outside_paths else {}),
    }


def check_same_data(data: Dataset, stored: dict[str, Any] | None) -> None:
    """Refuse data split differently, or shaped differently, from the study's."""
    if not stored:
        return
    want = stored.get("split_digest")
    if want is not None and data.origin.get("split_digest") != want:
        raise DataError(
            f"{data.source}: the files or their split differ from those the study was made with "
            "(files added, removed or changed since); restore them, or start a new study"
        )
    shape = stored.get("input_shape")
    if shape is not None and list(data.input_shape) != list(shape):
        raise DataError(
            f"{data.source}: images are {list(data.input_shape)} but the study's were "
            f"{shape}; pass the study's --size/--channels or start a new study"
        )
