"""The teacher: trained once per (data, model, seed, recipe), reproducibly, cached on disk by
a hash of that config, or loaded from a user's weights file (`checkpoints.load_weights`)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from medslim.objectives.checkpoints import load_weights, save_tensors
from medslim.objectives.data import Dataset
from medslim.objectives.determinism import reproducible
from medslim.objectives.evaluate import split_scores
from medslim.objectives.training import Recipe, train
from medslim.spaces.blueprints import Blueprint
from medslim.spaces.channel_groups import group_regularizer
from medslim.spaces.sparsity import protected_layers

SELECTION = "best val AUC over epochs"
"""How a trained teacher's weights are chosen (part of its cache key): the epoch with the
best validation AUC, so the test split never plays a part."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherScores:
    val_auc: float
    val_acc: float
    test_auc: float
    test_acc: float


def data_fingerprint(data: Dataset) -> str:
    """A short hash of the training and validation samples: the same data, the same key."""
    digest = hashlib.sha256()
    for split in (data.train, data.val):
        split.fingerprint(digest)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class SparsityTraining:
    """A teacher trained further with a group-sparsity penalty of this strength, from the
    teacher it would otherwise be (a `--teacher` file: from that file's weights)."""

    strength: float
    base_file: Path | None = None

    def recipe(self, teacher: Recipe) -> Recipe:
        """A third of the teacher's epochs at half its learning rate, no warm-up, no
        moving average (it would average the penalty's work away)."""
        epochs = max(1, round(teacher.epochs * SPARSITY_EPOCHS_SHARE))
        return replace(teacher, epochs=epochs, lr=teacher.lr / 2, warmup_epochs=0, ema_decay=None)

    def key(self) -> dict[str, object]:
        key: dict[str, object] = {"sparsity_training": self.strength}
        if self.base_file is not None:
            key["base_weights"] = hashlib.sha256(self.base_file.read_bytes()).hexdigest()[:16]
        return key


SPARSITY_EPOCHS_SHARE = 1 / 3


def teacher_key(
    data: Dataset,
    blueprint: Blueprint,
    recipe: Recipe,
    seed: int,
    pretrained: bool = False,
    sparsity: SparsityTraining | None = None,
) -> str:
    config: dict[str, object] = {
        "data": data_fingerprint(data),
        "task": data.task,
        "model": blueprint.identity(),
        "recipe": asdict(recipe),
        "selection": SELECTION,
        "seed": seed,
    }
    if pretrained:  # training starts from the library's weights
        config["pretrained"] = True
    if sparsity is not None:  # its own variant, cached apart from the teacher it starts from
        config.update(sparsity.key())
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]


def teacher_cache_path(
    cache_dir: Path,
    data: Dataset,
    blueprint: Blueprint,
    recipe: Recipe,
    seed: int,
    pretrained: bool = False,
    sparsity: SparsityTraining | None = None,
) -> Path:
    """Where `obtain_teacher` caches the teacher of this data, model, recipe and seed."""
    key = teacher_key(data, blueprint, recipe, seed, pretrained, sparsity)
    return cache_dir / f"teacher-{key}.pt"


EpochReport = Callable[[int, int, float, float], None]
"""(epoch, epochs, val AUC, best val AUC so far), after each epoch of a teacher's training:
how a caller shows its progress."""


class BestOnVal:
    """An `on_epoch` hook that keeps the weights of the epoch with the best val AUC (and
    tells `report` each epoch's)."""

    def __init__(self, data: Dataset, epochs: int = 0, report: EpochReport | None = None) -> None:
        self.data = data
        self.epochs = epochs
        self.report = report
        self.auc = float("-inf")
        self.epoch = -1
        self.state: dict[str, torch.Tensor] = {}

    def __call__(self, epoch: int, model: nn.Module) -> None:
        auc, _ = split_scores(model, self.data.val, self.data.task)
        if auc > self.auc:
            self.auc, self.epoch = auc, epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.report is not None:
            self.report(epoch, self.epochs, auc, self.auc)

    def restore(self, model: nn.Module) -> None:
        if self.state:
            model.load_state_dict(self.state)


