"""The report's validation sections, computed then drawn: the acceptance criteria and each
member's checks, robustness on corrupted images, what each member forgets (flip rate,
per-class rates, the flipped test images as thumbnails), subgroups, and the model card.

`validation_data` gathers plain data from the front table (and the test images, for the
thumbnails); `validation_sections` turns it into HTML tables.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from medslim.objectives import preview
from medslim.search.inspection.classes import class_names
from medslim.search.inspection.commands import export_command
from medslim.search.inspection.front_table import FrontTable, Row
from medslim.search.inspection.verdict import subgroup_verdict
from medslim.search.stored import StudyRef
from medslim.search.study_format import stored_dataset

THUMBNAILS = 12
"""Flipped test images shown per member (the most confident flips)."""
THUMB_PIXELS = 84


class Thumbnail(NamedTuple):
    png: str
    """Base64 PNG."""
    caption: str
    outcome: str


@dataclass(frozen=True)
class ValidationData:
    members: list[Row]
    """Front members with test scores."""
    class_names: tuple[str, ...]
    thumbnails: dict[int, list[Thumbnail]] = field(default_factory=dict)
    images_missing: str | None = None
    """Why there are no thumbnails (no test images here, or tabular data)."""


def validation_data(ref: StudyRef, table: FrontTable, data_dir: Path | None) -> ValidationData:
    members = [r for r in table.rows[1:] if r.test is not None]
    dataset = stored_dataset(ref.study)
    count = len(dataset.get("class_names") or ()) or 2
    names = class_names(dataset, count)
    thumbnails: dict[int, list[Thumbnail]] = {}
    missing = None
    flipped = [r for r in members if r.test and r.test.flips]
    if flipped and len(dataset.get("input_shape", ())) in (3, 4):  # images or volumes
        try:
            from medslim.search.inspection.reopen import study_data

            images = study_data(ref, data_dir).test.x
        except Exception as error:  # the report still shows the scores without images
            missing = f"the test images cannot be read here ({error})"
        else:
            for row in flipped:
                flips = (row.test.flips or [])[:THUMBNAILS] if row.test else []
                thumbnails[int(row.trial or 0)] = [
                    _thumbnail(np.asarray(images[f["index"]]), f, names) for f in flips
                ]
    elif flipped:
        missing = "tabular data: no images to show"
    return ValidationData(members, names, thumbnails, missing)


def _thumbnail(sample: np.ndarray, flip: dict[str, Any], names: tuple[str, ...]) -> Thumbnail:
    """A flipped case: an image as it is, a volume as its three orthogonal middle slices."""
    image = preview.picture(sample)
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    height, width = image.shape[:2]
    size = (THUMB_PIXELS * width // height, THUMB_PIXELS)
    picture = picture.resize(size, Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    caption = (
        f"#{flip['index']} · truth {_name(flip['label'], names)}\n"
        f"teacher {_name(flip['teacher_decision'], names)} ({flip['teacher_score']:.2f}) → "
        f"member {_name(flip['member_decision'], names)} ({flip['member_score']:.2f})"
    )
    return Thumbnail(base64.b64encode(buffer.getvalue()).decode(), caption, flip["outcome"])


def _name(value: Any, names: tuple[str, ...]) -> str:
    if isinstance(value, list):
        return "+".join(names[i] for i, on in enumerate(value) if on) or "none"
    return names[value] if 0 <= value < len(names) else str(value)


# --- drawing -------------------------------------------------------------------------------


class Block(NamedTuple):
    title: str
    body: str


def validation_sections(table: FrontTable, data: ValidationData) -> list[Block]:
    """Criteria, robustness, forgetting, subgroups and the model card, in reading order."""
    if not table.tested:
        return []
    blocks = [criteria_block(table, data)]
    blocks.append(robustness_block(table))
    blocks.append(forgetting_block(table, data))
    if any(r.test and r.test.subgroups for r in data.members):
        blocks.append(subgroups_block(table, data))
    blocks.append(card_block(table, data))
    return blocks


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    top = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        css = f" class='{classes[i]}'" if classes and classes[i] else ""
        cells = "".join(f"<td class='r'>{html.escape(c)}</td>" for c in row)
        body.append(f"<tr{css}>{cells}</tr>")
    return (
        f"<div class='table-box'><table class='specs'><thead><tr>{top}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _ci(value: float | None, ci: list[float] | None, signed: bool = False) -> str:
    if value is None or ci is None or value != value:
        return "—"
    form = "+.3f" if signed else ".3f"
    return f"{value:{form}} [{ci[0]:{form}}, {ci[1]:{form}}]"


def _notes(lines: list[str]) -> str:
    return "<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in lines) + "</ul>"


def criteria_block(table: FrontTable, data: ValidationData) -> Block:
    judging = table.judging
    lines = [f"A member meets the criteria when the {table.rule.describe()}."]
    if judging is not None:
        lines += judging.notes() or [
            "No criteria were fixed when the study was made (medslim run --accept); these are "
            "medslim's default."
        ]
    head = ["trial", "verdict", *[c.text() for c in table.rule.criteria.criteria]]
    rows, classes = [], []
    for row in data.members:
        verdict = row.verdict
        checks = {c["criterion"]: c for c in (verdict.checks if verdict else [])}
        cells = [str(row.trial), verdict.text if verdict else ""]
        for criterion in table.rule.criteria.criteria:
            check = checks.get(criterion.text())
            if check is None:
                cells.append("not scored")
                continue
            spans = [
                f"{where + ' ' if where else ''}[{ci[0]:+.3f}, {ci[1]:+.3f}]"
                for where, ci in check["intervals"].items()
            ]
            mark = "pass" if check["passed"] else "FAIL"
            shown = spans if len(spans) <= 2 else [f"{len(spans)} corruptions"]
            cells.append(f"{mark}: {'; '.join(shown)}")
        rows.append(cells)
        classes.append("" if verdict and verdict.non_inferior else "flagged")
    return Block("Acceptance criteria", _notes(lines) + _table(head, rows, classes))


def robustness_block(table: FrontTable) -> Block:
    robust = table.robustness
    title = "Robustness to corrupted images"
    if robust is None:
        return Block(
            title,
            "<p>Not scored (medslim report --no-robustness, tabular data, or no test scores).</p>",
        )
    lines = [f"Corruptions: {robust.source}; seeded, the same images on every run."]
    if robust.note:
        lines.append(robust.note)
    lines += [f"{name} skipped: {reason}" for name, reason in robust.skipped.items()]
    lines.append(
        "Per corruption and severity: the teacher's AUC [95% CI] and its drop from clean "
        "images; for each member its AUC and the paired ΔAUC to the teacher on the same "
        "corrupted images (rows where a member's lower bound is at or below the clean AUC "
        "margin are marked)."
    )
    members = [r for r in table.rows[1:] if r.trial in robust.members]
    head = ["corruption", "severity", "teacher AUC", "teacher drop"]
    for row in members:
        head += [f"trial {row.trial} AUC", f"trial {row.trial} ΔAUC"]
    results = {
        n: robust.members[int(n)]["results"] for n in (r.trial for r in members) if n is not None
    }
    rows, classes = [], []
    for i, base in enumerate(robust.teacher.get("results", [])):
        cells = [
            base["corruption"],
            str(base["severity"]),
            _ci(base["auc"], base["auc_ci"]),
            f"{base['drop_auc']:+.3f}",
        ]
        flagged = False
        for row in members:
            entry = results[int(row.trial or 0)][i]
            cells += [
                _ci(entry["auc"], entry["auc_ci"]),
                _ci(entry["delta_auc"], entry["delta_auc_ci"], signed=True),
            ]
            flagged |= f"{entry['corruption']}@{entry['severity']}" in (row.corrupted or [])
        rows.append(cells)
        classes.append("flagged" if flagged else "")
    summary = [
        f"trial {r.trial}: "
        + (
            "holds under every corruption"
            if not r.corrupted
            else f"falls behind on "
            f"{len(r.corrupted)} of {r.corrupted_of}: {', '.join(r.corrupted[:8])}"
            + (" ..." if len(r.corrupted) > 8 else "")
        )
        + (" (non-inferior on clean images)" if r.verdict and r.verdict.non_inferior else "")
        for r in members
    ]
    return Block(title, _notes(lines + summary) + _table(head, rows, classes))


def forgetting_block(table: FrontTable, data: ValidationData) -> Block:
    parts = [
        _notes(
            [
                "Flip rate: the share of test cases a member decides differently from the "
                "teacher, each at its own operating point (binary: its val-chosen threshold; "
                "multi-class: arg-max), with a 95% bootstrap interval. Compression tends to "
                "change atypical cases first while headline accuracy holds.",
                "Per class: sensitivity and specificity one-vs-rest, the member's and its "
                "paired difference to the teacher's.",
            ]
        )
    ]
    teacher = table.rows[0].test
    for row in data.members:
        test = row.test
        if test is None:
            continue
        flips = test.flips or []
        lost = sum(f["outcome"] == "lost" for f in flips)
        gained = sum(f["outcome"] == "gained" for f in flips)
        parts.append(
            f"<h3>trial {row.trial} ({html.escape(row.kind)}): flip rate "
            f"{html.escape(_ci(test.flip_rate, test.flip_rate_ci))}; of the {len(flips)} most "
            f"confident flips, {lost} lost (the teacher was right), {gained} gained</h3>"
        )
        head = ["class", "n", "teacher sens", "sens", "Δsens", "teacher spec", "spec", "Δspec"]
        theirs = {c["class"]: c for c in (teacher.per_class or [])} if teacher else {}
        rows = []
        for entry in test.per_class or []:
            ref = theirs.get(entry["class"], {})
            rows.append(
                [
                    _name(entry["class"], data.class_names),
                    str(entry["n"]),
                    _ci(ref.get("sensitivity"), ref.get("sensitivity_ci")),
                    _ci(entry["sensitivity"], entry["sensitivity_ci"]),
                    _ci(entry.get("delta_sensitivity"), entry.get("delta_sensitivity_ci"), True),
                    _ci(ref.get("specificity"), ref.get("specificity_ci")),
                    _ci(entry["specificity"], entry["specificity_ci"]),
                    _ci(entry.get("delta_specificity"), entry.get("delta_specificity_ci"), True),
                ]
            )
        parts.append(_table(head, rows))
        thumbs = data.thumbnails.get(int(row.trial or 0), [])
        if thumbs:
            parts.append("<div class='thumbs'>" + "".join(_figure(t) for t in thumbs) + "</div>")
    if data.images_missing:
        parts.append(f"<p>No thumbnails: {html.escape(data.images_missing)}.</p>")
    return Block("What the compressed models forget", "".join(parts))


def _figure(thumb: Thumbnail) -> str:
    caption = html.escape(thumb.caption).replace("\n", "<br>")
    return (
        f"<figure class='{thumb.outcome}'><img alt='flipped test image' "
        f"src='data:image/png;base64,{thumb.png}'><figcaption>{thumb.outcome}: {caption}"
        "</figcaption></figure>"
    )


def subgroups_block(table: FrontTable, data: ValidationData) -> Block:
    lines = [
        "Within each subgroup of the test split (manifest columns): the teacher's and the "
        "member's scores, resampled within the subgroup, and the paired difference. A "
        "subgroup whose own uncertainty is wider than a margin says so instead of a verdict."
    ]
    head = ["trial", "subgroup", "n", "teacher AUC", "AUC", "ΔAUC", "Δsens", "Δspec", "verdict"]
    rows = []
    for row in data.members:
        for entry in (row.test.subgroups if row.test else None) or []:
            rows.append(
                [
                    str(row.trial),
                    f"{entry['column']}={entry['value']}",
                    str(entry["n"]),
                    _ci(entry.get("teacher_auc"), entry.get("teacher_auc_ci")),
                    _ci(entry.get("auc"), entry.get("auc_ci")),
                    _ci(entry.get("delta_auc"), entry.get("delta_auc_ci"), True),
                    _ci(entry.get("delta_sensitivity"), entry.get("delta_sensitivity_ci"), True),
                    _ci(entry.get("delta_specificity"), entry.get("delta_specificity_ci"), True),
                    subgroup_verdict(entry, table.rule),
                ]
            )
    return Block("Subgroups", _notes(lines) + _table(head, rows))


def card_block(table: FrontTable, data: ValidationData) -> Block:
    picks = [r for r in data.members if r.verdict and r.verdict.non_inferior]
    pick = min(picks or data.members, key=lambda r: r.flops) if data.members else None
    if pick is None or pick.trial is None:
        return Block("Model card", "<p>No member to describe.</p>")
    command = export_command(table.storage, table.study, pick.trial, card=True)
    return Block(
        "Model card",
        "<p>A Markdown and a JSON model card (intended use, data, both models, the criteria "
        "and verdicts, calibration, robustness, flips, subgroups, versions, fingerprints, and "
        "the TRIPOD+AI / CLAIM items covered) are written beside the exported model by:</p>"
        f"<pre><code>{html.escape(command)} --intended-use '...'</code></pre>",
    )
