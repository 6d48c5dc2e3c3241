"""Modules loaded on first use, so app.py can name every route's module cheaply.

All routes live in one Lambda function (Chalice's APIHandler), so whatever
app.py imports, every cold start pays for, including the hit path's. The
dashboard API's modules (pydantic models, delivery preparation) load when an
API route is first called instead.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


def lazy(name: str) -> Any:
    return LazyModule(name)
