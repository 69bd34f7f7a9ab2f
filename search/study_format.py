"""What a study stores in its user attrs, in one place: each attribute's name, a typed
accessor that reads it in today's shape, and the ordered upgrade steps that bring what an
older study stored up to that shape.

Optuna keeps each change of its stored format as one file under
`storages/_rdb/alembic/versions/`; here each change a reader must know of is one step of
`UPGRADES`, oldest first; `study_attrs` and the accessors of attrs that changed shape read
through them, so no reader asks how old a study is. A step fills in what an older study
lacks with what it ran with; nothing is written back, so an older medslim still reads the
study. (Writers that must see what is really stored, such as `acceptance.mark_test_read`,
read `study.user_attrs`.)

What older studies need beyond their attrs lives beside the code that needs it: a trial's
result in one `result` dict (`records.trial_record`), model bundles from before blueprints
(`trial_models`), a teacher record without a fingerprint (`session` adds it on resume), a
teacher file found by its val AUC (`teacher_files`), and the values settings added later
had (`config.ADDED_LATER`, which `_settings_added_later` fills in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from medslim.search.config import completed

if TYPE_CHECKING:
    import optuna

CONFIG_ATTR = "config"
"""The resolved config (`ResolvedConfig.stored()`); stored last when a study is made, so a
run that joins a study being made waits for it."""
DATASET_ATTR = "dataset"
"""The data source (`datasource.describe`): name or path, task, class names, split digest."""
TEACHER_ATTR = "teacher"
"""The teacher's val scores, sizes and weights fingerprint (`study_teacher`)."""
UNITS_ATTR = "units"
"""The prunable groups, in network order."""
OFFSET_PREFIX_ATTR = "offset_prefix"
"""How the study names per-group offset parameters (`offset.` since the name exists)."""
TARGET_ATTR = "target_trials"
"""The finished trials the last `run` asked for, so joining workers know it."""
ARTIFACTS_ATTR = "artifacts"
"""The study's artifact store, when `--artifacts` chose one (else found from the storage)."""
CLAIM_ATTR = "made_by"
"""Of a study being made: `{"worker": host:pid, "at": time}`, the time refreshed every
`joining.CLAIM_BEAT_S` until the study's config is written."""
PROXY_CURVES_ATTR = "proxy_curves"
"""The per-group proxy curves the `sensitivity` and `screened` allocations share."""
PROXY_CURVES_COST_ATTR = "proxy_curves_cost"
"""What the proxy curves cost to measure (seconds, by part)."""
SENSITIVITY_ATTR = "sensitivity"
"""Sensitivity curves measured by `medslim sensitivity` (the `--sensitivity-drop` prior)."""
DEPLOYMENT_ATTR = "deployment"
"""How a deploying study measures its models (precision, runtime, latency settings)."""
ACCEPTANCE_ATTR = "acceptance"
"""The acceptance criteria fixed when the study was made, and when."""
TEST_FIRST_READ_ATTR = "test_first_read"
"""When the test split was first read for the front."""
TEST_PREFIX = "test."
"""Cached test scores (`test.teacher`, `test.trial.<n>`, ...; `inspection.rescore`)."""
REFINED_PREFIX = "refined.trial."
"""`refined.trial.<n>`: a front member's refined model (`refined`)."""
LEGACY_OFFSET_PREFIX = "sparsity."
"""How studies named per-group offsets before `offset_prefix` existed."""
UNRECORDED_READ = "at a time not recorded (test scores cached by an older medslim)"
"""`test_first_read` of a study that cached test scores before medslim recorded when."""


def _offsets_named_sparsity(attrs: dict[str, Any]) -> dict[str, Any]:
    """Studies made before offsets were named `offset.<group>` store no `offset_prefix`:
    their offsets are `sparsity.<group>`, and a resumed study keeps that name."""
    if OFFSET_PREFIX_ATTR in attrs:
        return attrs
    return {**attrs, OFFSET_PREFIX_ATTR: LEGACY_OFFSET_PREFIX}


def _settings_added_later(attrs: dict[str, Any]) -> dict[str, Any]:
    """A config stored before a setting existed lacks it: the study ran with the value in
    `config.ADDED_LATER` (model args, pretrained, allocations, quantization, ...)."""
    config = attrs.get(CONFIG_ATTR)
    return attrs if config is None else {**attrs, CONFIG_ATTR: completed(config)}


def _test_read_before_recorded(attrs: dict[str, Any]) -> dict[str, Any]:
    """Studies that cached test scores before medslim recorded when the test split was first
    read: it was read, at a time not recorded (criteria given now are not fixed in
    advance)."""
    if TEST_FIRST_READ_ATTR in attrs or not any(key.startswith(TEST_PREFIX) for key in attrs):
        return attrs
    return {**attrs, TEST_FIRST_READ_ATTR: UNRECORDED_READ}


UPGRADES: tuple[Callable[[dict[str, Any]], dict[str, Any]], ...] = (
    _offsets_named_sparsity,
    _settings_added_later,
    _test_read_before_recorded,
)
"""Oldest first: each turns what studies stored before one change into the shape after it."""


def upgraded(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Study attrs as stored, in today's shape (`UPGRADES` in order; a copy)."""
    current = dict(attrs)
    for step in UPGRADES:
        current = step(current)
    return current


def study_attrs(study: optuna.Study) -> dict[str, Any]:
    """All of a study's attrs in today's shape (one read of the storage)."""
    return upgraded(study.user_attrs)


def stored_config(study: optuna.Study) -> dict[str, Any] | None:
    """The config the study stores, every setting filled in (None: none yet, or not made
    by medslim)."""
    config: dict[str, Any] | None = study_attrs(study).get(CONFIG_ATTR)
    return config


def stored_dataset(study: optuna.Study) -> dict[str, Any]:
    """What the study stores about its data (empty: nothing)."""
    return dict(study.user_attrs.get(DATASET_ATTR) or {})


def stored_teacher(study: optuna.Study) -> dict[str, Any] | None:
    """The study's record of its teacher (None: not set up yet). A study older than
    fingerprints has none in it until a run adds it (`session`)."""
    record: dict[str, Any] | None = study.user_attrs.get(TEACHER_ATTR)
    return record


def stored_units(study: optuna.Study) -> list[str]:
    """The study's prunable groups, in network order (empty: none stored)."""
    return [str(unit) for unit in study.user_attrs.get(UNITS_ATTR, [])]


def stored_offset_prefix(study: optuna.Study) -> str:
    """How this study names per-group offsets (`sparsity.` in studies older than the name
    `offset.`)."""
    return str(study_attrs(study)[OFFSET_PREFIX_ATTR])


def target_trials(study: optuna.Study) -> int | None:
    """The finished trials the last `run` asked for (None: none stored)."""
    target = study.user_attrs.get(TARGET_ATTR)
    return None if target is None else int(target)


def stored_artifacts(study: optuna.Study) -> str | None:
    """The study's artifact store URL, when `--artifacts` chose one (None: the default)."""
    url = study.user_attrs.get(ARTIFACTS_ATTR)
    return None if url is None else str(url)
