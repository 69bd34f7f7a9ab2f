"""One registry shape for every registry of medslim (datasets, model sources, families and
presets, samplers, criteria, allocations, methods): register by name, get with a
did-you-mean, list the names, and keep old names as aliases.

Standard library only, so the CLI lists any registry without importing torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from medslim.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order.

    `what` names an entry in messages (`sampler`); `listing` introduces the valid names in
    the message for an unknown one (`valid samplers`); `ordered`: names are listed sorted
    rather than in registration order. A name is registered once: a second
    registration is a bug, so it raises. An alias is another name for an entry (an older
    name), accepted by `get` and `in` but not listed by `names`.
    """

    def __init__(self, what: str, listing: str = "choose from", *, ordered: bool = False) -> None:
        self.what = what
        self.listing = listing
        self.ordered = ordered
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, entry: T, *, aliases: Iterable[str] = ()) -> T:
        if name in self._entries or name in self._aliases:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._entries[name] = entry
        for alias in aliases:
            self.alias(alias, name)
        return entry

    def alias(self, alias: str, name: str) -> None:
        """Accept `alias` for the entry `name` (kept out of `names`)."""
        if alias in self._entries or alias in self._aliases:
            raise ValueError(f"{self.what} {alias!r} is already registered")
        if name not in self._entries:
            raise ValueError(f"alias {alias!r} names no registered {self.what} {name!r}")
        self._aliases[alias] = name

    def get(self, name: str) -> T:
        """The entry, or a one-line `UsageError` naming the closest names and all of them."""
        found = self.find(name)
        if found is None:
            raise UsageError(self.unknown(name))
        return found

    def find(self, name: str) -> T | None:
        """The entry (by name or alias), or None."""
        return self._entries.get(self._aliases.get(name, name))

    def unknown(self, name: str) -> str:
        """The message for an unknown name: `unknown sampler 'tpee' (did you mean 'tpe'?);
        valid samplers: tpe, nsga2, ...`."""
        close = difflib.get_close_matches(name, [*self._entries, *self._aliases], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.what} {name!r}{hint}; {self.listing}: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._entries) if self.ordered else list(self._entries)

    @property
    def aliases(self) -> dict[str, str]:
        """alias → the name it stands for."""
        return dict(self._aliases)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __getitem__(self, name: str) -> T:
        found = self.find(name)
        if found is None:
            raise KeyError(name)
        return found

    def __setitem__(self, name: str, entry: T) -> None:
        """Replace (or add) an entry; for tests that swap one for the duration of a test
        (`monkeypatch.setitem`). Code registers with `register`."""
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"
