"""Corrupted copies of the test images, to see whether a compressed model holds up on the
artefacts real scanners produce.

Two kinds of corruption set, by name:
- `medmnistc:<dataset>`: MedMNIST-C's modality-specific corruptions of that MedMNIST dataset
  (Di Salvo, Doerrich and Ledig, 2024), applied by the `medmnistc` package
  (`pip install 'medslim[robustness]'`), five severities each;
- `generic`: medslim's own set of modality-neutral corruptions (noise, blur, pixelation,
  JPEG, brightness, contrast, gamma, saturation), with MedMNIST-C's chest X-ray severities,
  for a user's own images or where `medmnistc` is not installed. Needs nothing extra.

Seeded: each image draws from its own generator, seeded by (seed, corruption, severity, its
row), so two runs give the same images in any order. Severity 0 is the clean image, as it is.
MedMNIST-C set its severities for 224-px images: on smaller ones blur and pixelation are
relatively stronger, while per-pixel noise is the same. A corruption that cannot apply (a
colour corruption on grey images, or one that fails on these images) is skipped, with why.
"""

from __future__ import annotations

import importlib.util
import io
import random
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from medslim.errors import UsageError

GENERIC = "generic"
PREFIX = "medmnistc:"
MEDMNISTC_DATASETS = (
    *("bloodmnist", "breastmnist", "chestmnist", "dermamnist", "octmnist", "organamnist"),
    *("organcmnist", "organsmnist", "pathmnist", "pneumoniamnist", "retinamnist"),
    "tissuemnist",
)
"""The MedMNIST datasets MedMNIST-C defines corruptions for."""
SEVERITIES = (1, 2, 3, 4, 5)

Apply = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
"""(uint8 H×W×C image, severity 1–5, the image's generator) → the corrupted image."""


@dataclass(frozen=True)
class Corruption:
    name: str
    apply: Apply
    colour_only: bool = False


@dataclass(frozen=True)
class CorruptionSet:
    name: str
    """`generic` or `medmnistc:<dataset>`."""
    source: str
    """Where the corruptions come from, in words (for the report and the model card)."""
    corruptions: tuple[Corruption, ...]
    note: str = ""
    """Why this set was chosen when another was wanted (empty otherwise)."""


@dataclass(frozen=True)
class Skipped:
    corruption: str
    reason: str


@dataclass
class Corrupted:
    """One corruption at one severity: the images, or why there are none."""

    corruption: str
    severity: int
    images: np.ndarray | None
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def set_names() -> list[str]:
    """Every corruption set `--corruptions` accepts."""
    return [GENERIC, *MEDMNISTC_DATASETS]


def medmnistc_available() -> bool:
    return importlib.util.find_spec("medmnistc") is not None


def choose_set(dataset: str, requested: str | None = None) -> CorruptionSet:
    """`requested` (`generic` or a MedMNIST dataset whose modality fits the images), else the
    dataset's own MedMNIST-C set when it has one, else `generic`."""
    wanted = (requested or "").strip().lower().removeprefix(PREFIX)
    if wanted and wanted != GENERIC and wanted not in MEDMNISTC_DATASETS:
        raise UsageError(
            f"--corruptions {requested!r} is not a corruption set; use {GENERIC} or one of "
            f"MedMNIST-C's datasets whose modality fits your images: "
            + ", ".join(MEDMNISTC_DATASETS)
        )
    if wanted == GENERIC:
        return generic_set()
    name = wanted or dataset.lower()
    if name not in MEDMNISTC_DATASETS:
        note = (
            f"{dataset} is not a MedMNIST dataset with MedMNIST-C corruptions: the generic set "
            "(--corruptions NAME picks the set of a MedMNIST dataset of your modality)"
        )
        return generic_set(note)
    if not medmnistc_available():
        if wanted:
            raise UsageError(
                f"--corruptions {requested} needs the medmnistc package: "
                "pip install 'medslim[robustness]'"
            )
        return generic_set(
            f"MedMNIST-C's {name} set needs medmnistc (pip install 'medslim[robustness]'); "
            "the generic set instead"
        )
    return _medmnistc_set(name)


