"""MkDocs hook: pages take their prose and tested code from the README, not from copies.

A line ``<!-- readme: Heading -->`` becomes the body of the README's ``## Heading``
section (up to the next ``## `` heading); ``<!-- readme: intro -->`` becomes what comes
before the first one, below the title. The README's code blocks are run by
``tests/test_readme.py``, so the site shows tested code. Links relative to the repository
point to it at ``repo_url``, as the site has no copy of those files. A heading that is not
in the README fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_MARKER = re.compile(r"^<!-- readme: (?P<heading>.+?) -->$", re.M)
_RELATIVE_LINK = re.compile(r"\]\((?!https?:|mailto:|#)(?P<path>[^)\s]+)\)")


def _sections(readme: str) -> dict[str, str]:
    """The README's text by ``## `` heading; ``intro`` is the text under the title."""
    parts = re.split(r"^## (.+)$", readme, flags=re.M)
    intro = parts[0].split("\n", 1)[1] if parts[0].startswith("# ") else parts[0]
    sections = {"intro": intro}
    sections.update(zip(parts[1::2], parts[2::2], strict=True))
    return {heading: body.strip() + "\n" for heading, body in sections.items()}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each marker with its README section, its relative links made absolute."""
    if "<!-- readme: " not in markdown:
        return markdown
    readme = Path(config["config_file_path"]).parent / "README.md"
    sections = _sections(readme.read_text(encoding="utf-8"))
    blob = f"{config['repo_url'].rstrip('/')}/blob/main/"

    def section(match: re.Match[str]) -> str:
        heading = match["heading"]
        if heading not in sections:
            raise PluginError(f"{page.file.src_path}: README.md has no section {heading!r}")
        return _RELATIVE_LINK.sub(lambda link: f"]({blob}{link['path']})", sections[heading])

    return _MARKER.sub(section, markdown)
