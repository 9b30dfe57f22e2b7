"""Named constructors: the embedders, OCR engines and captioners ``index`` can build.

Each kind keeps one :class:`Registry`; its module exposes ``list_*``, ``register_*`` and
``get_*`` as the registry's methods, so a new backend is one ``register_*`` call.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from data.errors import UserError

T = TypeVar("T")


class UnknownName(UserError, KeyError):
    """A name no constructor of a registry is registered under; the message lists the valid ones."""


class Registry(dict, Generic[T]):
    """Name -> constructor, for one ``kind`` of object (a dict, so ``name in registry`` works).

    Args:
        kind: what the constructors build, as error messages name it (e.g. ``"embedder"``).
        entries: the built-in constructors by name.
        default: the name :meth:`build` uses when given none.
    """

    def __init__(self, kind: str, entries: dict[str, Callable[..., T]], default: str):
        super().__init__(entries)
        self.kind, self.default = kind, default

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self)

    def register(self, name: str, make: Callable[..., T]) -> None:
        """Add a constructor under ``name`` (refuses to overwrite one)."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = make

    def build(self, name: str | None = None, **kwargs) -> T:
        """Build the object registered as ``name`` (default: :attr:`default`); ``kwargs`` go to
        its constructor. An unknown name raises :class:`UnknownName` (a ``KeyError``) listing the valid ones."""
        name = self.default if name is None else name
        try:
            make = self[name]
        except KeyError:
            raise UnknownName(f"{self.kind} {name!r}", f"no such {self.kind}",
                              f"valid names are {', '.join(self.names())}") from None
        return make(**kwargs)