# --- applying ----------------------------------------------------------------------------


def corrupt(images: np.ndarray, corruption: Corruption, severity: int, seed: int) -> np.ndarray:
    """uint8 N×H×W×C images corrupted at `severity` (0: the images, unchanged)."""
    if severity == 0:
        return np.array(images, copy=True)
    if severity not in SEVERITIES:
        raise ValueError(f"`severity` must be 0 to 5, got {severity}")
    out = np.empty_like(images)
    with _global_random_kept():
        for row in range(len(images)):
            rng = _image_rng(seed, corruption.name, severity, row)
            image = np.asarray(images[row])
            corrupted = corruption.apply(image, severity, rng)
            out[row] = _as_channels(corrupted, image.shape[-1])
    return out


def corrupted_sets(
    images: np.ndarray, chosen: CorruptionSet, severities: tuple[int, ...], seed: int
) -> Iterator[Corrupted]:
    """Each corruption at each severity in turn (one copy of the images at a time), or the
    reason it was skipped."""
    channels = images.shape[-1]
    for corruption in chosen.corruptions:
        if corruption.colour_only and channels == 1:
            reason = "a colour corruption; these images are grey"
            yield from (Corrupted(corruption.name, s, None, reason) for s in severities)
            continue
        for severity in severities:
            try:
                result = corrupt(images, corruption, severity, seed)
            except Exception as error:  # a library corruption failing on these images
                reason = f"failed on these images: {type(error).__name__}: {error}"
                yield from (Corrupted(corruption.name, s, None, reason) for s in severities)
                break
            yield Corrupted(corruption.name, severity, result)


def _image_rng(seed: int, name: str, severity: int, row: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity, row])


