"""Weights a user brings (`--teacher PATH`): a state dict, or one inside the usual
wrappers, loaded without unpickling anything but tensors and plain containers; and the
weights medslim keeps (`save_tensors`), written whole or not at all.

Accepted: a bare state dict; `{"state_dict": ...}` (PyTorch Lightning, many scripts),
`{"model": ...}`, `{"model_state_dict": ...}`, `{"net": ...}`; keys prefixed by
DataParallel's `module.`, Lightning's `model.` (or any attribute name that wraps the network),
or torch.compile's `_orig_mod.`. Anything that does not fit is refused in one line that names
the first mismatching key.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medslim.errors import UsageError
from medslim.files import write_atomically

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def save_tensors(content: Any, path: Path) -> None:
    """`torch.save` as one atomic write (`files.write_atomically`): another process never
    reads half a file, and a full disk is a `DiskFull` naming the path (torch's own writer
    reports it as an unrelated position mismatch)."""
    buffer = io.BytesIO()
    torch.save(content, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, buffer.getvalue())


def load_weights(model: nn.Module, path: Path, model_label: str, what: str = "teacher") -> None:
    """Load `path` into `model` strictly, or raise a one-line `UsageError` that says why."""
    if not path.is_file():
        raise UsageError(f"{what} file {path} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only met a Python object, or garbage
        found = _GLOBAL.search(_plain(error))
        if found is None:
            raise UsageError(
                f"{what} file {path} is not a readable PyTorch file: {_unpickler_reason(error)}"
            ) from error
        raise UsageError(
            f"{what} file {path} holds pickled Python objects ({found.group(1)}), which "
            "medslim never unpickles; save the weights alone: "
            "torch.save(model.state_dict(), PATH)"
        ) from error
    except Exception as error:  # not a PyTorch file at all, or a truncated one
        raise UsageError(
            f"{what} file {path} is not a readable PyTorch file: {_first_line(error)}"
        ) from error
    expected = model.state_dict()
    state = _matching_keys(_unwrap(content, path, what), expected)
    problem = _mismatch(state, expected)
    if problem is not None:
        raise UsageError(f"{what} file {path} does not fit {model_label}: {problem}")
    model.load_state_dict(state, strict=True)


def _unwrap(content: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """The state dict inside the common wrappers (a checkpoint dict with other entries)."""
    while isinstance(content, Mapping) and not _is_state_dict(content):
        inner = next(
            (content[k] for k in WRAPPER_KEYS if isinstance(content.get(k), Mapping)), None
        )
        if inner is None:
            keys = ", ".join(map(str, list(content)[:8]))
            raise UsageError(
                f"{what} file {path} holds a dict ({keys}) but no state dict; expected "
                f"tensors by name, or one of them under {', '.join(WRAPPER_KEYS)}"
            )
        content = inner
    if not isinstance(content, Mapping):
        raise UsageError(f"{what} file {path} holds a {type(content).__name__}, not a state dict")
    return dict(content)


def _is_state_dict(content: Mapping[str, Any]) -> bool:
    return bool(content) and all(isinstance(v, torch.Tensor) for v in content.values())


def _matching_keys(
    state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The keys with the leading wrapper names (`module.`, `model.`, ...) that every key
    shares stripped, as far as that matches the model's keys best."""
    candidates = [state]
    while all("." in key for key in candidates[-1]):
        first = {key.split(".", 1)[0] for key in candidates[-1]}
        if len(first) != 1:
            break
        candidates.append({key.split(".", 1)[1]: v for key, v in candidates[-1].items()})
    return max(candidates, key=lambda keys: len(set(keys) & set(expected)))


def _mismatch(state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str | None:
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} of the model's {len(expected)} tensors are missing "
                f"(first: {missing[0]})"
            )
        if extra:
            parts.append(f"{len(extra)} in the file are not the model's (first: {extra[0]})")
        return "; ".join(parts) + "; was it saved from another --model or --model-args?"
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            return (
                f"{key} is {tuple(state[key].shape)} in the file but {tuple(tensor.shape)} in "
                "the model; was it saved from another --model, --model-args or dataset?"
            )
    return None


def _unpickler_reason(error: BaseException) -> str:
    """What torch's weights-only unpickler objected to, without its advice paragraphs."""
    text = _plain(error)
    reason = text.partition("WeightsUnpickler error:")[2].strip().splitlines()
    return reason[0].strip() if reason else _first_line(error)


def _plain(error: BaseException) -> str:
    return _ANSI.sub("", str(error))


def _first_line(error: BaseException) -> str:
    lines = _plain(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
