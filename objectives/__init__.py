"""How a candidate is scored: data, training, metrics, the teacher."""

from objectives.data import (
    TASKS,
    Dataset,
    DatasetInfo,
    Split,
    dataset_names,
    default_data_dir,
    list_datasets,
    load_dataset,
)
from objectives.distill import TeacherSignal, evaluate_student, kd_loss, teacher_train_logits
from objectives.evaluate import Budget, Scores, evaluate_pruning, score_model
from objectives.metrics import acc_score, auc_score, count_flops, measure_latency_ms
from objectives.training import Recipe, TrainingDiverged, train

__all__ = [
    "TASKS",
    "Budget",
    "Dataset",
    "DatasetInfo",
    "Recipe",
    "Scores",
    "Split",
    "TeacherSignal",
    "TrainingDiverged",
    "acc_score",
    "auc_score",
    "count_flops",
    "dataset_names",
    "default_data_dir",
    "evaluate_pruning",
    "evaluate_student",
    "kd_loss",
    "list_datasets",
    "load_dataset",
    "measure_latency_ms",
    "score_model",
    "teacher_train_logits",
    "train",
]
