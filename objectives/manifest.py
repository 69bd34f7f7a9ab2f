"""Image files with their labels and splits, read from a folder tree or a CSV manifest.

Folder: `root/{train,val,test}/<class>/*` or `root/<class>/*` (torchvision's ImageFolder
convention; classes in sorted name order). CSV: columns `path` (relative to the CSV),
one label column (integers 0..K−1, or class names, sorted) or several 0/1 columns
(multi-label), and optionally `split` (train/val/test). A split the data does not give is
carved from train by `assign_splits`: stratified, seeded, 15% each.

A sample is an image file, a NIfTI volume (`.nii`, `.nii.gz`), or a folder below a class
folder that holds one DICOM series (slices with positions): one volume. DICOM files lying
directly in a class folder stay 2-D images.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from medslim.errors import DataError
from medslim.objectives import series
from medslim.objectives.imagefiles import IMAGE_SUFFIXES, is_image
from medslim.objectives.volumefiles import NIFTI_SUFFIXES, is_nifti

SPLITS = ("train", "val", "test")
CARVED_SHARE = 0.15
"""Share of the train pool that becomes val (and test) when the data gives none."""
_SHOWN = 3
_PATH, _SPLIT = "path", "split"


@dataclass(frozen=True)
class Manifest:
    """Every image file with its label row and its split ("train" until carved)."""

    source: Path
    files: tuple[Path, ...]
    labels: np.ndarray
    splits: tuple[str, ...]
    class_names: tuple[str, ...]
    layout: str
    declared: tuple[str, ...] = ("train",)
    """Splits the data gives (a split folder, even an empty one, or a CSV's split values);
    `assign_splits` carves the others out of train."""
    carved: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Subgroup columns of a CSV (`sex`, `site`): every file's value."""

    def split_rows(self) -> dict[str, np.ndarray]:
        return {s: np.flatnonzero(np.asarray(self.splits) == s) for s in SPLITS}

    def digest(self) -> str:
        """Which file is in which split: the same digest, the same split."""
        hasher = hashlib.sha256()
        for file, split in zip(self.files, self.splits, strict=True):
            hasher.update(f"{os.path.relpath(file, self.source.parent)}\0{split}\n".encode())
        return hasher.hexdigest()[:16]


def read_folder(root: Path) -> Manifest:
    """`root/{train,val,test}/<class>/*`, or `root/<class>/*` (all train, carved later)."""
    children = _subfolders(root)
    if not children:
        raise DataError(
            f"{root}: no class folders; lay images out as {root}/<class>/*.png or "
            f"{root}/train/<class>/*.png (and val/, test/)"
        )
    by_split = {name: root / name for name in SPLITS if (root / name).is_dir()}
    if by_split and "train" not in by_split:
        raise DataError(f"{root}: has {', '.join(by_split)}/ but no train/; add {root}/train")
    if not by_split:
        by_split = {"train": root}
    classes = tuple(c.name for c in _subfolders(by_split["train"]))
    if not classes:
        raise DataError(f"{by_split['train']}: no class folders; put images in <class>/ folders")
    files: list[Path] = []
    labels: list[int] = []
    splits: list[str] = []
    for split, folder in by_split.items():
        extra = sorted({c.name for c in _subfolders(folder)} - set(classes))
        if extra:
            raise DataError(
                f"{folder}: class folders {', '.join(extra)} are not in {by_split['train']}; "
                "every class needs training images"
            )
        for index, name in enumerate(classes):
            found = _samples_under(folder / name) if (folder / name).is_dir() else []
            if not found and split == "train":
                raise DataError(
                    f"{folder / name}: class folder with no images "
                    f"({', '.join(IMAGE_SUFFIXES + NIFTI_SUFFIXES)}, or DICOM series "
                    "folders); add images or remove the folder"
                )
            files += found
            labels += [index] * len(found)
            splits += [split] * len(found)
    return Manifest(
        root,
        tuple(files),
        np.asarray(labels, np.int64),
        tuple(splits),
        classes,
        "folder",
        declared=tuple(by_split),
    )


def read_csv(
    path: Path, subgroups: tuple[str, ...] = (), *, allow_outside: bool = False
) -> Manifest:
    """A CSV manifest: `path`, label column(s), optional `split`, and the `subgroups`
    columns (which are then not labels). Listed paths must lie in the CSV's folder (or
    below it) unless `allow_outside`: a manifest from elsewhere must not make medslim open
    `../../etc/passwd`."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from error
    _check_subgroups(path, columns, subgroups)
    label_columns = [c for c in columns if c not in (_PATH, _SPLIT, *subgroups)]
    if _PATH not in columns or not label_columns:
        raise DataError(
            f"{path}: columns are {', '.join(columns) or 'none'}; a manifest needs `path`, "
            "one `label` column (or several 0/1 label columns) and optionally `split`"
        )
    if not rows:
        raise DataError(f"{path}: no rows; list one image per row")
    if not allow_outside:
        _refuse_outside(path, [row[_PATH] for row in rows])
    files = tuple((path.parent / row[_PATH]).resolve() for row in rows)
    missing = [row[_PATH] for row, file in zip(rows, files, strict=True) if not file.exists()]
    if missing:
        raise DataError(
            f"{path}: {len(missing)} listed files do not exist: {_first(missing)} "
            f"(paths are relative to {path.parent})"
        )
    splits = tuple(_split_of(path, row, number) for number, row in enumerate(rows, 2))
    labels, names = _labels(path, rows, label_columns)
    groups = {c: tuple(row[c] or "(blank)" for row in rows) for c in subgroups}
    return Manifest(
        path, files, labels, splits, names, "csv", declared=tuple(set(splits)), groups=groups
    )


def _check_subgroups(path: Path, columns: list[str], subgroups: tuple[str, ...]) -> None:
    """Each subgroup column exists and is neither the path, the split nor the only label."""
    for column in subgroups:
        if column in (_PATH, _SPLIT):
            raise DataError(
                f"--subgroups {column}: `{column}` is the manifest's {column} column, not a "
                "subgroup; name columns such as sex, age_band or site"
            )
        if column not in columns:
            raise DataError(
                f"{path}: no column {column!r} for --subgroups; its columns are "
                f"{', '.join(columns)}"
            )
    if subgroups and not [c for c in columns if c not in (_PATH, _SPLIT, *subgroups)]:
        raise DataError(
            f"--subgroups {','.join(subgroups)} leaves {path} without a label column; "
            "subgroups are columns besides the label"
        )


def test_groups(listed: Manifest, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Each subgroup column's values on the test split (in its order); a column with one
    value there gives no subgroups to compare, so it is refused."""
    result = {}
    for column, values in listed.groups.items():
        test_values = np.asarray(values, dtype=object)[rows].astype(str)
        seen = sorted(set(test_values.tolist()))
        if len(seen) < 2:
            raise DataError(
                f"{listed.source}: subgroup column {column!r} has one value "
                f"({seen[0] if seen else 'none'}) on the test split; --subgroups needs columns "
                "with two or more values there"
            )
        result[column] = test_values
    return result


def _refuse_outside(path: Path, listed: list[str]) -> None:
    """Paths that leave the CSV's folder (`..`, absolute paths elsewhere), judged by their
    text: a link the user placed inside the folder is theirs to follow."""
    folder = os.path.abspath(path.parent)
    outside = [
        entry
        for entry in listed
        if os.path.commonpath([folder, os.path.normpath(os.path.join(folder, entry))]) != folder
    ]
    if outside:
        raise DataError(
            f"{path}: {len(outside)} listed paths lie outside {folder}: {_first(outside)}; "
            "list files in the CSV's folder, or allow it with --allow-outside-paths"
        )


def assign_splits(manifest: Manifest, seed: int) -> Manifest:
    """Val and test carved out of train (stratified by label, seeded) where none is given."""
    from sklearn.model_selection import train_test_split

    splits = np.asarray(manifest.splits, dtype=object)
    pool = np.flatnonzero(splits == "train")
    wanted = [s for s in ("test", "val") if s not in manifest.declared]
    share = max(1, round(CARVED_SHARE * len(pool)))
    for split in wanted:
        rows = np.flatnonzero(splits == "train")
        labels = manifest.labels[rows]
        try:
            _, carved = train_test_split(
                rows,
                test_size=share,
                random_state=seed,
                stratify=labels if labels.ndim == 1 else None,
            )
        except ValueError as error:
            raise DataError(
                f"{manifest.source}: cannot carve a {split} split out of {len(rows)} training "
                f"images ({_too_few(labels, manifest.class_names) or error}); add images, or "
                f"give the {split} split explicitly"
            ) from error
        splits[carved] = split
    return replace(manifest, splits=tuple(splits), carved=tuple(wanted))


def _too_few(labels: np.ndarray, names: tuple[str, ...]) -> str | None:
    """The classes too small to stratify (fewer than 2 images left to carve from)."""
    if labels.ndim != 1:
        return None
    values, counts = np.unique(labels, return_counts=True)
    few = [
        f"{names[v] if v < len(names) else v} has {n}"
        for v, n in zip(values.tolist(), counts.tolist(), strict=True)
        if n < 2
    ]
    return f"class {', '.join(few)}: a stratified split needs 2 or more per class" if few else None


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _samples_under(folder: Path) -> list[Path]:
    """Image and NIfTI files under a class folder, and below it each DICOM series folder
    (taken whole, as one volume)."""
    found = []
    for parent, dirs, names in os.walk(folder):
        here = Path(parent)
        if here != folder and series.is_series(here):
            found.append(here)
            dirs[:] = []
            continue
        found += [here / n for n in sorted(names) if is_image(Path(n)) or is_nifti(Path(n))]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return found


def _split_of(path: Path, row: dict[str, str], number: int) -> str:
    value = row.get(_SPLIT, "train").lower() or "train"
    value = {"valid": "val", "validation": "val"}.get(value, value)
    if value not in SPLITS:
        raise DataError(f"{path}: row {number} has split {value!r}; use train, val or test")
    return value


def _labels(
    path: Path, rows: list[dict[str, str]], columns: list[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integers as they are; class names (one column) numbered in sorted order."""
    values = [[row[c] for c in columns] for row in rows]
    blank = [str(n) for n, row in enumerate(values, 2) if "" in row]
    if blank:
        raise DataError(f"{path}: rows {_first(blank)} have an empty label; label every image")
    if len(columns) > 1:
        try:
            return np.asarray(values, dtype=np.int64), tuple(columns)
        except ValueError as error:
            raise DataError(
                f"{path}: multi-label columns {', '.join(columns)} must hold 0 or 1 ({error}); "
                "columns that name subgroups (sex, site) go in --subgroups"
            ) from error
    column = [row[0] for row in values]
    try:
        return np.asarray([int(v) for v in column], np.int64), ()
    except ValueError:
        names = tuple(sorted(set(column)))
        index = {name: i for i, name in enumerate(names)}
        return np.asarray([index[v] for v in column], np.int64), names


def _first(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more
