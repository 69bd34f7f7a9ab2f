"""MedMNIST+ facts (from the shipped medmnist_info.json, generated from the `medmnist`
package's INFO by tools/sync_medmnist_info.py) and the verified fetch of its files: every
2-D dataset at 28, 64, 128 and 224 px and every 3-D one at 28³ and 64³, `{name}.npz` for 28
and `{name}_{size}.npz` above."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pooch
import requests

from medslim.errors import DataError, UsageError
from medslim.kinds import Task

URL_ENV = "MEDSLIM_MEDMNIST_URL"
NATIVE_SIZE = 28


@dataclass(frozen=True)
class FileInfo:
    url: str
    md5: str


@dataclass(frozen=True)
class MedMNISTInfo:
    """What medslim needs to know about one MedMNIST dataset before opening its files."""

    name: str
    files: dict[int, FileInfo]
    task: Task
    n_channels: int
    labels: tuple[str, ...]
    n_samples: dict[str, int]
    dims: int = 2
    """2: images (N, H, W[, 3]); 3: volumes (N, D, H, W)."""

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self.files))

    @property
    def url(self) -> str:
        return self.files[NATIVE_SIZE].url

    @property
    def md5(self) -> str:
        return self.files[NATIVE_SIZE].md5

    def file_name(self, size: int = NATIVE_SIZE) -> str:
        return f"{self.name}.npz" if size == NATIVE_SIZE else f"{self.name}_{size}.npz"

    def file(self, size: int) -> FileInfo:
        """The file at `size` px; a size the dataset does not come in is a usage error."""
        if size not in self.files:
            offered = ", ".join(map(str, self.sizes))
            unit = "voxels a side" if self.dims == 3 else "px"
            raise UsageError(
                f"{self.name} comes in {offered} {unit}, not {size}; pick one of these with --size"
            )
        return self.files[size]

    @property
    def description(self) -> str:
        colour = "RGB" if self.n_channels == 3 else "grey"
        counts = "/".join(str(self.n_samples[split]) for split in ("train", "val", "test"))
        what = "3-D volumes" if self.dims == 3 else "images"
        return f"MedMNIST+ {colour}, {counts} train/val/test {what}"


def _read_info() -> dict[str, MedMNISTInfo]:
    """Parse the package-data json once; the label order is the class index order."""
    text = resources.files("medslim.objectives").joinpath("medmnist_info.json").read_text("utf-8")
    return {
        name: MedMNISTInfo(
            name=name,
            files={int(size): FileInfo(**file) for size, file in entry["files"].items()},
            task=entry["task"],
            n_channels=entry["n_channels"],
            labels=tuple(entry["labels"][str(i)] for i in range(len(entry["labels"]))),
            n_samples=entry["n_samples"],
            dims=entry.get("dims", 2),
        )
        for name, entry in json.loads(text)["datasets"].items()
    }


DATASETS: dict[str, MedMNISTInfo] = _read_info()


def md5(path: Path) -> str:
    return pooch.file_hash(str(path), alg="md5")


def by_md5(digest: str) -> MedMNISTInfo | None:
    """The dataset one of whose official files has this md5, so a renamed copy keeps its
    true task."""
    return next(
        (i for i in DATASETS.values() if any(f.md5 == digest for f in i.files.values())), None
    )


def download_url(info: MedMNISTInfo, size: int = NATIVE_SIZE) -> str:
    """The json's URL, or `$MEDSLIM_MEDMNIST_URL/<file name>` for a mirror (or a test server)."""
    base = os.environ.get(URL_ENV)
    return f"{base.rstrip('/')}/{info.file_name(size)}" if base else info.file(size).url


def fetch(info: MedMNISTInfo, data_dir: Path, size: int = NATIVE_SIZE) -> Path:
    """`<data_dir>/<file name>`, md5-verified; downloaded only when it is not there yet."""
    expected = info.file(size).md5
    path = data_dir / info.file_name(size)
    if not path.is_file():
        return _download(info, size, data_dir)
    if _stamp(path, expected) == _read_stamp(path):
        return path  # verified before, and unchanged since
    actual = md5(path)
    if actual != expected:
        raise DataError(
            f"{path}: md5 is {actual} but the official {info.file_name(size)} has {expected}; "
            "the file is corrupt or another version: delete it or re-download it"
        )
    with contextlib.suppress(OSError):  # a read-only data dir just verifies every time
        _stamp_file(path).write_text(_stamp(path, expected))
    return path


def _stamp_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _stamp(path: Path, digest: str) -> str:
    """What a verified file looked like: md5, size and modification time (a 224-px file
    takes seconds to hash, so it is hashed once, not on every load)."""
    status = path.stat()
    return f"{digest} {status.st_size} {status.st_mtime_ns}"


def _read_stamp(path: Path) -> str | None:
    try:
        return _stamp_file(path).read_text()
    except OSError:
        return None


def _download(info: MedMNISTInfo, size: int, data_dir: Path) -> Path:
    url = download_url(info, size)
    name = info.file_name(size)
    try:
        fetched = pooch.retrieve(
            url,
            known_hash=f"md5:{info.file(size).md5}",
            fname=name,
            path=data_dir,
            progressbar=sys.stderr.isatty(),
        )
    except requests.RequestException as err:
        raise DataError(
            f"cannot download {info.name} from {url}: {_reason(err)}. No network? "
            f"Put {name} in {data_dir} (or pass --data-dir)"
        ) from err
    except ValueError as err:  # pooch: md5 mismatch (or a URL it cannot handle)
        raise DataError(
            f"cannot download {info.name} from {url}: {err} "
            f"Put the official {name} in {data_dir} (or pass --data-dir)"
        ) from err
    except OSError as err:
        raise DataError(
            f"cannot save {info.name} to {data_dir}: {err}; pass a writable --data-dir"
        ) from err
    return Path(fetched)


def _reason(err: requests.RequestException) -> str:
    """A short one-line cause: the HTTP status when there is one, else the innermost error."""
    if err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason}"
    cause = err.args[0] if err.args else err
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the real cause
    return " ".join(str(cause).split())
