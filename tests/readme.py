"""Reading the docs in tests: the README's marked code blocks (`<!-- NAME -->` right before a fence), run as written,
and a page's sections."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def block(marker: str) -> str:
    """The code of the one fenced block the README marks with `<!-- marker -->` on the line before it."""
    found = re.findall(rf"^<!-- {re.escape(marker)} -->\n```[a-z]*\n(.*?)^```$", README.read_text(), re.M | re.S)
    assert len(found) == 1, f"README.md marks {len(found)} blocks with <!-- {marker} -->, not one"
    return str(found[0])


def exports(code: str) -> dict[str, str]:
    """The variables a shell block exports (`export NAME=value  # comment`), as the shell would set them."""
    return dict(re.findall(r"^export ([A-Z_][A-Z0-9_]*)=(\S+)", code, re.M))


def section(text: str, heading: str) -> str:
    """The lines under `heading` up to the next heading of its level or above."""
    level = heading.split(" ", 1)[0]
    body = text.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"\n#{{1,{len(level)}}} ", body, maxsplit=1)[0]
