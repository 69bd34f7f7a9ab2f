"""Knowledge distillation: the KD loss, the teacher's cached training logits, and a student
trained from scratch on them, scored like a pruned model.

The teacher's logits on the training split are computed once and cached in memory and on
disk (keyed by the teacher's weights and the data), so a trial runs the teacher only when it
must see inputs the cache cannot hold: augmented images, or stage features for the feature
loss.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medslim.kinds import Task
from medslim.objectives.checkpoints import save_tensors
from medslim.objectives.data import Dataset
from medslim.objectives.determinism import weights_fingerprint
from medslim.objectives.evaluate import Budget, Scores, score_model
from medslim.objectives.teacher import data_fingerprint
from medslim.objectives.training import Recipe, predict_logits, soft_kl, task_loss, train
from medslim.spaces.blueprints import Blueprint
from medslim.spaces.layers import SPATIAL_DIMS, convolution, is_feature_map
from medslim.spaces.students import DistillSettings, feature_stages

_LOGITS: dict[str, torch.Tensor] = {}  # the in-memory cache, one entry per teacher and data


@dataclass(frozen=True)
class TeacherSignal:
    """What a student learns from: the teacher (run online only when needed), the modules
    whose outputs are its stage features (none: no feature loss), and its logits on the
    training split."""

    model: nn.Module
    stages: list[nn.Module]
    train_logits: torch.Tensor


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor,
    task: Task,
    settings: DistillSettings,
) -> torch.Tensor:
    """(1 − α)·hard loss + α·T²·KL (Hinton et al.; T² keeps the soft gradients' scale)."""
    hard = task_loss(student, targets, task).mean()
    if settings.alpha == 0:
        return hard
    soft = soft_kl(student, teacher, task, settings.temperature) * settings.temperature**2
    return (1 - settings.alpha) * hard + settings.alpha * soft


def logits_key(teacher: nn.Module, data: Dataset) -> str:
    """Same teacher weights and same data, same key (also for a teacher loaded from a file)."""
    both = f"{data_fingerprint(data)}:{weights_fingerprint(teacher)}"
    return hashlib.sha256(both.encode()).hexdigest()[:20]


def logits_path(teacher: nn.Module, data: Dataset, cache_dir: Path) -> Path:
    """Where `teacher_train_logits` caches the teacher's training-split logits."""
    return cache_dir / f"logits-{logits_key(teacher, data)}.pt"


def teacher_train_logits(teacher: nn.Module, data: Dataset, cache_dir: Path) -> torch.Tensor:
    """The teacher's logits on the training split: from memory, else disk, else computed."""
    path = logits_path(teacher, data, cache_dir)
    key = path.stem
    if key not in _LOGITS:
        if path.is_file():
            logits = torch.load(path, map_location="cpu", weights_only=True)
        else:
            logits = predict_logits(teacher, data.train).cpu()
            save_tensors(logits, path)  # another worker never reads half a file
        _LOGITS[key] = logits.to(data.train.device)
    return _LOGITS[key]


class Distiller(nn.Module):
    """A `train` loss: KD on the teacher's logits, plus an optional MSE between matched stage
    outputs of student and teacher through 1×1 (1×1×1 for volumes) adapters (the adapters
    are its parameters)."""

    def __init__(
        self, signal: TeacherSignal, settings: DistillSettings, task: Task, *, augment: bool
    ) -> None:
        super().__init__()
        self.settings = settings
        self.task = task
        self.online = augment
        self._signal = signal  # a plain attribute: the teacher's weights are never trained
        self.adapters = nn.ModuleList()
        self._features: dict[str, list[torch.Tensor]] = {"student": [], "teacher": []}
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []

    def match_features(
        self, student: nn.Module, student_stages: list[nn.Module], example: torch.Tensor
    ) -> None:
        """Hook the last stages of both networks (aligned from the end) and build adapters;
        nothing to do when the feature weight is 0 or either network has no stage."""
        teacher_stages = self._signal.stages
        count = min(len(teacher_stages), len(student_stages))
        if self.settings.feature_weight == 0 or count == 0:
            return
        for role, stages in (("student", student_stages), ("teacher", teacher_stages)):
            for module in stages[-count:]:
                self._hooks.append(module.register_forward_hook(self._keeper(role)))
        was_training = student.training
        with torch.no_grad():
            student.eval()
            student(example)
            self._signal.model(example)
        student.train(was_training)
        for s, t in zip(self._features["student"], self._features["teacher"], strict=True):
            layer = (
                convolution(SPATIAL_DIMS[s.dim()])(s.shape[1], t.shape[1], 1)
                if is_feature_map(s)
                else nn.Linear(s.shape[1], t.shape[1])
            )
            self.adapters.append(layer.to(example.device))
        self._clear()
        self.online = True  # the teacher's features cannot be cached per batch

    def _keeper(self, role: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self._features[role].append(output)

        return keep

    def _clear(self) -> None:
        for features in self._features.values():
            features.clear()

    def remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._clear()

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        inputs: torch.Tensor,
        index: torch.Tensor,
    ) -> torch.Tensor:
        if self.online:
            with torch.no_grad():  # fp32 like the cached logits, whatever the autocast
                teacher_logits = self._signal.model(inputs).float()
        else:
            logits_at = self._signal.train_logits
            teacher_logits = logits_at[index.to(logits_at.device)]
        loss = kd_loss(logits, teacher_logits, targets, self.task, self.settings)
        if self.adapters:
            loss = loss + self.settings.feature_weight * self._feature_loss()
        self._clear()
        return loss

    def _feature_loss(self) -> torch.Tensor:
        features = self._features
        pairs = zip(self.adapters, features["student"], features["teacher"], strict=True)
        losses = []
        for adapter, s, t in pairs:
            s = adapter(s)
            if is_feature_map(s) and s.shape[2:] != t.shape[2:]:
                size = [min(a, b) for a, b in zip(s.shape[2:], t.shape[2:], strict=True)]
                s, t = (
                    F.interpolate(s, size=size, mode="area"),
                    F.interpolate(t, size=size, mode="area"),
                )
            losses.append(F.mse_loss(s, t))
        return torch.stack(losses).mean()


def evaluate_student(
    blueprint: Blueprint,
    settings: DistillSettings,
    signal: TeacherSignal,
    data: Dataset,
    recipe: Recipe,
    budget: Budget,
    *,
    seed: int = 0,
) -> tuple[nn.Module, Scores]:
    """Train a fresh student with the KD loss for `recipe.epochs`, then score it on val."""
    torch.manual_seed(seed)
    model = blueprint.build().to(data.train.device)
    loss = Distiller(signal, settings, data.task, augment=recipe.augment)
    loss.match_features(model, feature_stages(model, blueprint), data.train.batch(slice(0, 2)))
    try:
        train(model, data.train, data.task, recipe, seed=seed, loss=loss)
    finally:
        loss.remove_hooks()
    model.eval()
    return model, score_model(model, data, budget)
