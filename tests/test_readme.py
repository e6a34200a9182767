"""Every code block of the README is run, or checked against the file it quotes."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from luigis_async.cli.commands import cli
from luigis_async.jsonl import Line, parse_body, parse_update
from luigis_async.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(
    r"(?:<!-- excerpt: (?P<source>\S+) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)
BLOCKS = [
    (m["lang"], m["code"], m["source"], README.count("\n", 0, m.start()) + 1)
    for m in BLOCK.finditer(README)
]


def blocks(lang: str, *, excerpts: bool) -> list[object]:
    return [
        pytest.param(code, source, id=f"line-{line}")
        for kind, code, source, line in BLOCKS
        if kind == lang and (source is not None) == excerpts
    ]


@pytest.mark.parametrize(("code", "source"), blocks("python", excerpts=False))
async def test_python_blocks_run_against_the_sandbox(
    code: str, source: None, tmp_path: Path
) -> None:
    """Each self-contained Python block runs to completion against a sandbox."""
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    async with Sandbox() as sb:
        env = {
            **os.environ,
            "LUIGISBOX_TRACKER_ID": sb.tracker_id,
            "LUIGISBOX_PRIVATE_KEY": sb.private_key,
            "LUIGISBOX_BASE_URL": sb.url,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert 0 == proc.returncode, stderr.decode()
        assert sb.requests, "the block sent nothing"
        assert all(r.status != 401 for r in sb.requests)


@pytest.mark.parametrize(("code", "source"), blocks("python", excerpts=True))
def test_python_excerpts_match_their_source(code: str, source: str) -> None:
    """A quoted block appears verbatim in the file it names (which the tests run)."""
    assert code in (ROOT / source).read_text(encoding="utf-8")


def command_lines() -> list[list[str]]:
    lines = []
    for lang, code, _, _ in BLOCKS:
        if lang == "bash":
            for line in code.splitlines():
                for part in line.split("&&"):
                    words = shlex.split(part, comments=True)
                    if words[:1] == ["luigis-async"]:
                        lines.append(words[1:])
    return lines


@pytest.mark.parametrize("args", command_lines(), ids=lambda a: " ".join(a[:2]))
def test_every_cli_line_names_real_options(args: list[str]) -> None:
    """Each luigis-async line of the README uses a real command and real options."""
    result = CliRunner().invoke(cli, [args[0], "--help"])
    assert 0 == result.exit_code, result.output
    for word in args[1:]:
        if word.startswith("-"):
            assert word.split("=")[0] in result.output, word


def test_the_test_command_is_what_ci_runs() -> None:
    """The README's test command and .ci/run run the same pytest invocation."""
    test_command = next(
        code for lang, code, _, _ in BLOCKS if lang == "bash" and "pytest" in code
    ).strip()
    pytest_part = test_command.split("&&")[-1].strip()
    assert pytest_part in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("code", [code for lang, code, _, _ in BLOCKS if lang == "json"])
def test_json_blocks_are_valid_push_lines(code: str) -> None:
    """The example line is a valid update for push."""
    text = code.strip()
    assert parse_update(Line(1, text, len(text))).customization_id is not None


@pytest.mark.parametrize("code", [code for lang, code, _, _ in BLOCKS if lang == "jsonl"])
def test_jsonl_blocks_are_valid_desired_lines(code: str) -> None:
    """The desired-set example line is a valid customization body for sync."""
    text = code.strip()
    assert "basket" == parse_body(Line(1, text, len(text))).model


def test_every_block_is_checked() -> None:
    """No code block of a kind this file does not check slips into the README."""
    assert {"python", "bash", "json", "jsonl"} >= {lang for lang, _, _, _ in BLOCKS}
