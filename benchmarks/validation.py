"""What the full validation costs and finds, on finished default studies.

For each study (one storage per data set), on fresh copies of its database (so nothing is
cached): the wall time of today's `medslim pareto` (`--baseline DIR`: another medslim's
package, e.g. main's, put first on PYTHONPATH), of this `pareto` (criteria, ECE, QWK, flips,
per-class rates, subgroups), of `pareto --robustness` (plus every MedMNIST-C corruption at
severities 1–5) and of `report` (all of it, with thumbnails), each run in turn `--repeats`
times; then the robustness table of the teacher against the smallest member non-inferior on
clean test images, that member's flip rate, and every member non-inferior on clean images
but not on corrupted ones.

    nice -n 10 python benchmarks/validation.py --study-db pneumoniamnist=p.db \\
        --study-db breastmnist=b.db [--baseline /tmp/main-site] [--out validation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARMS = {
    "today's pareto": ["pareto"],
    "pareto (validation)": ["pareto"],
    "pareto --robustness": ["pareto", "--robustness"],
    "report": ["report", "--out", "report.html"],
}


def timed(
    args: list[str], storage: Path, workdir: Path, pythonpath: str | None
) -> tuple[float, float]:
    """(wall, CPU) seconds of one command on a fresh copy of the study's database; the CPU
    time (user + system of the command) is what a busy shared machine disturbs least."""
    copy = workdir / "copy.db"
    shutil.copy(storage, copy)
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "medslim.search.cli", *args, "--storage", f"sqlite:///{copy}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def findings(workdir: Path) -> dict[str, Any]:
    """Robustness of the teacher against the smallest clean-non-inferior member, read from
    the copy the last `report` left (its scores are cached there)."""
    copy = workdir / "copy.db"
    command = [sys.executable, "-m", "medslim.search.cli", "pareto", "--json", "--robustness"]
    done = subprocess.run(
        [*command, "--storage", f"sqlite:///{copy}"], capture_output=True, text=True, check=True
    )
    front = json.loads(done.stdout)
    members = front["front"]
    passing = [m for m in members if m.get("non_inferior")]
    pick = min(passing, key=lambda m: m["flops"]) if passing else None
    lost = [m["trial"] for m in passing if m.get("corrupted_failures")]
    result: dict[str, Any] = {
        "criteria": front["test"]["criteria"],
        "corruption_set": front["robustness"]["source"],
        "skipped": front["robustness"]["skipped"],
        "members": len(members),
        "non_inferior_clean": [m["trial"] for m in passing],
        "non_inferior_clean_not_corrupted": lost,
    }
    if pick is not None:
        rows = zip(front["robustness"]["teacher"], pick["robustness"], strict=True)
        result["pick"] = {
            "trial": pick["trial"],
            "flops_ratio": pick["flops_ratio"],
            "test_auc": pick["test_auc"],
            "delta_auc_ci": pick["delta_auc_ci"],
            "flip_rate": pick["flip_rate"],
            "flip_rate_ci": pick["flip_rate_ci"],
            "falls_behind_on": pick.get("corrupted_failures"),
            "table": [
                {
                    "corruption": t["corruption"],
                    "severity": t["severity"],
                    "teacher_auc": t["auc"],
                    "teacher_drop": t["drop_auc"],
                    "member_auc": m["auc"],
                    "member_drop": m["drop_auc"],
                    "delta_auc": m["delta_auc"],
                    "delta_auc_ci": m["delta_auc_ci"],
                }
                for t, m in rows
            ],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study-db", action="append", required=True, metavar="NAME=FILE")
    parser.add_argument("--baseline", help="PYTHONPATH of the medslim to time as today's")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("validation.json"))
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": os.uname().nodename, "cpus": os.cpu_count()}
    for item in args.study_db:
        name, _, file = item.partition("=")
        storage = Path(file).resolve()
        times: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            # The study's artifact store and teacher cache lie beside its database.
            (workdir / ".medslim").symlink_to(storage.parent / ".medslim")
            for _ in range(args.repeats):  # arms interleaved: load changes hit all alike
                for arm, command in ARMS.items():
                    if arm == "today's pareto" and not args.baseline:
                        continue
                    path = args.baseline if arm == "today's pareto" else None
                    times[arm].append(timed(command, storage, workdir, path))
            found = findings(workdir)
        medians = {
            arm: [statistics.median(w for w, _ in t), statistics.median(c for _, c in t)]
            for arm, t in times.items()
            if t
        }
        report[name] = {"seconds": times, "median_wall_cpu": medians, **found}
        print(f"\n{name}: median seconds over {args.repeats} runs (fresh database each)")
        print(f"  {'arm':<22} {'wall':>7} {'CPU':>7}")
        for arm, (wall, cpu) in medians.items():
            print(f"  {arm:<22} {wall:7.1f} {cpu:7.1f}")
        pick = found.get("pick")
        if pick:
            print(
                f"  smallest non-inferior member: trial {pick['trial']} "
                f"({pick['flops_ratio']:.3f} FLOPs×), flip rate {pick['flip_rate']:.3f} "
                f"[{pick['flip_rate_ci'][0]:.3f}, {pick['flip_rate_ci'][1]:.3f}]"
            )
            print(f"  {'corruption':<18} sev teacher AUC (drop)  member AUC (drop)  ΔAUC [95% CI]")
            for row in pick["table"]:
                low, high = row["delta_auc_ci"]
                print(
                    f"  {row['corruption']:<18} {row['severity']:>3} "
                    f"{row['teacher_auc']:.3f} ({row['teacher_drop']:+.3f})   "
                    f"{row['member_auc']:.3f} ({row['member_drop']:+.3f})   "
                    f"{row['delta_auc']:+.3f} [{low:+.3f}, {high:+.3f}]"
                )
        print(
            f"  non-inferior on clean images: {found['non_inferior_clean']}; of those not on "
            f"corrupted ones: {found['non_inferior_clean_not_corrupted']}"
        )
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
