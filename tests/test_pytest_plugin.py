"""The pytest plugin as pytest loads it: strict and auto modes, and no pytest-asyncio."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

USER_TEST = """
import pytest
from luigis_async import Customization

@pytest.mark.asyncio
async def test_pin(luigisbox_client, luigisbox_sandbox):
    created = await luigisbox_client.create_customization(Customization("basket", "all"))
    assert [str(created.id)] == list(luigisbox_sandbox.store)

def test_unrelated():
    pass
"""


@pytest.mark.slow  # a pytest run in a subprocess each
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_fixtures_work_in_both_asyncio_modes(pytester: pytest.Pytester, mode: str) -> None:
    """A user's test on the two fixtures passes in pytest-asyncio's strict and auto modes."""
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess(
        "-o",
        f"asyncio_mode={mode}",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-W",
        "error",
    )
    result.assert_outcomes(passed=2)


@pytest.mark.slow
def test_without_pytest_asyncio_only_fixture_users_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pytest-asyncio pytest still runs; a fixture user fails, saying what to install."""
    shadow = pytester.mkdir("shadow")
    Path(shadow, "pytest_asyncio.py").write_text("raise ImportError('simulated')\n")
    pytester.makepyfile(USER_TEST)
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    result = pytester.runpytest_subprocess(
        "-p", "no:asyncio", "-W", "ignore::pytest.PytestUnknownMarkWarning"
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*luigisbox_client fixture*needs pytest-asyncio: pip install pytest-asyncio*"]
    )
