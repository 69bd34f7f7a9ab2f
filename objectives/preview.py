"""One stored sample as a picture a report can show: a 2-D image as it is, a volume as its
three orthogonal middle slices side by side.

Reports that show cases (the test images a compressed model gets wrong, say) call
`picture` on `Split.x[i]` and never care whether the study has images or volumes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

GAP = 2
"""Black columns between the slices of a volume."""


def picture(sample: np.ndarray) -> np.ndarray:
    """uint8 H×W×C: an image (H, W, C) unchanged; a volume (D, H, W, C) as its axial,
    coronal and sagittal middle slices, each scaled to a square of the volume's largest side,
    the head up in the coronal and sagittal views."""
    sample = np.asarray(sample)
    if sample.ndim == 3:
        return sample
    axial, coronal, sagittal = middle_slices(sample)
    views = [axial, coronal[::-1], sagittal[::-1]]  # D runs feet to head: the head up
    side = max(sample.shape[:3])
    channels = sample.shape[-1]
    squares = [_scaled(view, side) for view in views]
    gap = np.zeros((side, GAP, channels), np.uint8)
    return np.concatenate([squares[0], gap, squares[1], gap, squares[2]], axis=1)


def middle_slices(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The axial, coronal and sagittal middle slices of a (D, H, W, C) volume as stored."""
    depth, height, width = volume.shape[:3]
    return volume[depth // 2], volume[:, height // 2], volume[:, :, width // 2]


def _scaled(view: np.ndarray, side: int) -> np.ndarray:
    if view.shape[:2] == (side, side):
        return np.ascontiguousarray(view)
    grey = view.shape[-1] == 1
    image = Image.fromarray(np.ascontiguousarray(view[..., 0] if grey else view))
    resized = np.asarray(image.resize((side, side), Image.Resampling.BILINEAR))
    return resized[..., np.newaxis] if grey else resized
