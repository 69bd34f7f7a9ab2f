"""Teacher quality: medslim's default image teacher recipe on PneumoniaMNIST and
BreastMNIST (28 px, the real files in ../shared/data), its val and test scores next to the
MedMNIST v2 paper's ResNet-18 (28) figures (Yang et al. 2023, Table 3).

The teacher is trained exactly as `medslim run` trains it (the same config resolution,
recipe and val-only epoch selection) on the CPU, and timed; it is cached in `--cache`, so
a rerun only re-scores (pass `--fresh` to retrain).

    nice -n 5 python benchmarks/teacher_quality.py [--datasets pneumoniamnist,breastmnist]
        [--model resnet8] [--seeds 0] [--threads 2] [--out teacher_quality.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from common import SHARED_DATA, add_cache_argument

from medslim.objectives.data import load_dataset
from medslim.objectives.teacher import obtain_teacher
from medslim.search.config import StudyConfig
from medslim.search.session import resolve_config, teacher_recipe
from medslim.spaces.blueprints import blueprint_for

PAPER_RESNET18_28 = {"pneumoniamnist": (0.944, 0.854), "breastmnist": (0.901, 0.863)}
"""(test AUC, test ACC) of ResNet-18 (28) in the MedMNIST v2 paper."""


def measure(
    path: Path,
    model: str | None,
    epochs: int | None,
    seed: int,
    cache: Path,
    size: int | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """The default teacher of `path` (at `size`), trained as `medslim run` trains it (or
    found in `cache`): its val and test scores and the seconds its training took."""
    data = load_dataset(str(path), seed=seed, size=size, data_dir=data_dir)
    settings = StudyConfig(
        dataset=str(path), model=model, teacher_epochs=epochs, seed=seed, size=size
    )
    config = resolve_config(settings, data, torch.device("cpu"))
    recipe = teacher_recipe(config, data.kind)
    start = time.perf_counter()
    _, scores, trained = obtain_teacher(
        data,
        blueprint_for(str(config.model), config.model_args, data.input_shape, data.n_outputs),
        recipe,
        seed=seed,
        cache_dir=cache,
        device=torch.device("cpu"),
    )
    seconds = time.perf_counter() - start
    return {
        "dataset": path.stem,
        "size": size,
        "model": config.model,
        "seed": seed,
        "epochs": recipe.epochs,
        "recipe": recipe.__dict__,
        "val_auc": scores.val_auc,
        "val_acc": scores.val_acc,
        "test_auc": scores.test_auc,
        "test_acc": scores.test_acc,
        "seconds": seconds if trained else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="pneumoniamnist,breastmnist")
    parser.add_argument(
        "--data", type=Path, default=SHARED_DATA, help="folder of the 28-px .npz files"
    )
    parser.add_argument("--model", help="teacher preset (default: medslim's CPU default)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--teacher-epochs", type=int, help="(default: medslim's default)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fresh", action="store_true", help="retrain cached teachers")
    parser.add_argument("--out", type=Path, default=Path("teacher_quality.json"))
    add_cache_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = args.cache / "teacher_quality"
    if args.fresh:
        shutil.rmtree(cache, ignore_errors=True)
    rows = []
    print(
        f"{'dataset':<16}{'model':<10}{'seed':>5}{'epochs':>7}{'val AUC':>9}{'val ACC':>9}"
        f"{'test AUC':>10}{'test ACC':>10}{'paper AUC':>11}{'paper ACC':>11}{'train s':>9}"
    )
    for name in args.datasets.split(","):
        path = args.data / f"{name}.npz"
        if not path.is_file():
            print(f"{name}: {path} is absent; skipped")
            continue
        for seed in (int(s) for s in args.seeds.split(",")):
            row = measure(path, args.model, args.teacher_epochs, seed, cache)
            row["paper_test_auc"], row["paper_test_acc"] = PAPER_RESNET18_28[name]
            rows.append(row)
            took = "cached" if row["seconds"] is None else f"{row['seconds']:.0f}"
            print(
                f"{name:<16}{row['model']:<10}{seed:>5}{row['epochs']:>7}"
                f"{row['val_auc']:>9.4f}{row['val_acc']:>9.4f}{row['test_auc']:>10.4f}"
                f"{row['test_acc']:>10.4f}{row['paper_test_auc']:>11.3f}"
                f"{row['paper_test_acc']:>11.3f}{took:>9}",
                flush=True,
            )
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.threads} threads")
    args.out.write_text(json.dumps({"rows": rows, "load_average": load}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
