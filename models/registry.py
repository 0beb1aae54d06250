"""A registry whose entries are imported when first used, so that listing its names (for a
command line's choices and --help) imports nothing heavy."""
from __future__ import annotations

import importlib
from typing import Any, Dict, Iterator, Mapping

__all__ = ["Registry", "load"]


def load(ref: str) -> Any:
    """The object a 'package.module:attribute' reference names."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry(Mapping):
    """name -> object, given as name -> 'package.module:attribute' (imported on first use)
    or as the object itself. New entries: `registry[name] = obj_or_ref`."""

    def __init__(self, entries: Mapping[str, Any]):
        self._entries: Dict[str, Any] = dict(entries)

    def __getitem__(self, name: str) -> Any:
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = load(entry)
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __setitem__(self, name: str, entry: Any) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({list(self._entries)})"
