"""Settings declared once: a dataclass field holds a setting's default, its help text and how
it is given on the command line, and the command line is built from the fields.

    @dataclass(frozen=True)
    class MyConfig(Settings):
        n_rec: int = setting(200, "number of neurons", type=positive_int)
        net: NetConfig = group(NetConfig)          # nested: its flags join the parent's

    parser = argparse.ArgumentParser(); MyConfig.add_flags(parser)
    config = MyConfig.from_flat(vars(parser.parse_args()))

Flags are flat (`--n_rec`, not `--net.n_rec`), so a setting's name is unique across the groups
of one job. This module imports only the standard library: building a parser (and `--help`)
stays fast.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

__all__ = ["setting", "group", "Settings", "positive_float", "nonneg_float", "positive_int",
           "nonneg_int"]

Choices = Optional[Callable[[], Sequence[str]] | Sequence[str]]


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    return _integer(text, 1)


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0)


def nonneg_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def setting(default: Any, help: str | Callable[[], str], *, type: Optional[Callable[[str], Any]] = None,
            choices: Choices = None, aliases: Sequence[str] = (), cli: bool = True,
            default_text: str | Callable[[], str] | None = None) -> Any:
    """A dataclass field that is also a command-line flag `--<name>` (plus `aliases`).

    `choices` may be a function returning the names (a registry's keys), read when the parser
    is built; a bool default makes a switch (store_true); `cli=False` keeps the field off the
    command line (set by the program); `default_text` is shown instead of a None default."""
    meta = {"help": help, "type": type, "choices": choices, "aliases": tuple(aliases),
            "cli": cli, "default_text": default_text}
    return dataclasses.field(default=default, metadata=meta)


def group(cls: type) -> Any:
    """A nested settings dataclass, its fields flags of the parent (default: its defaults)."""
    return dataclasses.field(default_factory=cls, metadata={"group": cls})


class Settings:
    """Mixin for frozen dataclasses of settings: flags, flat dicts, copies with changes."""

    @classmethod
    def settings(cls) -> Iterator[Tuple[Tuple[str, ...], dataclasses.Field]]:
        """(path, field) of every setting, nested groups flattened (path: the group names)."""
        for f in dataclasses.fields(cls):
            if "group" in f.metadata:
                for path, sub in f.metadata["group"].settings():
                    yield (f.name,) + path, sub
            else:
                yield (), f

    @classmethod
    def flag_names(cls) -> list[str]:
        """Every setting that is a command-line flag, by name."""
        return [f.name for _, f in cls.settings() if f.metadata.get("cli", True)]

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser, suppress: bool = False,
                  exclude: Sequence[str] = ()) -> None:
        """Add a flag for every setting (but `exclude`); `suppress`: no defaults (to see which
        flags were given)."""
        for _, f in cls.settings():
            meta = f.metadata
            if not meta.get("cli", True) or f.name in exclude:
                continue
            kwargs: Dict[str, Any] = {"help": _help_text(f)}
            if not suppress:
                kwargs["default"] = f.default
            if isinstance(f.default, bool):
                kwargs["action"] = "store_true"
            else:
                choices = meta["choices"]
                if callable(choices):
                    choices = choices()
                if choices is not None:
                    kwargs["choices"] = tuple(choices)
                if meta["type"] is not None:
                    kwargs["type"] = meta["type"]
            names = [f"--{f.name}"] + [f"--{a}" for a in meta["aliases"]]
            parser.add_argument(*names, dest=f.name, **kwargs)

    @classmethod
    def make(cls, **flat: Any) -> Any:
        """The defaults with `flat` changes (setting names, a group's settings too)."""
        return cls().replace(**flat)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> Any:
        """The settings from a flat dict holding (at least) their names, e.g. parsed flags or
        a saved config.json; missing names keep their defaults."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            if "group" in f.metadata:
                kwargs[f.name] = f.metadata["group"].from_flat(values)
            elif f.name in values:
                kwargs[f.name] = values[f.name]
        return cls(**kwargs)

    def to_flat(self) -> Dict[str, Any]:
        """Every setting by name, groups flattened (what config.json records)."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out.update(value.to_flat() if "group" in f.metadata else {f.name: value})
        return out

    def replace(self, **changes: Any) -> Any:
        """A copy with `changes`, given by flat setting name (a group's settings too)."""
        unknown = set(changes) - {f.name for _, f in self.settings()}
        if unknown:
            raise TypeError(f"unknown setting {', '.join(sorted(unknown))}")
        return type(self).from_flat({**self.to_flat(), **changes}) if changes else self


def _help_text(f: dataclasses.Field) -> str:
    """The flag's help with its default; '%' escaped for argparse."""
    meta = f.metadata
    text, default_text = (v() if callable(v) else v for v in (meta["help"], meta["default_text"]))
    if default_text:
        text = f"{text} (default: {default_text})"
    elif not (isinstance(f.default, bool) or f.default is None):
        text = f"{text} (default: {f.default})"
    return text.replace("%", "%%")
