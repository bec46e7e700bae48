"""The one registry shape (timm's): ``name -> item``, filled by decorators in the modules that define the items;
the built-ins are imported on first use, so importing a registry is cheap and a new item is one new module.

GAN families (``engine.gans._registry``) and samplers (``engine.synth.samplers``) are registries of this kind;
run kinds (``engine.runner.kinds``) follow the same shape.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Items by name; ``builtin`` maps each shipped name to the module that registers it. ``what`` names the
    items in errors; ``error`` is the exception an unknown name raises (InputError where users type the name)."""

    def __init__(self, what: str, builtin: dict[str, str], error: type[Exception] = KeyError) -> None:
        self.what = what
        self.builtin = builtin
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        self._items[name] = item
        return item

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self.builtin))

    def get(self, name: str) -> T:
        """The item ``name``, importing its built-in module first if needed."""
        if name not in self._items and name in self.builtin:
            module = self.builtin[name]
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                raise self.error(f"{self.what} {name!r} is not part of this version of ganaug") from None
        try:
            return self._items[name]
        except KeyError:
            raise self.error(f"unknown {self.what} {name!r}; known: {', '.join(self.names())}") from None
