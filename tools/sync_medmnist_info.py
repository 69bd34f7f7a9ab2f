"""Write objectives/medmnist_info.json from the installed `medmnist` package's INFO table.

medslim reads the URLs and md5s of every MedMNIST+ file (2-D at 28, 64, 128 and 224 px; 3-D
at 28³ and 64³) from that json at run time instead of importing `medmnist` (5 s: it imports
torch, scikit-image and creates ~/.medmnist). This script is the only way the json is made, and
tests/objectives/test_medmnist_info.py checks it still matches the package:

    pip install medmnist && python tools/sync_medmnist_info.py
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

TARGET = Path(__file__).resolve().parents[1] / "objectives" / "medmnist_info.json"
SIZES = (28, 64, 128, 224)


def package_info() -> tuple[str, dict[str, Any]]:
    """(version, INFO) read from medmnist/info.py without importing the package."""
    spec = importlib.util.find_spec("medmnist")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("medmnist is not installed: pip install medmnist")
    source = Path(next(iter(spec.submodule_search_locations))) / "info.py"
    tree = ast.parse(source.read_text("utf-8"))
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("__version__", "INFO"):
                values[name] = ast.literal_eval(node.value)
    return values["__version__"], values["INFO"]


def build() -> dict[str, Any]:
    """The json medslim ships: every dataset, 2-D and 3-D, with one URL and md5 per size."""
    version, info = package_info()
    datasets = {}
    for name, entry in info.items():
        files = {
            str(size): {
                "url": entry["url" if size == 28 else f"url_{size}"],
                "md5": entry["MD5" if size == 28 else f"MD5_{size}"],
            }
            for size in SIZES
            if ("url" if size == 28 else f"url_{size}") in entry
        }
        datasets[name] = {
            "dims": 3 if name.endswith("3d") else 2,
            "files": files,
            "task": entry["task"],
            "n_channels": entry["n_channels"],
            "labels": entry["label"],
            "n_samples": entry["n_samples"],
            "license": entry["license"],
        }
    return {"source": f"medmnist {version} (medmnist/info.py INFO)", "datasets": datasets}


def main() -> int:
    TARGET.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
