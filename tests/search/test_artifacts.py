"""The study's artifact store (`--artifacts`): a folder or an S3 bucket on a real endpoint on
127.0.0.1, kept in the study, holding every trial's model and the teacher, so that a
machine without the teacher's cache file fetches it; and one teacher per study."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
import torch
from optuna.artifacts import get_all_artifact_meta

import medslim
from medslim.objectives.teacher import TeacherScores
from medslim.search.cli import main
from medslim.search.study_format import ARTIFACTS_ATTR
from medslim.search.study_teacher import FINGERPRINT, TEACHER_FILE, teacher_difference

pytestmark = pytest.mark.e2e

TINY = ["--teacher-epochs", "5", "--epochs", "1", "--baselines", "2", "--no-progress"]


def _run(storage: str, *extra: str, trials: int = 3) -> int:
    return main(
        ["run", "--storage", storage, "--study", "s", "--trials", str(trials), *TINY, *extra]
    )


def _forget_local_files(folder: Path) -> None:
    """As on another machine: no cached teacher beside the storage."""
    shutil.rmtree(folder / ".medslim" / "teachers")


def test_a_folder_store_holds_models_and_teacher_for_every_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, shared = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "shared" / "artifacts"
    assert _run(storage, "--artifacts", str(shared)) == 0
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs[ARTIFACTS_ATTR] == str(shared.resolve())
    assert not (tmp_path / ".medslim" / "artifacts").exists(), "models went to the default"
    assert [m.filename for m in get_all_artifact_meta(study)] == [TEACHER_FILE]
    screened = sum("candidates" in t.user_attrs for t in study.trials)  # each its JSON file
    assert len(list(shared.iterdir())) == 3 + 1 + screened  # trial models and the teacher
    _forget_local_files(tmp_path)
    capsys.readouterr()
    assert main(["pareto", "--storage", storage, "--json"]) == 0  # re-scores with the teacher
    assert list((tmp_path / ".medslim" / "teachers").glob("teacher-*.pt")), "fetched, cached"
    out = tmp_path / "m.pt"
    assert main(["export", "--storage", storage, "--trial", "2", "--out", str(out)]) == 0
    assert out.is_file()
    assert _run(storage, trials=4) == 0, "a resumed study keeps its store"
    study = optuna.load_study(study_name="s", storage=storage)
    screened = sum("candidates" in t.user_attrs for t in study.trials)
    assert len(list(shared.iterdir())) == 4 + 1 + screened


def test_an_s3_store_on_a_real_endpoint(
    tmp_path: Path, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    storage, url = f"sqlite:///{tmp_path / 'm.db'}", f"s3://{s3_bucket}/runs/first/"
    assert _run(storage, "--artifacts", url) == 0
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    trials = medslim.load_study(storage).ref.study.trials
    screened = sum("candidates" in t.user_attrs for t in trials)
    assert len(keys) == 3 + 1 + screened and all(key.startswith("runs/first/") for key in keys)
    assert not (tmp_path / ".medslim" / "artifacts").exists()
    stored = medslim.load_study(storage)
    assert stored.ref.artifacts.url == f"s3://{s3_bucket}/runs/first"
    _forget_local_files(tmp_path)
    front = stored.front()
    tests = stored.rescore(resamples=50)  # needs the teacher: fetched from the bucket
    assert set(tests.members) == {m.trial for m in front.members}
    model = stored.model(front.members[0].trial)
    assert isinstance(model, torch.nn.Module)


@pytest.mark.parametrize(
    "artifacts, message",
    [
        ("s3://no-such-bucket-here/x", "no-such-bucket-here"),
        ("http://example.com/x", "s3://bucket/prefix"),
        ("s3:///x", "names no bucket"),
    ],
)
def test_an_unusable_store_is_one_line_before_anything_is_written(
    tmp_path: Path,
    s3_bucket: str,
    capsys: pytest.CaptureFixture[str],
    artifacts: str,
    message: str,
) -> None:
    assert _run(f"sqlite:///{tmp_path / 'm.db'}", "--artifacts", artifacts) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'm.db'}") == []
    assert not list((tmp_path / ".medslim").glob("teachers/*")), "a teacher was trained"


def test_a_study_keeps_the_store_it_was_made_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    assert _run(storage, trials=2) == 0
    assert _run(storage, "--artifacts", str(tmp_path / "elsewhere"), trials=3) == 2
    assert "cannot move them" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()


def test_a_different_cached_teacher_is_replaced_by_the_studys_or_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    assert _run(storage, trials=2) == 0
    study = optuna.load_study(study_name="s", storage=storage)
    recorded = study.user_attrs["teacher"][FINGERPRINT]
    (cached,) = (tmp_path / ".medslim" / "teachers").glob("teacher-*.pt")
    own = torch.load(cached, weights_only=True)
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in own.items()}, cached)
    assert _run(storage, trials=3) == 0, "the study's teacher is fetched from its store"
    assert "differs" in capsys.readouterr().err
    assert all(torch.equal(own[k], v) for k, v in torch.load(cached, weights_only=True).items())
    # Without the study's copy in the store, a different teacher is refused in one line.
    (meta,) = [m for m in get_all_artifact_meta(study) if m.filename == TEACHER_FILE]
    (tmp_path / ".medslim" / "artifacts" / meta.artifact_id).unlink()
    torch.save({k: v * 2 if v.is_floating_point() else v for k, v in own.items()}, cached)
    assert _run(storage, trials=4) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and recorded in err and cached.name in err, err
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 3


def test_how_a_teacher_differs_from_the_studys_record() -> None:
    scores = TeacherScores(val_auc=0.99, val_acc=0.95, test_auc=0.98, test_acc=0.94)
    record = {"val_auc": 0.99, "val_acc": 0.95, FINGERPRINT: "abc"}
    assert teacher_difference(None, "abc", scores) is None  # a study about to be made
    assert teacher_difference(record, "abc", scores) is None
    assert (
        teacher_difference(record, "xyz", scores) == "weights xyz vs abc, with the same val scores"
    )
    older = {"val_auc": 0.99, "val_acc": 0.94}  # made before fingerprints: scores only
    assert teacher_difference(older, "xyz", scores) == "val ACC 0.950000 vs 0.940000"
    near = {**record, "val_auc": 0.99 + 5e-5}  # a near-tie rounded another way
    assert teacher_difference(near, "abc", scores) is None
    on_a_gpu = {**record, "val_auc": 0.99 + 4.2e-4}  # bf16 on the GPU that made the study
    assert teacher_difference(on_a_gpu, "abc", scores) is None
    other_data = {**record, "val_auc": 0.97}
    assert "the data differs" in str(teacher_difference(other_data, "abc", scores))


def test_another_model_under_force_config_never_loads_nor_overwrites_the_studys_teacher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    assert _run(storage) == 0
    recorded = optuna.load_study(study_name="s", storage=storage).user_attrs["teacher"]
    cached = tmp_path / ".medslim" / "teachers" / recorded["cache_file"]
    before = cached.read_bytes()
    capsys.readouterr()
    other = ["--model", "family:mlp", "--model-args", '{"hidden": [8]}', "--force-config"]
    assert _run(storage, *other, trials=4) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a study keeps its teacher" in err, err
    assert cached.read_bytes() == before, "the first model's cached teacher was overwritten"
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 3
