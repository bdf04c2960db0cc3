"""The report's markup: a document as blocks (:class:`Doc`), rendered to Markdown and to
self-contained HTML, and the formatting of its table cells and intervals."""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def fmt_value(v: Any, decimals: int) -> str:
    """A table cell: floats to ``decimals`` places, missing values empty."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.{decimals}f}"
    return str(v)


def display_table(df: pd.DataFrame, decimals: dict[str, int] | None = None) -> pd.DataFrame:
    """``df`` as text cells (:func:`fmt_value`; 3 decimals unless ``decimals`` names the column)."""
    decimals = decimals or {}
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        d = decimals.get(col, 3)
        out[col] = [fmt_value(v, d) for v in df[col]]
    return out.reset_index(drop=True)


def interval_text(v: float, lo: float, hi: float, decimals: int) -> str:
    """``v [lo, hi]`` (``v`` alone without a finite interval; empty without ``v``)."""
    if not np.isfinite(v):
        return ""
    s = f"{v:.{decimals}f}"
    if np.isfinite(lo) and np.isfinite(hi):
        s += f" [{lo:.{decimals}f}, {hi:.{decimals}f}]"
    return s


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_"
    cells = [[str(c).replace("|", "\\|") for c in df.columns]]
    cells += [
        [" ".join(str(v).split()).replace("|", "\\|") for v in row]
        for row in df.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines)


class Doc:
    """A report as blocks, rendered to Markdown and to self-contained HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append((f"h{level}", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("ul", items))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def img(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", (path, caption)))

    def markdown(self) -> str:
        out = []
        for kind, x in self.blocks:
            if kind.startswith("h"):
                out.append("#" * int(kind[1]) + " " + x)
            elif kind == "p":
                out.append(x)
            elif kind == "ul":
                out.append("\n".join(f"- {i}" for i in x))
            elif kind == "table":
                out.append(_md_table(x))
            elif kind == "img":
                out.append(f"![{x[1]}]({x[0].name})\n\n_{x[1]}_")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        def inline(text: str) -> str:
            text = html.escape(text)
            text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
            return re.sub(r"`(.+?)`", r"<code>\1</code>", text)

        body = []
        for kind, x in self.blocks:
            if kind.startswith("h"):
                body.append(f"<{kind}>{inline(x)}</{kind}>")
            elif kind == "p":
                body.append(f"<p>{inline(x)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in x) + "</ul>")
            elif kind == "table":
                body.append(
                    "<p><i>(none)</i></p>"
                    if x.empty
                    else x.to_html(index=False, escape=True, border=0, classes="t")
                )
            elif kind == "img":
                data = base64.b64encode(x[0].read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(x[1])}">'
                    f"<figcaption>{inline(x[1])}</figcaption></figure>"
                )
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
            "padding:0 1em;color:#222;line-height:1.45}"
            "table.t{border-collapse:collapse;font-size:12px;margin:0.5em 0 1.5em}"
            "table.t th,table.t td{border:1px solid #ccc;padding:2px 6px;text-align:right}"
            "table.t th{background:#f0f0f0}img{max-width:100%}"
            "figcaption{font-size:12px;color:#555}code{background:#f4f4f4;padding:0 3px}"
        )
        return (
            f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )
