"""The shipped MedMNIST+ table is the `medmnist` package's INFO, as the sync tool writes it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from medslim.objectives import medmnist

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_json_matches_the_installed_medmnist_package() -> None:
    if importlib.util.find_spec("medmnist") is None:
        pytest.skip("medmnist is not installed (pip install medmnist)")
    spec = importlib.util.spec_from_file_location("sync", ROOT / "tools" / "sync_medmnist_info.py")
    assert spec is not None and spec.loader is not None
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    shipped = json.loads(sync.TARGET.read_text("utf-8"))
    assert shipped == sync.build(), "run: python tools/sync_medmnist_info.py"
    assert "medmnist" not in sys.modules, "the sync tool imported the medmnist package"


def test_every_2d_dataset_comes_in_four_sizes_and_3d_in_two_with_their_own_files() -> None:
    volumes = [info for info in medmnist.DATASETS.values() if info.dims == 3]
    assert len(medmnist.DATASETS) == 18 and len(volumes) == 6
    for info in volumes:
        assert info.name.endswith("3d") and info.sizes == (28, 64) and info.n_channels == 1
        assert len({f.md5 for f in info.files.values()}) == 2
    assert medmnist.DATASETS["adrenalmnist3d"].file(64).md5 == "17721accfe9fb005146a47d33bc54b2f"
    for info in medmnist.DATASETS.values():
        if info.dims == 3:
            continue
        assert info.sizes == (28, 64, 128, 224)
        assert info.file_name(28) == f"{info.name}.npz"
        assert info.file_name(224) == f"{info.name}_224.npz"
        assert f"{info.name}_64.npz" in info.file(64).url
        assert len({f.md5 for f in info.files.values()}) == 4


def test_download_url_of_a_size_follows_a_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    info = medmnist.DATASETS["pneumoniamnist"]
    monkeypatch.setenv(medmnist.URL_ENV, "http://mirror.example/m/")
    assert medmnist.download_url(info, 128) == "http://mirror.example/m/pneumoniamnist_128.npz"
