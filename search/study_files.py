"""Files a whole study shares (its teacher's weights, the teacher's logits) as study-level
Optuna artifacts in the study's store, beside a copy in each machine's cache: a machine
whose cache lacks one fetches it instead of computing it again."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import optuna
from optuna.artifacts import download_artifact, get_all_artifact_meta, upload_artifact

from medslim.errors import StorageError
from medslim.search.artifacts import MODEL_MIME, Artifacts


def study_file_id(study: optuna.Study, name: str) -> str | None:
    """The artifact id of the study's file `name`, if the study holds one."""
    metas = get_all_artifact_meta(study)
    return next((meta.artifact_id for meta in metas if meta.filename == name), None)


def fetch_study_file(study: optuna.Study, store: Artifacts, name: str, dest: Path) -> bool:
    """Download the study's file `name` to `dest` (replacing it whole, never half-written);
    False when the study holds no such file."""
    artifact_id = study_file_id(study, name)
    if artifact_id is None:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    partial.unlink(missing_ok=True)
    try:
        download_artifact(artifact_store=store, file_path=str(partial), artifact_id=artifact_id)
    except Exception as error:  # each store raises its own types (missing file, network)
        partial.unlink(missing_ok=True)
        raise StorageError(
            f"cannot fetch {name} of study {study.study_name!r} from {store.url} "
            f"(artifact {artifact_id}): {error}"
        ) from error
    os.replace(partial, dest)
    return True


def publish_study_file(study: optuna.Study, store: Artifacts, path: Path, name: str) -> None:
    """Upload `path` as the study's file `name`, unless the study holds one already."""
    if study_file_id(study, name) is not None:
        return
    with tempfile.TemporaryDirectory() as folder:
        named = Path(folder) / name  # Optuna records the uploaded file's own name
        shutil.copyfile(path, named)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            upload_artifact(
                artifact_store=store,
                file_path=str(named),
                study_or_trial=study,
                mimetype=MODEL_MIME,
            )
