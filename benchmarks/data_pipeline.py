"""The input pipeline against the model: is the data ever the bottleneck, and what does it cost
in memory?

1. Speed, at 64, 128 and 224 px: images/s of the pipeline alone (uint8 rows gathered,
   moved to the compute device, converted to normalised float32 and augmented with the
   teacher's random affine: everything `train` does before the forward pass) next to
   images/s of one resnet18 training step (forward, backward, AdamW) on ready batches,
   measured side by side in one process; the pipeline must be ≥ 3× faster at every size.
2. Memory, PneumoniaMNIST at 224 px (4,708 train images): peak resident memory of a
   process that loads the data and trains a few steps through the pipeline, against one
   that trains the same steps on random batches (the model's own cost), each in a fresh
   subprocess; the data may cost at most 2× its uint8 bytes.

The real 224-px MedMNIST+ file cannot be downloaded here, so the 224-px (and 64/128-px)
arrays are the official 28-px PneumoniaMNIST images resized with Pillow (bicubic), saved
in the MedMNIST+ layout: the same shapes and dtype as the real files.

    nice -n 5 python benchmarks/data_pipeline.py [--sizes 64,128,224] [--batch 32]
        [--threads 2] [--out data_pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import SHARED_DATA, add_cache_argument

from medslim.objectives.data import load_dataset
from medslim.objectives.split import Split
from medslim.objectives.training import AUGMENTATIONS, task_loss
from medslim.spaces.families import build_model, get_preset

MODEL = "resnet18"


def resized_copy(source: Path, size: int, cache: Path) -> Path:
    """`pneumoniamnist_{size}.npz` in the MedMNIST+ layout, made once from the 28-px file."""
    from PIL import Image

    path = cache / f"{source.stem}_{size}.npz"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    arrays = {}
    with np.load(source) as official:
        for key in official.files:
            array = official[key]
            if key.endswith("_images"):
                array = np.stack(
                    [
                        np.asarray(
                            Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC)
                        )
                        for a in array
                    ]
                )
            arrays[key] = array
    partial = path.with_suffix(".tmp.npz")
    np.savez_compressed(partial, **arrays)
    os.replace(partial, path)
    return path


def pipeline_rate(split: Split, batch: int, batches: int) -> float:
    """Images (or volumes)/s of batch production as training does it (shuffled rows, the
    random affine of images or volumes)."""
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(split), generator=generator)
    start = time.perf_counter()
    for step in range(batches):
        index = order[(step * batch) % (len(split) - batch) :][:batch]
        inputs = split.batch(index)
        inputs = AUGMENTATIONS[inputs.dim()](inputs, generator)
        split.labels(index)
        float(inputs.flatten()[0])  # the work is done (and on a GPU, synchronised)
    return batch * batches / (time.perf_counter() - start)


def training_rate(
    input_shape: tuple[int, ...], batch: int, steps: int, model_name: str = MODEL
) -> float:
    """Samples/s of training steps of a preset (resnet18) on ready batches (after one
    warm-up step)."""
    torch.manual_seed(0)
    model = build_model(get_preset(model_name), input_shape, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.randn(batch, *input_shape)
    targets = torch.randint(0, 2, (batch,))
    model.train()
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()
        loss = task_loss(model(inputs), targets, "binary-class").mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


def speed(source: Path, sizes: list[int], batch: int, cache: Path) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        data = load_dataset(str(resized_copy(source, size, cache)), data_dir=cache)
        pipeline = pipeline_rate(data.train, batch, batches=40)
        steps = 2 if size >= 224 else 4
        model = training_rate(data.input_shape, batch, steps)
        rows.append(
            {
                "size": size,
                "pipeline_img_s": pipeline,
                "train_img_s": model,
                "ratio": pipeline / model,
            }
        )
        print(
            f"{size:>5} px  pipeline {pipeline:>9.0f} img/s  {MODEL} training step "
            f"{model:>7.1f} img/s  pipeline / training {pipeline / model:>7.1f}×",
            flush=True,
        )
    return rows


STATUS = (
    "def status(key):\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith(key + ':'):\n"
    "            return int(line.split()[1])\n"
)
"""VmHWM (peak) and VmRSS (now) in KiB: unlike ru_maxrss they start afresh at exec, while
ru_maxrss of a child keeps its parent's peak from before the fork."""

