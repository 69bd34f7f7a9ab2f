"""Decoded images, cached once per (file list, size, channels) and memory-mapped.

Decoding thousands of PNG/JPEG/DICOM files, NIfTI volumes or DICOM series (or resizing a
whole .npz) costs minutes; it happens once, into `<data dir>/decoded/<name>-<key>/images.npy`
(uint8 N×S×S×C, volumes N×D×H×W×1, the splits one after the other), and every later run,
trial and worker on the machine maps that file instead. The key hashes each file's path,
split, size and modification time (each slice's, for a DICOM series) with the target size,
channels and a volume's window, so a changed file or another `--size` decodes again.
Written to a temporary folder and renamed, so a reader never sees half a cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from medslim.objectives import imagefiles, volumefiles
from medslim.objectives.manifest import SPLITS, Manifest
from medslim.objectives.windows import Window

logger = logging.getLogger(__name__)

FORMAT = 1
"""Bumped when decoding changes, so old caches are not reused."""
_VOLUME_WORKERS = 4
Fill = Callable[[np.ndarray], None]
"""Writes every row of the (memory-mapped) image array in place."""
Plan = Callable[[], tuple[tuple[int, ...], Fill]]
"""Run on a cache miss only: (one sample's shape, how to fill the array)."""
Size = int | tuple[int, ...]
"""A 2-D image's side, or a volume's (D, H, W)."""


def cache_key(
    parts: Iterable[str], size: Size, channels: int | None, window: Window | None = None
) -> str:
    """`channels` None: as the data is (the cache records what that turned out to be)."""
    shape = size if isinstance(size, int) else "x".join(map(str, size))
    head = f"{FORMAT}\0{shape}\0{channels}" + (f"\0{window}" if window is not None else "")
    digest = hashlib.sha256(f"{head}\n".encode())
    for part in parts:
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()[:16]


def manifest_key(
    manifest: Manifest,
    rows: dict[str, np.ndarray],
    size: Size,
    channels: int | None,
    window: Window | None = None,
) -> str:
    """Each file's path, split, size and modification time, in cache order."""
    parts = []
    for split in SPLITS:
        for row in rows[split]:
            file = manifest.files[row]
            parts.append(f"{file}\0{split}\0{_stamp(file)}")
    return cache_key(parts, size, channels, window)


def _stamp(path: Path) -> str:
    """A file's size and modification time; a series folder's, each slice's in turn."""
    if not path.is_dir():
        status = path.stat()
        return f"{status.st_size}\0{status.st_mtime_ns}"
    return "\0".join(f"{file.name}\0{_stamp(file)}" for file in sorted(path.iterdir()))


def is_cached(folder: Path) -> bool:
    """The images of `folder`'s key were decoded already."""
    return (folder / "images.npy").is_file()


def cached_channels(folder: Path) -> int | None:
    """The channels of the images decoded into `folder` (None: not decoded yet)."""
    if not is_cached(folder):
        return None
    return int(np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False).shape[-1])


def cached_images(folder: Path, counts: dict[str, int], plan: Plan) -> dict[str, np.ndarray]:
    """The images of each split, from `folder`, or decoded there now as `plan` says."""
    images = folder / "images.npy"
    if not images.is_file():
        shape, fill = plan()
        _build(folder, sum(counts.values()), shape, fill)
    else:
        logger.info("decoded images reused from %s", folder)
    mapped = np.load(images, mmap_mode="c", allow_pickle=False)
    splits, start = {}, 0
    for split in SPLITS:
        splits[split] = mapped[start : start + counts[split]]
        start += counts[split]
    return splits


def decode_files(manifest: Manifest, order: np.ndarray, size: int, channels: int) -> Fill:
    """A `Fill` that decodes the manifest's files in `order`, on all cores (Pillow and
    zlib release the GIL)."""

    def fill(target: np.ndarray) -> None:
        def one(position: int) -> None:
            target[position] = imagefiles.decode(manifest.files[order[position]], size, channels)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for _ in pool.map(one, range(len(order))):
                pass

    return fill


def decode_volumes(
    manifest: Manifest, order: np.ndarray, shape: volumefiles.Shape, window: Window
) -> Fill:
    """A `Fill` that decodes the manifest's volumes in `order` (NIfTI files, DICOM series),
    a few at a time: a CT scan's float voxels take hundreds of MB."""

    def fill(target: np.ndarray) -> None:
        def one(position: int) -> None:
            target[position] = volumefiles.decode(manifest.files[order[position]], shape, window)

        with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, _VOLUME_WORKERS)) as pool:
            for _ in pool.map(one, range(len(order))):
                pass

    return fill


def _build(folder: Path, rows: int, shape: tuple[int, ...], fill: Fill) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    logger.info("decoding %d samples into %s ...", rows, folder)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        target = np.lib.format.open_memmap(
            partial / "images.npy", mode="w+", dtype=np.uint8, shape=(rows, *shape)
        )
        fill(target)
        target.flush()
        del target
        (partial / "meta.json").write_text(json.dumps({"format": FORMAT, "rows": rows}))
        try:
            os.replace(partial, folder)
        except OSError:  # another process finished the same cache first: keep theirs
            if not (folder / "images.npy").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
