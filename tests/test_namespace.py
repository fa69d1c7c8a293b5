"""One namespace: the parts import only as `pumpwatch.<part>`, the distribution installs `pumpwatch` only."""

from __future__ import annotations

import importlib
import sys
from importlib import resources

import pytest

from tests.conftest import REPO
from tests.namespace import PARTS, SecondCopyRefused


@pytest.mark.parametrize("part", PARTS)
def test_a_top_level_part_name_is_refused_and_the_namespace_one_works(part: str) -> None:
    with pytest.raises(SecondCopyRefused, match=f"import pumpwatch.{part}"):
        importlib.import_module(part)
    mod = importlib.import_module(f"pumpwatch.{part}")
    assert mod.__name__ == f"pumpwatch.{part}"
    assert (REPO / "pumpwatch" / part).is_symlink()  # the folder itself stays at the top level
    assert (REPO / "pumpwatch" / part).resolve() == (REPO / part).resolve()


def test_no_second_copy_was_loaded_by_this_session() -> None:
    assert not [m for m in sys.modules if m.partition(".")[0] in PARTS]


def test_package_data_is_read_through_the_namespace() -> None:
    assert resources.files("pumpwatch.api").joinpath("static/index.html").is_file()
    assert resources.files("pumpwatch.api.auth").joinpath("demo_users.yaml").is_file()
    assert resources.files("pumpwatch.core").joinpath("placeholder_secrets.yaml").is_file()
    assert resources.files("pumpwatch.alarms").joinpath("system_rules.yaml").is_file()
