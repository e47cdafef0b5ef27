"""Tables for `kwstream bench` and `kwstream eval` that keep every figure whole in an 80-column terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence


def figure(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or "-" where there is none (None or NaN)."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> None:
    """Print to stdout ``title``, then a text column that may wrap, then right-aligned figures that are
    never wrapped or cut.

    Each figure column is as wide as its widest line (header lines included); where the terminal is
    narrower than that, the table runs past its edge rather than print "0.…". The title is a line of
    its own, as wide as the terminal: over a narrow table it would break inside a model's path.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(caption=caption)
    label_width = min(max((len(word) for row in rows for word in row[0].split()), default=1), 8)
    table.add_column(headers[0], overflow="fold", min_width=label_width)
    widths = [max(len(line) for text in (header, *(row[i] for row in rows)) for line in text.splitlines())
              for i, header in enumerate(headers[1:], start=1)]
    for header, width in zip(headers[1:], widths):
        table.add_column(header, justify="right", no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    console = Console()
    # the default box and padding: a border and a space either side of each column, and a last border
    console.width = max(console.width, label_width + sum(widths) + 3 * len(headers) + 1)
    console.print(Text(title, style="table.title"))
    console.print(table)
