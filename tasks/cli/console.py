"""Where the `toolrunner` commands print: stdout and stderr consoles, and text made safe to show as it is."""

from __future__ import annotations

import unicodedata

from rich.console import Console
from rich.text import Text

out = Console()
err = Console(stderr=True)


def plain(text: str) -> Text:
    """Text a terminal shows as it is: no markup, and control or formatting characters made visible."""
    return Text(visible(text))


def error_line(message: str) -> None:
    """Print one error line on stderr: no markup read, and one line however narrow the terminal (it wraps itself)."""
    err.print(Text("error: ", style="bold red") + plain(" ".join(message.split())), highlight=False, soft_wrap=True)


def visible(text: str) -> str:
    """Replace control, format and separator characters (ESC, bidi overrides, U+2028...) with escapes."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch
        for ch in text
    )
