"""Where a study's files live: trial models, the teacher and its logits, as Optuna artifacts
in one store that every worker and reader of the study can reach.

`--artifacts` names the store when a study is made, and the study keeps its URL (user attr
`artifacts`), so workers and readers on any machine find it: a folder (on a file system
that the machines share) or `s3://bucket/prefix` (Optuna's `Boto3ArtifactStore`; the
endpoint, region and credentials come from the standard AWS environment variables and
files, never from the study). Without it, the store is `.medslim/artifacts/` beside a SQLite
or journal file, or, for a database server, this machine's cache, which is `local_only`:
other machines cannot read what it holds.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import optuna
from optuna.artifacts import Boto3ArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

from medslim.errors import DiskFull, UsageError
from medslim.files import write_atomically
from medslim.search.storage import is_server_url, storage_dir
from medslim.search.study_format import stored_artifacts

MODEL_MIME = "application/octet-stream"
"""How models and other study files are uploaded (a guess from `.pt` says "SNES page table")."""

logger = logging.getLogger(__name__)

S3_SCHEME = "s3://"


class ArtifactBackend(Protocol):
    """What Optuna needs of an artifact store (its `ArtifactStore` protocol)."""

    def open_reader(self, artifact_id: str) -> BinaryIO: ...

    def write(self, artifact_id: str, content_body: BinaryIO) -> None: ...

    def remove(self, artifact_id: str) -> None: ...


class Artifacts:
    """An Optuna artifact store that knows its URL (for messages) and whether only this
    machine can reach it. Pass it wherever Optuna takes an `artifact_store`."""

    def __init__(
        self, url: str, backend: ArtifactBackend, *, local_only: bool, prefix: str = ""
    ) -> None:
        self.url = url
        self.local_only = local_only
        self._backend = backend
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"Artifacts({self.url!r})"

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self._backend.open_reader(self._prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self._backend.write(self._prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self._backend.remove(self._prefix + artifact_id)


class FolderStore:
    """Optuna's artifact store protocol over a folder, each file written whole or not at all
    (`files.write_atomically`): a full disk raises `DiskFull` and leaves no partial file
    under an artifact's name. (S3 uploads are atomic already.)"""

    def __init__(self, base: Path) -> None:
        self.base = base

    def _path(self, artifact_id: str) -> Path:
        path = (self.base / artifact_id).resolve()
        if os.path.isabs(artifact_id) or not path.is_relative_to(self.base.resolve()):
            raise ValueError(f"artifact id {artifact_id!r} points outside {self.base}")
        return path

    def open_reader(self, artifact_id: str) -> BinaryIO:
        try:
            return open(self._path(artifact_id), "rb")
        except FileNotFoundError as error:
            raise ArtifactNotFound(f"no artifact {artifact_id} in {self.base}") from error

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        try:
            write_atomically(self._path(artifact_id), content_body)
        except DiskFull as full:  # named by the store's folder, not the file's random id
            raise DiskFull(f"the artifact store {self.base}", full.needed, full.free) from full

    def remove(self, artifact_id: str) -> None:
        try:
            os.remove(self._path(artifact_id))
        except FileNotFoundError as error:
            raise ArtifactNotFound(f"no artifact {artifact_id} in {self.base}") from error


def say_if_local_only(artifacts: Artifacts) -> None:
    """One warning when the models written here stay in this machine's cache."""
    if artifacts.local_only:
        logger.warning(
            "models stay on this machine (%s): other machines cannot read them; make the "
            "study with --artifacts (a shared folder or s3://bucket/prefix) to share them",
            artifacts.url,
        )


