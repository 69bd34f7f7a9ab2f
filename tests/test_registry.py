"""One registry shape behind every registry of medslim: register, get with a did-you-mean,
names, aliases; the old functions of each registry keep their call shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from medslim.errors import UsageError
from medslim.objectives import data
from medslim.registry import Registry
from medslim.search.methods import METHODS, PRECISIONS, get_method
from medslim.search.samplers import SAMPLERS, make_sampler
from medslim.spaces.allocation import ALLOCATIONS, get_allocation
from medslim.spaces.criteria import CRITERIA, get_criterion
from medslim.spaces.families import FAMILIES, PRESETS, get_family, get_preset
from medslim.spaces.sources import SOURCES, get_source

REGISTRIES: dict[str, Registry[Any]] = {
    "datasets": data._REGISTRY,
    "model sources": SOURCES,
    "families": FAMILIES,
    "presets": PRESETS,
    "samplers": SAMPLERS,
    "criteria": CRITERIA,
    "allocations": ALLOCATIONS,
    "methods": METHODS,
    "precisions": PRECISIONS,
}


@pytest.mark.parametrize("name", sorted(REGISTRIES))
def test_every_registry_has_one_shape(name: str) -> None:
    registry = REGISTRIES[name]
    assert isinstance(registry, Registry) and registry.names()
    first = registry.names()[0]
    assert registry.get(first) is registry[first] and first in registry
    with pytest.raises(
        UsageError, match=rf"unknown {registry.what} '{first}x' \(did you mean '{first}'\?\)"
    ):
        registry.get(first + "x")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(first, registry[first])


def test_aliases_resolve_but_are_not_listed() -> None:
    registry: Registry[int] = Registry("number", "valid numbers")
    registry.register("one", 1, aliases=("uno",))
    registry.register("two", 2)
    registry.alias("deux", "two")
    assert registry.get("uno") == 1 and registry["deux"] == 2 and "uno" in registry
    assert registry.names() == ["one", "two"] and registry.aliases == {"uno": "one", "deux": "two"}
    with pytest.raises(UsageError, match=r"unknown number 'three'; valid numbers: one, two"):
        registry.get("three")
    with pytest.raises(ValueError, match="names no registered"):
        registry.alias("tres", "three")


OLD_SHAPES: dict[str, tuple[Callable[[str], object], str, str]] = {
    "criterion": (get_criterion, "l11", "valid criteria"),
    "family": (get_family, "resnett", "registered"),
    "preset": (
        get_preset,
        "resnet9",
        "valid models: mlp, resnet18, resnet3d18, resnet3d8, resnet8",
    ),
    "source": (get_source, "timmm", "sources"),
    "allocation": (get_allocation, "globall", "choose from"),
    "method": (get_method, "distil", "choose from"),
    "sampler": (lambda name: make_sampler(name, 1, 0), "tpee", "valid samplers"),
    "dataset": (lambda name: data.load_dataset(name), "breastmnst", "or give a path"),
}


@pytest.mark.parametrize("kind", sorted(OLD_SHAPES))
def test_the_old_functions_refuse_a_typo_with_the_closest_name(kind: str) -> None:
    get, typo, listing = OLD_SHAPES[kind]
    with pytest.raises(UsageError, match="did you mean") as refused:
        get(typo)
    assert listing in str(refused.value) and "\n" not in str(refused.value)
