"""`docs/cli.md` is rendered from the parser and the settings table, and the flags build the
same `StudyConfig` as its own defaults."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from medslim.search.cli.app import build_parser
from medslim.search.cli.manual import render
from medslim.search.cli.settings import config_from_args, study_settings
from medslim.search.config import DEFAULT_STORAGE, StudyConfig

MANUAL = Path(__file__).parents[2] / "docs" / "cli.md"


def test_docs_cli_md_is_the_rendered_manual() -> None:
    assert MANUAL.read_text() == render(), (
        "docs/cli.md is out of step with the parser: "
        "python -m medslim.search.cli.manual > docs/cli.md"
    )


def test_every_study_setting_has_one_flag() -> None:
    named = [s.name for s in study_settings() if s.in_config]
    assert len(named) == len(set(named))
    assert set(named) == {f.name for f in fields(StudyConfig)}


@pytest.mark.parametrize("command", ["run", "sensitivity"])
def test_flag_defaults_are_the_config_defaults(command: str) -> None:
    args = build_parser().parse_args([command, "--storage", DEFAULT_STORAGE])
    assert config_from_args(args) == StudyConfig()


def test_each_flag_reaches_its_field() -> None:
    args = build_parser().parse_args(
        ["run", "--storage", DEFAULT_STORAGE, "--objectives", "val_auc, flops"]
        + ["--model-args", '{"width": 16}', "--size", "8,32,32", "--screen", "--no-kd"]
        + ["--subgroups", "sex,site", "--max-latency", "0.5", "--allow-outside-paths"]
    )
    config = config_from_args(args)
    assert config.objectives == ("val_auc", "flops")
    assert config.model_args == {"width": 16}
    assert config.size == (8, 32, 32)
    assert config.screen == 0.02 and config.kd is False
    assert config.subgroups == ("sex", "site") and config.max_latency == 0.5
    assert config.allow_outside_paths
    assert not args.no_progress
