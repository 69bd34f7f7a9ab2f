"""Trials per minute for 1, 2 (and on a GPU machine 4, 8) workers on the same study config.

Each worker count runs the same `medslim run` command on its own SQLite file in one folder, so
they share the teacher cache (trained once, by the first run). Two rates are reported: over
the search phase (first trial start to last trial end, read from the storage) and over the
whole command (start-up, teacher loading and worker start included).

    python benchmarks/scaling.py --out scaling.json
    python benchmarks/scaling.py --dataset ../shared/data/pneumoniamnist.npz --trials 16
    python benchmarks/scaling.py --dataset pneumoniamnist.npz --model resnet18 --size 224
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState


def measure(folder: Path, workers: int, repeat: int, args: argparse.Namespace) -> dict:
    storage = f"sqlite:///{folder / f'workers-{workers}-{repeat}.db'}"
    command = [
        *(
            sys.executable,
            "-m",
            "medslim.search.cli",
            "run",
            "--storage",
            storage,
            "--study",
            "bench",
        ),
        *("--dataset", args.dataset, "--trials", str(args.trials), "--workers", str(workers)),
        *("--epochs", "1", "--teacher-epochs", str(args.teacher_epochs)),
        *(("--model", args.model) if args.model else ()),
        *(("--size", str(args.size)) if args.size else ()),
        *("--baselines", "2", "--seed", "0", "--no-progress"),
    ]
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    trials = optuna.load_study(study_name="bench", storage=storage).get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,)
    )
    search = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    return {
        "workers": workers,
        "repeat": repeat,
        "trials": len(trials),
        "search_s": round(search.total_seconds(), 2),
        "wall_s": round(wall, 2),
        "trials_per_min_search": round(60 * len(trials) / search.total_seconds(), 2),
        "trials_per_min_wall": round(60 * len(trials) / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast-cancer")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--model", help="teacher model (medslim's default when left out)")
    parser.add_argument("--size", type=int, help="image size in px (the files' own by default)")
    gpu = torch.cuda.is_available()
    parser.add_argument(
        "--workers", default="1,2,4,8" if gpu else "1,2", help="comma-separated worker counts"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per worker count, interleaved (median)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medslim-scaling-") as tmp:
        os.environ.setdefault("XDG_CACHE_HOME", str(Path(tmp) / "cache"))
        load_before = os.getloadavg()[0]
        counts = [int(n) for n in args.workers.split(",")]
        runs = [measure(Path(tmp), n, r, args) for r in range(args.repeats) for n in counts]
    rows = [_median([run for run in runs if run["workers"] == n]) for n in counts]
    model = args.model or "medslim's default model"
    size = f"{args.size} px" if args.size else "the files' size"
    device = torch.cuda.get_device_name() if gpu else "none"
    print(f"{args.dataset} at {size}, {model}, {args.trials} trials")
    print(f"{os.cpu_count()} CPU cores, GPU: {device}")
    print(f"load average (1 min) before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print(f"median of {args.repeats} interleaved runs per worker count")
    print("workers trials  search s   wall s /min search /min wall")
    for row in rows:
        print(
            f"{row['workers']:>7} {row['trials']:>6} {row['search_s']:>9} {row['wall_s']:>8} "
            f"{row['trials_per_min_search']:>11} {row['trials_per_min_wall']:>9}"
        )
    if args.out:
        result = {
            "dataset": args.dataset,
            "model": args.model,
            "size": args.size,
            "trials": args.trials,
            "cpu_cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if gpu else None,
            "load_average_before_after": [load_before, os.getloadavg()[0]],
            "rows": rows,
            "runs": runs,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def _median(runs: list[dict]) -> dict:
    """Each column's median over the runs (they ran interleaved, so load drifts cancel)."""
    row = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
    row.pop("repeat")
    return {**row, "workers": runs[0]["workers"], "trials": int(row["trials"])}


if __name__ == "__main__":
    main()
