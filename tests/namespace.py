"""The repository root is on sys.path while tests run, so `api`, `alarms`, `collector` and `simulators`
would import as second copies of `pumpwatch.api` … (other module objects, other globals). Ruff refuses such
imports in code (TID251); this refuses them at run time too (a package named by a string: Starlette's
`StaticFiles(packages=[…])`, `importlib.resources.files(…)`, `import_module(…)`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

PARTS = ("api", "alarms", "collector", "simulators", "reports")


class SecondCopyRefused(ImportError):
    pass


class RefuseTopLevelParts:
    """A meta-path finder, first in line: `api…` → SecondCopyRefused, saying the name to use."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top in PARTS:
            raise SecondCopyRefused(
                f"{fullname!r} would load a second copy of pumpwatch.{fullname}: import pumpwatch.{fullname}"
            )
        return None


def install() -> None:
    if not any(isinstance(f, RefuseTopLevelParts) for f in sys.meta_path):
        sys.meta_path.insert(0, RefuseTopLevelParts())