def obtain_teacher(
    data: Dataset,
    blueprint: Blueprint,
    recipe: Recipe,
    *,
    seed: int,
    cache_dir: Path,
    device: torch.device,
    teacher_file: Path | None = None,
    pretrained: bool = False,
    sparsity: SparsityTraining | None = None,
    report: EpochReport | None = None,
) -> tuple[nn.Module, TeacherScores, bool]:
    """The teacher model on `device`, its scores, and whether it was trained just now
    (from the library's pretrained weights with `pretrained`; with `sparsity`, trained
    further from the teacher it would otherwise be, and cached under its own key;
    `report` sees each epoch of a training from scratch).

    Training is reproducible (`determinism.reproducible`): the model is built and trained
    under the seed. A cache file that cannot be read is named in a warning and replaced."""
    if sparsity is not None:
        return _sparsity_trained(
            data, blueprint, recipe, seed, cache_dir, device, teacher_file, pretrained, sparsity
        )
    model = blueprint.build()
    trained = False
    if teacher_file is not None:
        load_weights(model, teacher_file, blueprint.model, "teacher")
        model.to(device)
    else:
        weights = teacher_cache_path(cache_dir, data, blueprint, recipe, seed, pretrained)
        if weights.is_file() and _load_cached(model, weights):
            model.to(device)
        else:
            with reproducible(seed):  # a fresh model: its initial weights come from the seed
                # (from the library's weights with `pretrained`: fetched only to train)
                model = blueprint.build(pretrained=pretrained).to(device)
                best = BestOnVal(data, recipe.epochs, report)
                train(model, data.train, data.task, recipe, seed=seed, on_epoch=best)
                best.restore(model)
            _save(model, weights)
            trained = True
    return model, _scored(model, data), trained


def _sparsity_trained(
    data: Dataset,
    blueprint: Blueprint,
    recipe: Recipe,
    seed: int,
    cache_dir: Path,
    device: torch.device,
    teacher_file: Path | None,
    pretrained: bool,
    sparsity: SparsityTraining,
) -> tuple[nn.Module, TeacherScores, bool]:
    """The sparsity-trained variant: cached, or trained from the base teacher and cached."""
    weights = teacher_cache_path(cache_dir, data, blueprint, recipe, seed, pretrained, sparsity)
    model = blueprint.build()
    if weights.is_file() and _load_cached(model, weights):
        model.to(device)
        return model, _scored(model, data), False
    model, _, _ = obtain_teacher(
        data,
        blueprint,
        recipe,
        seed=seed,
        cache_dir=cache_dir,
        device=device,
        teacher_file=teacher_file,
        pretrained=pretrained,
    )
    example = data.train.batch(slice(0, 2))
    regularize = group_regularizer(
        model, example, protected_layers(model, example), sparsity.strength
    )
    logger.info("sparsity training (λ %g) of the teacher ...", sparsity.strength)
    with reproducible(seed):
        train(
            model,
            data.train,
            data.task,
            sparsity.recipe(recipe),
            seed=seed,
            after_backward=regularize,
        )
    _save(model, weights)
    return model, _scored(model, data), True


def _save(model: nn.Module, weights: Path) -> None:
    save_tensors(model.state_dict(), weights)  # another worker never sees half a file


def _scored(model: nn.Module, data: Dataset) -> TeacherScores:
    model.eval()
    val_auc, val_acc = split_scores(model, data.val, data.task)
    test_auc, test_acc = split_scores(model, data.test, data.task)
    return TeacherScores(val_auc, val_acc, test_auc, test_acc)


def _load_cached(model: nn.Module, path: Path) -> bool:
    """Load a cached teacher; False (with a warning naming the file) when it is unreadable or
    does not fit, so that the caller trains it again."""
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # a truncated or foreign file: torch raises several types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        logger.warning("cached teacher %s is unreadable (%s): training it again", path, reason)
        return False
    return True