@contextmanager
def _global_random_kept() -> Iterator[None]:
    """Libraries that draw from the global generators leave them as they found them."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _as_channels(image: np.ndarray, channels: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == channels:
        return image
    mode = "RGB" if image.shape[-1] == 3 else "L"
    pil = Image.fromarray(image if mode == "RGB" else image[..., 0], mode)
    converted = np.asarray(pil.convert("L" if channels == 1 else "RGB"))
    return converted[..., None] if channels == 1 else converted


# --- the generic set ---------------------------------------------------------------------


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _back(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture)


def _unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0


def _byte(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)


def _gaussian_noise(scale: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    return lambda x, rng: _byte(_unit(x) + rng.normal(size=x.shape, scale=scale))


def _speckle_noise(scale: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    return lambda x, rng: _byte(_unit(x) * (1 + rng.normal(size=x.shape, scale=scale)))


def _impulse_noise(amount: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = _unit(x)
        hit = rng.random(x.shape) < amount
        out[hit] = rng.random(int(hit.sum())) < 0.5
        return _byte(out)

    return apply


def _shot_noise(photons: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    return lambda x, rng: _byte(rng.poisson(_unit(x) * photons) / photons)


def _gaussian_blur(kernel: int) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    from scipy.ndimage import gaussian_filter

    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8  # torchvision's sigma for a kernel size

    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        blurred = gaussian_filter(
            x.astype(np.float64), sigma=(sigma, sigma, 0), radius=(kernel // 2, kernel // 2, 0)
        )
        return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)

    return apply


def _pixelate(factor: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        picture = _pil(x)
        width, height = picture.size
        small = (max(1, int(width * factor)), max(1, int(height * factor)))
        box = Image.Resampling.BOX
        return _back(picture.resize(small, box).resize((width, height), box))

    return apply


def _jpeg(quality: int) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        buffer = io.BytesIO()
        _pil(x).save(buffer, "JPEG", quality=quality)
        return _back(Image.open(buffer))

    return apply


def _brightness(factor: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    return lambda x, rng: _back(ImageEnhance.Brightness(_pil(x)).enhance(factor))


def _contrast(factor: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    return lambda x, rng: _back(ImageEnhance.Contrast(_pil(x)).enhance(factor))


def _gamma(gamma: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    return lambda x, rng: _byte(_unit(x) ** gamma)


def _saturate(shift: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hsv = np.asarray(_pil(x).convert("HSV")).astype(np.float64)
        hsv[..., 1] = np.clip(hsv[..., 1] + shift * 255, 0, 255)
        return _back(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"))

    return apply


def _levels(make: Callable[[Any], Any], values: list[Any]) -> Apply:
    """One corruption from its five severity parameters."""
    steps = [make(v) for v in values]
    return lambda image, severity, rng: steps[severity - 1](image, rng)


_GENERIC: list[tuple[str, Apply, bool]] = [
    ("pixelate", _levels(_pixelate, [0.8, 0.7, 0.6, 0.5, 0.4]), False),
    ("jpeg_compression", _levels(_jpeg, [50, 30, 15, 10, 7]), False),
    ("gaussian_noise", _levels(_gaussian_noise, [0.04, 0.08, 0.12, 0.18, 0.26]), False),
    ("speckle_noise", _levels(_speckle_noise, [0.05, 0.15, 0.2, 0.35, 0.45]), False),
    ("impulse_noise", _levels(_impulse_noise, [0.01, 0.03, 0.06, 0.09, 0.17]), False),
    ("shot_noise", _levels(_shot_noise, [60, 25, 18, 10, 5]), False),
    ("gaussian_blur", _levels(_gaussian_blur, [3, 5, 7, 9, 11]), False),
    ("brightness_up", _levels(_brightness, [1.1, 1.2, 1.3, 1.4, 1.5]), False),
    ("brightness_down", _levels(_brightness, [0.9, 0.8, 0.7, 0.6, 0.5]), False),
    ("contrast_up", _levels(_contrast, [1.1, 1.2, 1.3, 1.4, 1.6]), False),
    ("contrast_down", _levels(_contrast, [0.9, 0.8, 0.7, 0.6, 0.4]), False),
    ("gamma_corr_up", _levels(_gamma, [1.1, 1.2, 1.3, 1.4, 1.6]), False),
    ("gamma_corr_down", _levels(_gamma, [0.9, 0.8, 0.7, 0.6, 0.4]), False),
    ("saturate", _levels(_saturate, [0.05, 0.10, 0.15, 0.20, 0.25]), True),
]


def generic_set(note: str = "") -> CorruptionSet:
    return CorruptionSet(
        GENERIC,
        "medslim's generic set (modality-neutral; MedMNIST-C's chest X-ray severities, "
        "saturation from its dermatoscopy set)",
        tuple(Corruption(name, apply, colour) for name, apply, colour in _GENERIC),
        note,
    )


# --- MedMNIST-C ----------------------------------------------------------------------------


def _medmnistc_set(dataset: str) -> CorruptionSet:
    """The dataset's MedMNIST-C corruptions; images go in as RGB and come back in their own
    channels, as MedMNIST-C made its corrupted test sets."""
    from importlib.metadata import version

    from medmnistc.corruptions.registry import CORRUPTIONS_DS

    corruptions = tuple(
        Corruption(name, _library_apply(corruptor), name == "saturate")
        for name, corruptor in CORRUPTIONS_DS[dataset].items()
    )
    return CorruptionSet(
        PREFIX + dataset,
        f"MedMNIST-C's {dataset} corruptions (medmnistc {version('medmnistc')})",
        corruptions,
    )


def _library_apply(corruptor: Any) -> Apply:
    def apply(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
        seed = int(rng.integers(0, 2**32 - 1))
        np.random.seed(seed)
        random.seed(seed)
        corruptor.rng = np.random.default_rng(seed)  # the library's impulse noise reads it
        picture = _pil(image).convert("RGB")
        return np.asarray(corruptor.apply(picture, severity - 1))

    return apply
