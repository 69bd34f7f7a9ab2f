"""MedMNIST facts (from the shipped medmnist_info.json) and the verified fetch of its files."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pooch
import requests

from medslim.errors import DataError
from medslim.kinds import Task

URL_ENV = "MEDSLIM_MEDMNIST_URL"


@dataclass(frozen=True)
class MedMNISTInfo:
    """What medslim needs to know about one MedMNIST dataset before opening its file."""

    name: str
    url: str
    md5: str
    task: Task
    n_channels: int
    labels: tuple[str, ...]
    n_samples: dict[str, int]

    @property
    def description(self) -> str:
        colour = "RGB" if self.n_channels == 3 else "grey"
        sizes = "/".join(str(self.n_samples[split]) for split in ("train", "val", "test"))
        return f"MedMNIST 28x28 {colour}, {sizes} train/val/test images"


def _read_info() -> dict[str, MedMNISTInfo]:
    """Parse the package-data json once; the label order is the class index order."""
    text = resources.files("medslim.objectives").joinpath("medmnist_info.json").read_text("utf-8")
    return {
        name: MedMNISTInfo(
            name=name,
            url=entry["url"],
            md5=entry["md5"],
            task=entry["task"],
            n_channels=entry["n_channels"],
            labels=tuple(entry["labels"][str(i)] for i in range(len(entry["labels"]))),
            n_samples=entry["n_samples"],
        )
        for name, entry in json.loads(text)["datasets"].items()
    }


DATASETS: dict[str, MedMNISTInfo] = _read_info()


def md5(path: Path) -> str:
    return pooch.file_hash(str(path), alg="md5")


def by_md5(digest: str) -> MedMNISTInfo | None:
    """The dataset whose official file has this md5, so a renamed copy keeps its true task."""
    return next((info for info in DATASETS.values() if info.md5 == digest), None)


def download_url(info: MedMNISTInfo) -> str:
    """The json's URL, or `$MEDSLIM_MEDMNIST_URL/<name>.npz` for a mirror (or a test server)."""
    base = os.environ.get(URL_ENV)
    return f"{base.rstrip('/')}/{info.name}.npz" if base else info.url


def fetch(info: MedMNISTInfo, data_dir: Path) -> Path:
    """`<data_dir>/<name>.npz`, md5-verified; downloaded only when it is not there yet."""
    path = data_dir / f"{info.name}.npz"
    if not path.is_file():
        return _download(info, data_dir)
    actual = md5(path)
    if actual != info.md5:
        raise DataError(
            f"{path}: md5 is {actual} but the official {info.name} file has {info.md5}; "
            "the file is corrupt or another version: delete it or re-download it"
        )
    return path


def _download(info: MedMNISTInfo, data_dir: Path) -> Path:
    url = download_url(info)
    try:
        fetched = pooch.retrieve(
            url,
            known_hash=f"md5:{info.md5}",
            fname=f"{info.name}.npz",
            path=data_dir,
            progressbar=sys.stderr.isatty(),
        )
    except requests.RequestException as err:
        raise DataError(
            f"cannot download {info.name} from {url}: {_reason(err)}. No network? "
            f"Put {info.name}.npz in {data_dir} (or pass --data-dir)"
        ) from err
    except ValueError as err:  # pooch: md5 mismatch (or a URL it cannot handle)
        raise DataError(
            f"cannot download {info.name} from {url}: {err} "
            f"Put the official {info.name}.npz in {data_dir} (or pass --data-dir)"
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
