"""Bring your own model through the command line: a network from the user's file (depthwise
convolutions, a concatenation, a classifier not named `head`), its own weights, a study, a
front, a report and an ONNX export; and every mistake a user can make refused in one line,
exit 2, with nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medslim.search.cli import main
from medslim.search.records import trial_record

pytestmark = pytest.mark.e2e

NETS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, in_channels, num_classes, width):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),
        )
        self.mix = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU()
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.mix(torch.cat([x, self.depthwise(x)], dim=1))
        return self.classifier(x.mean((2, 3)))


def build(in_channels, num_classes, width=16):
    return Net(in_channels, num_classes, width)


def no_channels(num_classes):
    return Net(1, num_classes, 8)


def thousand(in_channels, num_classes):
    return Net(in_channels, 1000, 8)


def nan_outputs(in_channels, num_classes):
    net = Net(in_channels, num_classes, 8)
    nn.init.constant_(net.classifier.bias, float("nan"))
    return net
"""


def _images(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """32-px grey images; class 1 has a bright square, so a small net learns it fast."""
    labels = rng.integers(0, 2, size=count)
    images = rng.integers(0, 90, size=(count, 32, 32)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        if label:
            top, left = rng.integers(4, 20, size=2)
            image[top : top + 8, left : left + 8] = 230
    return images, labels.reshape(-1, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("own-model")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", 160), ("val", 64), ("test", 64)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = _images(count, rng)
    np.savez(folder / "squares.npz", **arrays)
    (folder / "nets.py").write_text(NETS)
    (folder / "broken.py").write_text("def build(in_channels, num_classes):\n    return (\n")
    return folder


FAST = ["--teacher-epochs", "20", "--epochs", "1", "--student-epochs", "1", "--batch-size", "32"]
FAST += ["--no-progress"]


def _run(files: Path, storage: str, *args: str) -> int:
    data = ["--dataset", str(files / "squares.npz"), "--storage", storage]
    return main(["run", *data, *FAST, *args])


def test_a_function_from_a_file_is_pruned_distilled_reported_and_exported(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    model = ["--model", f"{files / 'nets.py'}:build", "--model-args", '{"width": 12}']
    assert _run(files, storage, *model, "--method", "both", "--trials", "6") == 0
    capsys.readouterr()
    assert main(["pareto", "--json", "--storage", storage]) == 0
    front = json.loads(capsys.readouterr().out)
    assert front["teacher"]["val_auc"] > 0.9 and front["study"].startswith("squares-nets.build")
    import medslim

    study = medslim.load_study(storage)
    pruned = [
        t.number for t in study.study.trials if t.values and trial_record(t)["method"] == "prune"
    ]
    students = [t for t in study.study.trials if t.user_attrs.get("baseline") == "scaled"]
    assert students, "a file's model gets students sized from its FLOPs"
    smallest = min(pruned, key=lambda n: study.study.trials[n].values[2])
    net = study.model(smallest)
    assert net.classifier.out_features == 2  # the head, found by running the net, stays
    assert net.classifier.in_features < 24  # the concatenated channels were cut
    dw = net.depthwise[0]
    assert dw.groups == dw.in_channels == dw.out_channels < 12
    out = tmp_path / "model.onnx"
    args = ["--storage", storage, "--trial", str(smallest), "--format", "onnx"]
    assert main(["export", *args, "--out", str(out)]) == 0
    assert "max abs diff" in capsys.readouterr().out
    assert main(["report", "--storage", storage, "--out", str(tmp_path / "r.html")]) == 0


def test_own_weights_with_dataparallel_prefixes_are_the_teacher(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(files))
    try:
        import nets  # the user's own module, as their training script imports it
    finally:
        sys.path.remove(str(files))
    torch.manual_seed(3)
    net = nets.build(1, 2)
    weights = tmp_path / "mine.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, weights)
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    model = ["--model", f"{files / 'nets.py'}:build", "--teacher", str(weights)]
    assert _run(files, storage, *model, "--trials", "2", "--pruning", "unstructured") == 0
    import medslim

    teacher = medslim.load_study(storage).teacher()
    assert torch.equal(teacher.classifier.weight, net.classifier.weight)


def _refused(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    db = tmp_path / "m.db"
    assert _run(files, f"sqlite:///{db}", "--trials", "2", *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not db.exists(), "a refused run wrote to the storage"
    return err


@pytest.mark.parametrize(
    "model, message",
    [
        ("tv:resnet18", "cannot import module 'tv'"),
        ("tv:resnet18", "or a model source: torchvision:NAME, timm:NAME"),
        ("torchvision:resnet19", "did you mean resnet18"),
        ("resnet9", "valid models: mlp, resnet18, resnet3d18, resnet3d8, resnet8"),
        ("FILES/broken.py:build", "cannot import"),
        ("FILES/nets.py:missing", "has no function 'missing'; it defines: Net, build"),
        ("FILES/nets.py:no_channels", "must accept in_channels= and num_classes="),
        ("FILES/nets.py:thousand", "returns outputs of shape (2, 1000) for 2 samples"),
        ("FILES/absent.py:build", "does not exist"),
        ("FILES/nets.py:nan_outputs", "outputs NaN or infinity on the first training images"),
        ("FILES/nets.py:nan_outputs", "before any training, so a lower --lr cannot help"),
        ("no_such_package.nets:build", "cannot import module 'no_such_package.nets'"),
    ],
)
def test_a_model_that_cannot_be_used_is_refused_in_one_line(
    model: str, message: str, files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(files, tmp_path, capsys, "--model", model.replace("FILES", str(files)))
    assert message in err


@pytest.mark.parametrize(
    "text, message",
    [("[1]", "--model-args must be a JSON object"), ("{width: 8}", "is not valid JSON")],
)
def test_model_args_that_are_not_a_json_object_are_one_line(
    text: str, message: str, files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", f"{files / 'nets.py'}:build", "--model-args", text]
    assert message in _refused(files, tmp_path, capsys, *model)


def test_weights_that_do_not_fit_and_bad_layer_names_are_refused(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "other.pt"
    torch.save(torch.nn.Conv2d(1, 3, 3).state_dict(), weights)
    model = ["--model", f"{files / 'nets.py'}:build"]
    err = _refused(files, tmp_path, capsys, *model, "--teacher", str(weights))
    assert "does not fit" in err and "first: stem.0.weight" in err
    err = _refused(files, tmp_path, capsys, *model, "--ignore-layers", "stem.*,nope")
    assert "--ignore-layers 'nope' matches no layer" in err and "classifier" in err


def test_a_missing_extra_says_how_to_install_it(
    files: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    err = _refused(files, tmp_path, capsys, "--model", "timm:resnet18")
    assert "pip install 'medslim[timm]'" in err


def test_a_library_model_on_tabular_data_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    args = ["run", "--storage", f"sqlite:///{db}", "--model", "torchvision:resnet18"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "breast-cancer holds tabular features, but the model takes 2-D images" in err
    assert not db.exists()


def test_pretrained_weights_offline_say_to_pass_a_teacher(
    files: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached weights
    for proxy in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # nothing listens: offline
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    err = _refused(files, tmp_path, capsys, "--model", "torchvision:resnet18", "--pretrained")
    assert "could not get pretrained weights for torchvision:resnet18" in err
    assert "pass your own weights with --teacher PATH" in err
    assert not list((tmp_path / "torch").rglob("*.pth"))  # nothing was downloaded
