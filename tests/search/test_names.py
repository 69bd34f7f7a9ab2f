"""One name per layer: the front's descriptions, the member notes, the ratio heatmap, the
trial parameters and attributes all name a group by its module path; a short label (`fc1`,
`stem`, `s1.b1.conv1`) appears only beside that path, never instead of it."""

from __future__ import annotations

import re
from pathlib import Path

from medslim.search.api import load_study
from medslim.search.inspection.dashboard import member_note
from medslim.search.inspection.layer_profile import layer_profile
from medslim.search.inspection.names import group_labels, with_alias


def test_every_view_names_groups_by_their_module_path(
    tiny_study_dir: Path, tiny_offsets_dir: Path
) -> None:
    study = load_study(f"sqlite:///{tiny_study_dir / 'm.db'}")
    units = study.study.user_attrs["units"]
    aliases = {a for g, a in group_labels(units).items() if a != g}
    assert aliases == {"fc1", "fc2", "fc3"}, "the MLP's hidden layers have short labels"
    table = study.table(test=False)
    pruned = [row for row in table.rows[1:] if row.kind != "distilled"]
    texts = [row.description for row in pruned] + [member_note(r, table) for r in pruned]
    profile = layer_profile(study.ref, study.front())
    texts += profile.labels
    for text in texts:
        for alias in aliases:
            for found in re.finditer(rf"(?<![\w.]){alias}(?![\w.])", text):
                before = text[: found.start()]
                assert re.search(r"[\w.]+ \($", before), f"{alias} alone in: {text}"
    for row in pruned:
        assert all(unit in row.description for unit in units), row.description
    assert profile.labels == [with_alias(u, group_labels(units)) for u in units]
    assert profile.labels[0] == "body.0 (fc1)"
    trial = study.study.trials[pruned[0].trial]
    assert {f"ratio.{u}" for u in units} <= set(trial.user_attrs)
    offsets = load_study(f"sqlite:///{tiny_offsets_dir / 'm.db'}").study.trials[-1]
    assert {f"offset.{u}" for u in units} <= set(offsets.params), "the space before targets"
