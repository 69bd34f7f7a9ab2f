"""3-D volumes on this machine's CPU: AdrenalMNIST3D (the shared 64³ file, and resized to 28³).

1. Teacher: medslim's default 3-D teacher (on the CPU: resnet3d8), trained exactly as
   `medslim run` trains it, at each size: val and test AUC/ACC next to the MedMNIST v2
   paper's 3-D baseline, and how long training took.
2. Study: a `medslim run` study with that teacher at the first size (its defaults, `--trials`
   trials), its front re-scored on the test split: each member's FLOPs ratio and paired
   test ΔAUC interval, and the smallest FLOPs ratio non-inferior on test (the 95% lower
   bound of ΔAUC above −margin).
3. Pipeline against the model: volumes/s of batches as training makes them (rows gathered,
   normalised, the 3-D random affine) next to volumes/s of a training step (forward,
   backward, AdamW) of resnet3d8 and resnet3d18, at each size.

Teachers and the study live in `--cache`, so a rerun only re-scores.

    nice -n 10 python benchmarks/volumes.py [--sizes 28,64] [--trials 16] [--seed 0]
        [--parts teacher,study,pipeline] [--models resnet3d8,resnet3d18] [--threads 2]
        [--batch 16] [--out volumes.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from common import SHARED_DATA, add_cache_argument, show_progress
from data_pipeline import pipeline_rate, training_rate
from teacher_quality import measure

import medslim
from medslim.objectives.data import load_dataset
from medslim.search.storage import storage_dir

FILE = "adrenalmnist3d_64.npz"
PAPER = {"model": "ResNet-50 + 3D (28³)", "test_auc": 0.828, "test_acc": 0.745}
"""The MedMNIST v2 paper's AdrenalMNIST3D row for ResNet-50 + 3D convolutions at 28³
(Yang et al., Scientific Data 2023), as medmnist.com/v2 lists it; docs/volumes.md says
where it was read and why the table's other rows are not quoted."""
MODELS = ("resnet3d8", "resnet3d18")
MARGIN = 0.01


def storage(cache: Path) -> str:
    return f"sqlite:///{cache / 'volumes.db'}"


def teacher_dir(cache: Path) -> Path:
    """The study's own teacher folder, so the study reuses the teachers measured here."""
    return storage_dir(storage(cache)) / "teachers"


def teachers(path: Path, sizes: list[int], seed: int, cache: Path) -> list[dict[str, Any]]:
    rows = []
    print(
        f"{'size':>5} {'model':<10}{'epochs':>7}{'val AUC':>9}{'val ACC':>9}{'test AUC':>10}"
        f"{'test ACC':>10}  paper {PAPER['model']} test AUC/ACC   train s"
    )
    for size in sizes:
        row = measure(path, None, None, seed, teacher_dir(cache), size, cache / "data")
        rows.append(row)
        took = "cached" if row["seconds"] is None else f"{row['seconds']:.0f}"
        print(
            f"{size:>4}³ {row['model']:<10}{row['epochs']:>7}{row['val_auc']:>9.4f}"
            f"{row['val_acc']:>9.4f}{row['test_auc']:>10.4f}{row['test_acc']:>10.4f}"
            f"  {PAPER['test_auc']:.3f} / {PAPER['test_acc']:.3f}{took:>22}",
            flush=True,
        )
    return rows