MEMORY_PROBE = (
    STATUS
    + """
import torch
from medslim.objectives.data import load_dataset
from medslim.objectives.training import Recipe, train
from medslim.objectives.split import Split
from medslim.spaces.families import build_model, get_preset
torch.set_num_threads({threads})
torch.manual_seed(0)
n, shape = {batch} * {steps}, (1, {size}, {size})
if {with_data}:
    data = load_dataset({path!r}, data_dir={cache!r})  # every split stays loaded
    split = Split(data.train.x[:n], data.train.y[:n], data.train.scale)
else:
    split = Split(torch.randn(n, *shape), torch.randint(0, 2, (n,)))
before = status("VmRSS")
model = build_model(get_preset({model!r}), shape, 2)
train(model, split, "binary-class", Recipe(epochs=1, batch_size={batch}, augment=True))
print(status("VmHWM"), before)
"""
)


def peak_rss_mib(
    with_data: bool, path: Path, cache: Path, batch: int, threads: int
) -> tuple[float, float]:
    """(peak RSS, RSS before the model) in MiB of a fresh process."""
    code = MEMORY_PROBE.format(
        threads=threads,
        size=224,
        with_data=with_data,
        path=str(path),
        cache=str(cache),
        batch=batch,
        steps=2,
        model=MODEL,
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak, before = (int(v) / 1024 for v in out.stdout.split())
    return peak, before


def memory(source: Path, batch: int, threads: int, cache: Path) -> dict[str, Any]:
    path = resized_copy(source, 224, cache)
    with np.load(path) as arrays:
        image_bytes = sum(arrays[f"{s}_images"].nbytes for s in ("train", "val", "test"))
    load_dataset(str(path), data_dir=cache)  # anything cached is made before measuring
    model_peak, _ = peak_rss_mib(False, path, cache, batch, threads)
    data_peak, data_loaded = peak_rss_mib(True, path, cache, batch, threads)
    bare = bare_rss_mib()
    images = image_bytes / 2**20
    extra = data_peak - model_peak
    print(
        f"PneumoniaMNIST 224 px: uint8 images {images:.0f} MiB (all splits); peak RSS "
        f"{data_peak:.0f} MiB with the data, {model_peak:.0f} MiB with random batches "
        f"(same model and steps), {bare:.0f} MiB for python + torch + medslim alone"
    )
    print(
        f"  the data adds {extra:.0f} MiB = {extra / images:.2f}× its uint8 bytes "
        f"(limit 2×); RSS after loading, before the model: {data_loaded:.0f} MiB"
    )
    return {
        "image_mib": images,
        "peak_with_data_mib": data_peak,
        "peak_model_only_mib": model_peak,
        "bare_mib": bare,
        "data_cost_ratio": extra / images,
    }


def bare_rss_mib() -> float:
    code = STATUS + "import torch, medslim.objectives.data\nprint(status('VmHWM'))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128,224")
    parser.add_argument(
        "--data", type=Path, default=SHARED_DATA, help="folder of pneumoniamnist.npz (28 px)"
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("data_pipeline.json"))
    add_cache_argument(parser, "the resized PneumoniaMNIST files")
    args = parser.parse_args()
    source = args.data / "pneumoniamnist.npz"
    if not source.is_file():
        print(f"{source} is absent: this benchmark needs the real 28-px file")
        return 1
    torch.set_num_threads(args.threads)
    cache = args.cache / "data_pipeline"
    print(f"batch {args.batch}, {args.threads} threads, CPU")
    rows = speed(source, [int(s) for s in args.sizes.split(",")], args.batch, cache)
    mem = memory(source, args.batch, args.threads, cache)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result = {"speed": rows, "memory": mem, "load_average": load, "batch": args.batch}
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
