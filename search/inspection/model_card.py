"""A model card for an exported front member: Markdown for people, JSON for tools.

What a clinical team signs needs, in one place: the intended use (the user's words, or
marked missing), the data and its splits, the teacher and the member side by side, the
acceptance criteria fixed before the test split was read with each verdict and interval,
calibration, robustness to corrupted images, the cases the member now decides differently,
subgroups, seeds, package versions and the weights' fingerprints. A table maps the card to
the topics of the TRIPOD+AI (Collins et al., BMJ 2024) and CLAIM 2024 (Tejani et al.,
Radiology: AI 2024) reporting checklists: which it covers, and which the user must supply.

Compute, then draw: `card_data` builds plain data (the JSON card); `card_markdown` writes it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from medslim.errors import UsageError
from medslim.objectives.determinism import weights_fingerprint
from medslim.search.inspection.front_table import FrontTable, Row
from medslim.search.inspection.reopen import reopen
from medslim.search.inspection.rescore import member_model
from medslim.search.refined import refined_record
from medslim.search.stored import StudyRef
from medslim.search.study_format import CONFIG_ATTR, DATASET_ATTR, study_attrs

CARD_VERSION = 1
MISSING = "MISSING: state it with `medslim export --card --intended-use '...'`"
PACKAGES = ("medslim", "torch", "torchvision", "optuna", "numpy", "scikit-learn", "medmnistc")

CHECKLIST: list[tuple[str, str, str]] = [
    # (topic, status, where in the card, or what the user must supply)
    ("Intended use, clinical context and users", "user", "intended_use"),
    (
        "Data source, dates and setting of collection",
        "user",
        "data (source given; dates, setting and eligibility are the user's)",
    ),
    ("Eligibility of participants / images, exclusions", "user", "not known to medslim"),
    ("Reference standard / outcome definition and its assessors", "user", "not known"),
    ("Data partitions: how split, sizes per split", "covered", "data.splits"),
    (
        "Sample size and its justification",
        "partly",
        "data.splits; criteria.resolvable (the margins the test split can resolve)",
    ),
    (
        "Missing data and data preparation",
        "partly",
        "data (image size, channels); how missing data were handled is the user's",
    ),
    ("Model specification (architecture, parameters, size)", "covered", "teacher, member"),
    ("Training procedure (compression search, seeds)", "covered", "member.description, seeds"),
    (
        "Pre-specified acceptance criteria / analysis plan",
        "covered",
        "criteria (fixed_at, test_first_read, post_hoc)",
    ),
    ("Performance with confidence intervals (discrimination)", "covered", "verdict, scores"),
    ("Calibration", "covered", "calibration"),
    (
        "Operating point / threshold selection",
        "covered",
        "scores.threshold, operating points (chosen on the validation split)",
    ),
    (
        "Class imbalance",
        "partly",
        "per_class, data.splits (counts per class are the user's to discuss)",
    ),
    ("Robustness and failure analysis", "covered", "robustness, flips"),
    ("Fairness: performance in subgroups", "covered if --subgroups", "subgroups"),
    ("Comparison with a reference model", "covered", "teacher vs member, paired"),
    ("External validation on other sites / devices", "user", "not done: one test split"),
    ("Computational requirements (FLOPs, latency, hardware)", "covered", "member.latency"),
    ("Code, software versions and reproducibility", "covered", "versions, fingerprints"),
    ("Ethics approval, consent, funding, conflicts of interest", "user", "not known"),
    ("Clinical impact, human-AI interaction, monitoring after deployment", "user", "not known"),
]
"""Topics of TRIPOD+AI and CLAIM 2024 a card addresses (named by topic, not item number)."""


def row_refined(ref: StudyRef, trial: int) -> int:
    """Epochs `medslim refine` gave the member (0: its trial's own model)."""
    record = refined_record(ref.study, trial)
    return int(record["epochs"]) if record else 0


def card_data(
    ref: StudyRef,
    table: FrontTable,
    trial: int,
    model_file: Path,
    *,
    intended_use: str | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """The JSON card of front member `trial`, exported to `model_file`."""
    row = next((r for r in table.rows[1:] if r.trial == trial), None)
    if row is None:
        members = ", ".join(str(r.trial) for r in table.rows[1:]) or "none"
        raise UsageError(
            f"trial {trial} is not on the study's front (members: {members}); a card reports "
            "test scores, which medslim computes for front members only"
        )
    teacher_row = table.rows[0]
    attrs = study_attrs(ref.study)
    context = reopen(ref, data_dir)
    model = member_model(ref, ref.finished_trial(trial), row_refined(ref, trial) > 0)
    config = attrs.get(CONFIG_ATTR, {})
    dataset = attrs.get(DATASET_ATTR, {})
    data = context.data
    return {
        "card_version": CARD_VERSION,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "study": table.study,
        "intended_use": intended_use or MISSING,
        "intended_use_missing": not intended_use,
        "data": {
            "name": dataset.get("name"),
            "source": dataset.get("source"),
            "task": dataset.get("task"),
            "class_names": dataset.get("class_names"),
            "positive_class": table.positive.as_json() if table.positive else None,
            "input_shape": dataset.get("input_shape"),
            "layout": dataset.get("layout"),
            "split": dataset.get("split"),
            "split_digest": dataset.get("split_digest"),
            "splits": {s: len(getattr(data, s)) for s in ("train", "val", "test")},
            "test_digest": _split_digest(data.test),
            "subgroup_columns": list(config.get("subgroups") or []),
        },
        "teacher": {
            "model": config.get("model"),
            "model_args": config.get("model_args"),
            "flops": teacher_row.flops,
            "params": teacher_row.params,
            "size_bytes": _state_bytes(context.teacher),
            "weights_fingerprint": weights_fingerprint(context.teacher),
            "latency": _latency(teacher_row, teacher=True),
            "test": _scores(teacher_row),
        },
        "member": {
            "trial": trial,
            "kind": row.kind,
            "description": row.description,
            "flops": row.flops,
            "flops_ratio": row.flops_ratio,
            "params": row.params,
            "file": model_file.name,
            "size_bytes": model_file.stat().st_size,
            "file_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
            "weights_fingerprint": weights_fingerprint(model),
            "refined_epochs": row_refined(ref, trial),
            "latency": _latency(row),
            "test": _scores(row),
        },
        "criteria": {
            **(table.judging.as_json() if table.judging else {}),
            "rule": table.rule.describe(),
            "verdict": row.verdict.text if row.verdict else None,
            "non_inferior": row.verdict.non_inferior if row.verdict else None,
            "checks": row.verdict.checks if row.verdict else [],
            "flags": row.flags,
        },
        "calibration": _calibration(row, teacher_row),
        "robustness": _robustness(table, trial),
        "flips": {
            "rate": row.test.flip_rate if row.test else None,
            "rate_ci": row.test.flip_rate_ci if row.test else None,
            "most_confident": (row.test.flips or [])[:12] if row.test else [],
        },
        "per_class": row.test.per_class if row.test else None,
        "subgroups": row.test.subgroups if row.test else None,
        "seeds": {
            "study": config.get("seed"),
            "sampler": config.get("sampler"),
            "bootstrap": row.test.bootstrap if row.test else None,
            "corruptions": 0,
        },
        "versions": _versions(),
        "machine": _machine(),
        "checklist": [
            {"topic": topic, "status": status, "where": where}
            for topic, status, where in CHECKLIST
        ],
        "notes": table.notes,
    }


def _split_digest(split: Any) -> str:
    digest = hashlib.sha256()
    split.fingerprint(digest)
    return digest.hexdigest()[:16]


def _state_bytes(model: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def _latency(row: Row, teacher: bool = False) -> dict[str, Any] | None:
    latency = row.latency
    if latency is None:
        return None
    return {
        "median_ms": latency.teacher_ms if teacher else latency.median_ms,
        "ratio_to_teacher": 1.0 if teacher else latency.ratio,
        "batch": 1,
        "threads": latency.threads,
        "measured_on": _machine()["processor"],
        "noisy": latency.noisy,
    }


def _scores(row: Row) -> dict[str, Any] | None:
    if row.test is None:
        return None
    data = row.test.as_json()
    for key in ("flips", "per_class", "subgroups"):
        data.pop(key, None)
    return data


def _calibration(row: Row, teacher: Row) -> dict[str, Any]:
    mine, theirs = row.test, teacher.test
    return {
        "method": "ECE over 10 equal-width bins, debiased (2·ECE − bootstrap mean) with a "
        "basic bootstrap interval; ΔECE paired",
        "teacher_ece": theirs.ece if theirs else None,
        "teacher_ece_ci": theirs.ece_ci if theirs else None,
        "member_ece": mine.ece if mine else None,
        "member_ece_ci": mine.ece_ci if mine else None,
        "delta_ece": mine.delta_ece if mine else None,
        "delta_ece_ci": mine.delta_ece_ci if mine else None,
    }


def _robustness(table: FrontTable, trial: int) -> dict[str, Any] | None:
    robust = table.robustness
    if robust is None or trial not in robust.members:
        return None
    row = next(r for r in table.rows if r.trial == trial)
    return {
        "corruption_set": robust.corruption_set,
        "source": robust.source,
        "note": robust.note,
        "skipped": robust.skipped,
        "falls_behind_on": row.corrupted,
        "member": robust.members[trial]["results"],
        "teacher": robust.teacher.get("results", []),
    }


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _machine() -> dict[str, Any]:
    return {
        "processor": platform.processor() or platform.machine(),
        "system": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


# --- drawing -------------------------------------------------------------------------------


def _ci(value: Any, ci: Any, signed: bool = False) -> str:
    if value is None or ci is None:
        return "—"
    form = "+.3f" if signed else ".3f"
    return f"{value:{form}} [{ci[0]:{form}}, {ci[1]:{form}}]"


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people: every section of the JSON, as text and tables."""
    data, teacher, member = card["data"], card["teacher"], card["member"]
    criteria, calibration = card["criteria"], card["calibration"]
    mt, tt = member["test"] or {}, teacher["test"] or {}
    lines = [
        f"# Model card: trial {member['trial']} of study {card['study']}",
        "",
        f"Generated {card['generated']} by medslim {card['versions'].get('medslim')}.",
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Data",
        "",
        f"- {data['name']} ({data['task']}), source `{data['source']}`, layout "
        f"{data['layout']}, input {data['input_shape']}",
        f"- classes: {', '.join(map(str, data['class_names'] or []))}"
        + (
            f"; positive class {data['positive_class']['name']!r} "
            f"({data['positive_class']['why']})"
            if data["positive_class"]
            else ""
        ),
        f"- splits: {data['splits']} ({data['split']}); split digest {data['split_digest']}, "
        f"test digest {data['test_digest']}",
        "",
        "## Models",
        "",
        "| | teacher | member |",
        "| --- | --- | --- |",
        f"| what | {teacher['model']} | {member['kind']}: {member['description']} |",
        f"| FLOPs | {teacher['flops']:,} | {member['flops']:,} ({member['flops_ratio']:.1%}) |",
        f"| parameters | {teacher['params']:,} | {member['params']:,} |",
        f"| size (bytes) | {teacher['size_bytes']:,} | {member['size_bytes']:,} |",
        f"| batch-1 latency | {_ms(teacher['latency'])} | {_ms(member['latency'])} |",
        f"| test AUC | {_ci(tt.get('test_auc'), tt.get('test_auc_ci'))} | "
        f"{_ci(mt.get('test_auc'), mt.get('test_auc_ci'))} |",
        f"| weights fingerprint | {teacher['weights_fingerprint']} | "
        f"{member['weights_fingerprint']} |",
        "",
        f"Member file `{member['file']}`, sha256 {member['file_sha256']}.",
        "",
        "## Acceptance criteria and verdict",
        "",
        f"Criteria `{criteria.get('criteria')}`: {criteria['rule']}.",
        f"Fixed in advance: {criteria.get('fixed') or 'no'}"
        + (f" ({criteria.get('fixed_at')})" if criteria.get("fixed") else "")
        + f"; post-hoc: {'yes' if criteria.get('post_hoc') else 'no'}; test split first read "
        f"{criteria.get('test_first_read') or 'now'}.",
        "",
        f"**Verdict: {criteria['verdict']}**"
        + (f" (flags: {', '.join(criteria['flags'])})" if criteria["flags"] else ""),
        "",
        "| criterion | result | 95% interval(s) |",
        "| --- | --- | --- |",
    ]
    for check in criteria["checks"]:
        spans = "; ".join(
            f"{where + ' ' if where else ''}[{ci[0]:+.3f}, {ci[1]:+.3f}]"
            for where, ci in check["intervals"].items()
        )
        lines.append(
            f"| `{check['criterion']}` | {'pass' if check['passed'] else 'FAIL'} | {spans} |"
        )
    lines += [
        "",
        "## Calibration",
        "",
        f"{calibration['method']}. Teacher ECE "
        f"{_ci(calibration['teacher_ece'], calibration['teacher_ece_ci'])}, member ECE "
        f"{_ci(calibration['member_ece'], calibration['member_ece_ci'])}, ΔECE "
        f"{_ci(calibration['delta_ece'], calibration['delta_ece_ci'], True)}.",
        "",
        "## Robustness to corrupted images",
        "",
    ]
    lines += _robustness_lines(card["robustness"])
    flips = card["flips"]
    lines += [
        "",
        "## What the member decides differently (flips)",
        "",
        f"Flip rate against the teacher: {_ci(flips['rate'], flips['rate_ci'])}.",
        "",
        "| test row | truth | teacher | member | member confidence | outcome |",
        "| ---: | --- | --- | --- | ---: | --- |",
    ]
    for flip in flips["most_confident"]:
        lines.append(
            f"| {flip['index']} | {flip['label']} | {flip['teacher_decision']} "
            f"({flip['teacher_score']:.2f}) | {flip['member_decision']} "
            f"({flip['member_score']:.2f}) | {flip['confidence']:.2f} | {flip['outcome']} |"
        )
    lines += ["", "## Per class", "", "| class | n | sensitivity | Δ | specificity | Δ |"]
    lines.append("| --- | ---: | --- | --- | --- | --- |")
    for entry in card["per_class"] or []:
        lines.append(
            f"| {_class(entry['class'], data)} | {entry['n']} | "
            f"{_ci(entry['sensitivity'], entry['sensitivity_ci'])} | "
            f"{_ci(entry.get('delta_sensitivity'), entry.get('delta_sensitivity_ci'), True)} | "
            f"{_ci(entry['specificity'], entry['specificity_ci'])} | "
            f"{_ci(entry.get('delta_specificity'), entry.get('delta_specificity_ci'), True)} |"
        )
    lines += ["", "## Subgroups", ""]
    if card["subgroups"]:
        lines += [
            "| subgroup | n | teacher AUC | member AUC | ΔAUC |",
            "| --- | ---: | --- | --- | --- |",
        ]
        for entry in card["subgroups"]:
            lines.append(
                f"| {entry['column']}={entry['value']} | {entry['n']} | "
                f"{_ci(entry.get('teacher_auc'), entry.get('teacher_auc_ci'))} | "
                f"{_ci(entry.get('auc'), entry.get('auc_ci'))} | "
                f"{_ci(entry.get('delta_auc'), entry.get('delta_auc_ci'), True)} |"
                + (f" {entry['note']}" if "note" in entry else "")
            )
    else:
        lines.append("None: the study was made without --subgroups (CSV manifest columns).")
    lines += [
        "",
        "## Seeds, versions, machine",
        "",
        f"- seeds: {json.dumps(card['seeds'])}",
        f"- versions: {json.dumps(card['versions'])}",
        f"- machine: {json.dumps(card['machine'])}",
        "",
        "## TRIPOD+AI and CLAIM 2024: what this card covers",
        "",
        "| topic | status | where / what to supply |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {c['topic']} | {c['status']} | {c['where']} |" for c in card["checklist"]]
    return "\n".join(lines) + "\n"


def _ms(latency: dict[str, Any] | None) -> str:
    if latency is None:
        return "—"
    return (
        f"{latency['median_ms']:.3g} ms ({latency['threads']} thread(s), {latency['measured_on']})"
    )


def _class(index: Any, data: dict[str, Any]) -> str:
    names = data.get("class_names") or []
    return str(names[index]) if isinstance(index, int) and index < len(names) else str(index)


def _robustness_lines(robust: dict[str, Any] | None) -> list[str]:
    if robust is None:
        return ["Not scored (tabular data, or no robustness run)."]
    lines = [f"Corruptions: {robust['source']}."]
    if robust["note"]:
        lines.append(robust["note"])
    lines += [f"Skipped {name}: {why}." for name, why in robust["skipped"].items()]
    fails = robust["falls_behind_on"] or []
    lines += [
        "",
        f"Falls behind the clean AUC margin on {len(fails)} of {len(robust['member'])}"
        + (f": {', '.join(fails)}." if fails else "."),
        "",
        "| corruption | severity | teacher AUC | member AUC | ΔAUC |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for theirs, mine in zip(robust["teacher"], robust["member"], strict=True):
        lines.append(
            f"| {mine['corruption']} | {mine['severity']} | "
            f"{_ci(theirs['auc'], theirs['auc_ci'])} | {_ci(mine['auc'], mine['auc_ci'])} | "
            f"{_ci(mine['delta_auc'], mine['delta_auc_ci'], True)} |"
        )
    return lines


def write_card(card: dict[str, Any], model_file: Path) -> tuple[Path, Path]:
    """`<model>.card.md` and `<model>.card.json` beside the exported model."""
    stem = model_file.with_suffix("")
    markdown, data = Path(f"{stem}.card.md"), Path(f"{stem}.card.json")
    markdown.write_text(card_markdown(card), encoding="utf-8")
    data.write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
    return markdown, data
