"""The one plain-text table printer of the terminal (dry-run plans, sweep and search summaries)."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits, NaN empty, everything else as ``str``.

    >>> [cell(v) for v in (0.78512, float("nan"), 120, "4-4")]
    ['0.7851', '', '120', '4-4']
    """
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def print_table(
    rows: Sequence[Mapping[str, Any]], cols: Sequence[str] | None = None, file=None
) -> None:
    """Print ``rows`` as left-aligned columns ``cols`` (default: the first row's keys) to
    ``file`` (default: ``sys.stdout`` as it is when called, not as it was at import)."""
    if not rows:
        return
    file = file or sys.stdout
    cols = list(cols or rows[0])
    cells = [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), file=file)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=file)