def normalize_url(url: str) -> str:
    """`s3://bucket/prefix` as given (without a trailing slash), a folder as an absolute path
    (`file://` accepted), so the study stores one spelling every machine understands."""
    url = url.strip()
    if url.startswith(S3_SCHEME):
        bucket, _, prefix = url.removeprefix(S3_SCHEME).partition("/")
        if not bucket:
            raise UsageError(f"--artifacts {url!r} names no bucket; use s3://bucket/prefix")
        return f"{S3_SCHEME}{bucket}/{prefix.strip('/')}".rstrip("/")
    if "://" in url and not url.startswith("file://"):
        raise UsageError(
            f"--artifacts {url!r}: use a folder (on a shared file system for several machines) "
            "or s3://bucket/prefix"
        )
    if not url.removeprefix("file://"):
        raise UsageError("--artifacts needs a folder or s3://bucket/prefix")
    return str(Path(url.removeprefix("file://")).expanduser().resolve())


def default_url(storage: str) -> str:
    """The store of a study made without `--artifacts`: beside its SQLite or journal file,
    else this machine's cache."""
    return str(storage_dir(storage) / "artifacts")


def study_artifacts(study: optuna.Study, storage: str) -> Artifacts:
    """The store a study keeps its files in, for reading (nothing is created)."""
    return open_artifacts(stored_artifacts(study), storage, create=False)


def chosen_artifacts(requested: str | None, study: optuna.Study | None, storage: str) -> Artifacts:
    """The store of a study that is run now: a new study's `--artifacts` (or the default);
    an existing study's own, which `--artifacts` cannot change. Checked to be reachable and
    writable before anything is written."""
    wanted = normalize_url(requested) if requested else None
    if study is not None:
        kept = stored_artifacts(study)
        if wanted is not None and wanted != kept:
            where = kept or f"{default_url(storage)} (the default)"
            raise UsageError(
                f"study {study.study_name!r} keeps its models in {where}; --artifacts "
                f"{wanted} cannot move them: leave --artifacts out, or use another --study"
            )
        wanted = kept
    return open_artifacts(wanted, storage, create=True)


def open_artifacts(url: str | None, storage: str, *, create: bool) -> Artifacts:
    """The store at `url` (None: the default for `storage`). `create` (writers) makes a
    folder and checks that a bucket answers, so a bad store fails before a study is made."""
    if url is None:
        folder = default_url(storage)
        return _folder(folder, local_only=is_server_url(storage), create=create)
    if url.startswith(S3_SCHEME):
        return _bucket(url, create=create)
    return _folder(url, local_only=False, create=create)


def _folder(url: str, *, local_only: bool, create: bool) -> Artifacts:
    path = Path(url)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create the artifact folder {path}: {error}") from error
        if not path.is_dir() or not _writable(path):
            raise UsageError(f"the artifact folder {path} is not a writable folder")
    return Artifacts(url, FolderStore(path), local_only=local_only)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def _bucket(url: str, *, create: bool) -> Artifacts:
    bucket, _, prefix = url.removeprefix(S3_SCHEME).partition("/")
    client = _s3_client(url)
    if create:
        _check_bucket(client, bucket, url)
    return Artifacts(
        url,
        Boto3ArtifactStore(bucket, client),
        local_only=False,
        prefix=f"{prefix}/" if prefix else "",
    )


def _s3_client(url: str) -> Any:
    try:
        import boto3
    except ImportError as error:
        raise UsageError(
            f"the artifact store {url} needs boto3: pip install 'medslim[s3]'"
        ) from error
    # Endpoint (AWS_ENDPOINT_URL), region and credentials: boto3's standard environment
    # variables and config files, so no secret is ever part of the study.
    return boto3.client("s3")


def _check_bucket(client: Any, bucket: str, url: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", "?"))
        problem = {"404": "does not exist", "NoSuchBucket": "does not exist"}.get(
            code,
            f"refused access ({code}): check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE)",
        )
        raise UsageError(
            f"the artifact store {url} cannot be used: bucket {bucket!r} {problem}"
        ) from error
    except BotoCoreError as error:
        raise UsageError(
            f"the artifact store {url} cannot be reached: {error} (set AWS_ENDPOINT_URL for "
            "an S3-compatible server, and credentials in AWS_ACCESS_KEY_ID or AWS_PROFILE)"
        ) from error
