"""A package's public entry points, named in its ``__init__`` and imported only when first used (as
torchvision's and timm's top-level factories are named), so that importing the package stays cheap
and creates no import circle."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, entry_points: dict[str, str]):
    """``__getattr__`` for ``package``'s ``__init__``: each name of ``entry_points`` (name →
    ``module`` or ``module:attribute``, where a submodule has the name) is imported when first asked for."""
    def __getattr__(name: str):
        if name not in entry_points:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = entry_points[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)
    return __getattr__