def study(path: Path, size: int, trials: int, seed: int, cache: Path) -> dict[str, Any]:
    """A default study at `size` (its teacher from `teachers`), its front on test."""
    start = time.perf_counter()
    stored = medslim.run(
        dataset=str(path),
        size=size,
        trials=trials,
        seed=seed,
        storage=storage(cache),
        data_dir=str(cache / "data"),
        progress=False,
    )
    seconds = time.perf_counter() - start
    table = stored.table(margin=MARGIN, data_dir=cache / "data")
    members = []
    for row in table.rows[1:]:
        test = row.test
        members.append(
            {
                "trial": row.trial,
                "kind": row.kind,
                "what": row.description,
                "flops_ratio": row.flops_ratio,
                "val_auc": row.val_auc,
                "test_auc": test.test_auc if test else None,
                "delta_auc_ci": test.delta_auc_ci if test else None,
                "non_inferior": bool(row.verdict and row.verdict.non_inferior),
            }
        )
    passing = [m["flops_ratio"] for m in members if m["non_inferior"]]
    teacher = table.rows[0].test
    print(f"study {stored.study.study_name}: {trials} trials in {seconds:.0f} s")
    print(f"{'trial':>5} {'kind':<10}{'FLOPs×':>8}{'val AUC':>9}{'test AUC':>10}  ΔAUC 95% CI")
    if teacher is not None:
        print(
            f"{'':>5} {'teacher':<10}{1.0:>8.3f}{table.rows[0].val_auc:>9.4f}"
            f"{teacher.test_auc:>10.4f}"
        )
    for m in members:
        ci = m["delta_auc_ci"]
        interval = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "-"
        mark = "  non-inferior" if m["non_inferior"] else ""
        test_auc = f"{m['test_auc']:.4f}" if m["test_auc"] is not None else "-"
        print(
            f"{m['trial']:>5} {m['kind']:<10}{m['flops_ratio']:>8.3f}{m['val_auc']:>9.4f}"
            f"{test_auc:>10}  {interval}{mark}"
        )
    smallest = min(passing) if passing else None
    print(
        f"smallest FLOPs ratio non-inferior on test (margin {MARGIN}): "
        + (f"{smallest:.3f}" if smallest is not None else "none")
    )
    return {
        "study": stored.study.study_name,
        "size": size,
        "trials": trials,
        "seconds": seconds,
        "teacher_test_auc": teacher.test_auc if teacher else None,
        "members": members,
        "smallest_non_inferior_flops_ratio": smallest,
        "margin": MARGIN,
    }


def pipeline(
    path: Path, sizes: list[int], batch: int, cache: Path, models: list[str]
) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        data = load_dataset(str(path), size=size, data_dir=cache / "data")
        made = pipeline_rate(data.train, batch, batches=20)
        row: dict[str, Any] = {"size": size, "pipeline_vol_s": made}
        for model in models:
            row[f"{model}_vol_s"] = training_rate(data.input_shape, batch, 2, model)
        rows.append(row)
        steps = "  ".join(f"{m} step {row[f'{m}_vol_s']:>7.2f} vol/s" for m in models)
        print(f"{size:>4}³ pipeline {made:>8.1f} vol/s  {steps}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="28,64", help="cube sides; the study uses the first")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help=f"folder of {FILE}")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=16, help="pipeline and step batch")
    parser.add_argument("--parts", default="teacher,study,pipeline")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="models whose training step is timed"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("volumes.json"))
    add_cache_argument(parser, "teachers, the resized volumes and the study")
    args = parser.parse_args()
    path = args.data / FILE
    if not path.is_file():
        print(f"{path} is absent: this benchmark needs the real AdrenalMNIST3D file")
        return 1
    torch.set_num_threads(args.threads)
    cache = args.cache / "volumes"
    sizes = [int(s) for s in args.sizes.split(",")]
    parts = set(args.parts.split(","))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"{FILE}, sizes {sizes}, {args.threads} threads, {device}, seed {args.seed}")
    show_progress()
    result: dict[str, Any] = {"sizes": sizes, "threads": args.threads, "device": device}
    if "teacher" in parts:
        result["teachers"] = teachers(path, sizes, args.seed, cache)
        result["paper"] = PAPER
    if "study" in parts:
        result["study"] = study(path, sizes[0], args.trials, args.seed, cache)
    if "pipeline" in parts:
        result["pipeline"] = pipeline(path, sizes, args.batch, cache, args.models.split(","))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result["load_average"] = load
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
