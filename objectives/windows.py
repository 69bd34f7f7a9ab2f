"""How a volume's intensities become 0–255: a window in Hounsfield units for CT (`-160,240`,
or a named preset), or per-volume percentiles for MRI, whose values have no fixed scale.

Parsed once from the study's `window` setting, so a typo fails before anything is loaded.
Pure Python (the CLI validates it before numpy or torch are imported); `volumefiles`
applies it to the voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

from medslim.errors import UsageError

PRESETS: dict[str, tuple[float, float]] = {
    "brain": (80, 40),
    "subdural": (200, 75),
    "stroke": (40, 40),
    "soft-tissue": (400, 40),
    "abdomen": (400, 40),
    "liver": (150, 30),
    "mediastinum": (350, 50),
    "lung": (1500, -600),
    "bone": (1800, 400),
}
"""Common CT windows as (width, level) in HU, as radiology viewers label them."""
DEFAULT_PERCENTILES = (0.5, 99.5)
PERCENTILE_WORD = "percentile"


@dataclass(frozen=True)
class Window:
    """Intensities from `low` to `high` map to 0–255 (clipped outside). In HU for CT
    (`percentiles=False`), else per-volume percentiles of its own voxels."""

    low: float
    high: float
    percentiles: bool = False

    def describe(self) -> str:
        if self.percentiles:
            return f"per-volume percentiles {self.low:g}–{self.high:g}"
        return f"window {self.low:g} to {self.high:g} HU"


DEFAULT_WINDOW = Window(*DEFAULT_PERCENTILES, percentiles=True)
"""Without a window: each volume's own 0.5th–99.5th percentiles (MRI has no fixed scale, and
a CT volume then keeps its whole range less the outliers)."""


def parse_window(text: str | None, setting: str = "window") -> Window:
    """`LOW,HIGH` in HU (`-160,240`), a preset (`abdomen`), `pLOW,pHIGH` percentiles
    (`p1,p99`) or `percentile`; None is the default. Anything else is a usage error naming
    what is accepted."""
    if text is None:
        return DEFAULT_WINDOW
    value = text.strip().lower()
    if value in PRESETS:
        width, level = PRESETS[value]
        return Window(level - width / 2, level + width / 2)
    if value == PERCENTILE_WORD:
        return DEFAULT_WINDOW
    parts = [p.strip() for p in value.split(",")]
    percentiles = len(parts) == 2 and all(p.startswith("p") for p in parts)
    numbers = [p[1:] if percentiles else p for p in parts]
    try:
        low, high = (float(n) for n in numbers)
    except ValueError:
        raise _bad(setting, text, "it is neither LOW,HIGH numbers nor a preset") from None
    if not low < high:
        raise _bad(setting, text, f"the low end {low:g} is not below the high end {high:g}")
    if percentiles and not 0 <= low < high <= 100:
        raise _bad(setting, text, "percentiles must lie in 0..100")
    return Window(low, high, percentiles)


def _bad(setting: str, text: str, why: str) -> UsageError:
    presets = ", ".join(PRESETS)
    return UsageError(
        f"{setting} {text!r} does not parse ({why}); write LOW,HIGH in HU (e.g. -160,240), "
        f"pLOW,pHIGH per-volume percentiles (e.g. p1,p99), or a CT preset: {presets}"
    )
