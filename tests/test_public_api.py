"""The public surface: a curated, sorted ``__all__`` that matches the package namespace."""

from __future__ import annotations

import importlib.metadata
import tomllib
import types
from pathlib import Path

import pytest

import luigis_async
from luigis_async import transport

#: Dunder names deliberately exported although they start with an underscore.
EXPORTED_DUNDERS = {"__version__"}


def public_names() -> set[str]:
    """Names defined in the package namespace without a leading underscore, minus submodules."""
    return {
        name
        for name, value in vars(luigis_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def test_all_is_sorted() -> None:
    """__all__ is kept in plain sorted() order."""
    assert sorted(luigis_async.__all__) == luigis_async.__all__


def test_all_has_no_duplicates() -> None:
    """Each name is listed once."""
    assert len(set(luigis_async.__all__)) == len(luigis_async.__all__)


def test_all_equals_public_names() -> None:
    """__all__ lists exactly the public names of the namespace (plus __version__)."""
    assert public_names() | EXPORTED_DUNDERS == set(luigis_async.__all__)


def test_no_submodule_is_exported() -> None:
    """Submodules are an implementation detail and are not in __all__."""
    exported = {name: getattr(luigis_async, name) for name in luigis_async.__all__}
    assert [] == [name for name, value in exported.items() if isinstance(value, types.ModuleType)]


@pytest.mark.parametrize("name", luigis_async.__all__)
def test_listed_name_works_with_from_import(name: str) -> None:
    """`from luigis_async import NAME` works for every listed name."""
    namespace: dict[str, object] = {}
    exec(f"from luigis_async import {name}", namespace)
    assert getattr(luigis_async, name) is namespace[name]


def test_star_import_gives_exactly_all() -> None:
    """`from luigis_async import *` binds exactly the names in __all__."""
    namespace: dict[str, object] = {}
    exec("from luigis_async import *", namespace)
    assert set(luigis_async.__all__) == set(namespace) - {"__builtins__"}


def test_version_is_the_project_version() -> None:
    """The build reads the version from the one file __version__ comes from."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert (["version"], "luigis_async/_version.py") == (
        pyproject["project"]["dynamic"],
        pyproject["tool"]["hatch"]["version"]["path"],
    )
    assert luigis_async._version.__version__ == luigis_async.__version__


def test_installed_version_is_the_package_version() -> None:
    """The installed distribution's metadata carries the same version (reinstall if not)."""
    assert importlib.metadata.version("luigis-async") == luigis_async.__version__


def test_user_agent_names_the_version() -> None:
    """Requests say which version sent them."""
    assert f"luigis-async/{luigis_async.__version__}" == transport.USER_AGENT
