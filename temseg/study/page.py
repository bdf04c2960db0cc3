"""The end of a study: segment every image with the registered network, write one page.

The page (``OUT/index.html``, and the same as ``OUT/study.md``) leads with the answer: the
recommended network with its test dice (seed mean and 95 % t interval over the seeds of its
architecture; one seed gives no interval and says so), then the particle-size table per image
(``OUT/sizes.csv``), then how the answer was made (profile and why, flat field, pixel size,
each image's measured contrast) with links to the sweep's report and the segmentation.
"""

from __future__ import annotations

import argparse
import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from temseg.receptive_field import network_label
from temseg.study.inputs import StudyInputs

# the page's size table: temseg segment's summary.csv (temseg.segment.tables), per image
# and frame and pooled ("all"), each statistic with its 95 % bootstrap interval
SIZE_STATS = ("d50", "d10", "d90", "dvmean")
SIZE_COLUMNS = [
    "image",
    "frame",
    "trained_on",
    "count_interior",
    *(f"{n}{s}_nm" for n in SIZE_STATS for s in ("", "_lo", "_hi")),
    "gsd",
    "in_domain",
    "dice",
    "d50_bias_nm",
]


SIZES_NOTE = (
    "Equivalent-circle diameters of the particles not touching the border: number-weighted "
    "D50 / D10 / D90 and the volume-weighted mean D[4,3], each with its 95 % bootstrap "
    "interval (temseg segment's sizes); 'all' pools the images of one segmentation run; "
    "in_domain 0 means the image's contrast or pixel size lies outside what the network "
    "was trained on."
)


def dice_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, lo, hi): the 95 % t interval of the mean over seeds; NaN bounds below 2 seeds.

    >>> [round(v, 4) for v in dice_interval([0.8, 0.82, 0.84])]
    [0.82, 0.7703, 0.8697]
    """
    from scipy import stats

    v = np.asarray(values, float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def recommended(uri: str, name: str, experiment: str) -> dict[str, Any]:
    """The registered network ``temseg-<name>@recommended`` and its architecture's test dice
    over seeds (raises ValueError when the sweep registered none)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from temseg.analysis import collect
    from temseg.tracking import RECOMMENDED_ALIAS, registered_model_name

    model = registered_model_name(name)
    client = MlflowClient(uri, registry_uri=uri)
    try:
        mv = client.get_model_version_by_alias(model, RECOMMENDED_ALIAS)
    except MlflowException:
        raise ValueError(
            f"{model}@{RECOMMENDED_ALIAS}: the sweep registered no network (see its report)"
        ) from None
    tags = {k.removeprefix("temseg."): v for k, v in mv.tags.items()}
    runs = collect.load_runs(experiment, client=client)
    arch = runs[
        (runs["dataset"] == name)
        & (runs["num_blocks"] == int(tags["num_blocks"]))
        & (runs["pools"] == tags["pools"])
        & (runs["dilations"] == tags["dilations"])
    ]
    dice = arch["test_hard_dice"].dropna().tolist()
    mean, lo, hi = dice_interval(dice) if dice else (math.nan, math.nan, math.nan)
    return {
        **tags,
        "uri": f"models:/{model}@{RECOMMENDED_ALIAS}",
        "version": mv.version,
        "dice": mean,
        "dice_lo": lo,
        "dice_hi": hi,
        "n_seeds": len(dice),
        "trials": len(runs),
    }


def _segment(images, truth, out: Path, model_uri: str, uri: str, args) -> pd.DataFrame:
    """``temseg segment`` with the registered network (flat field as it was trained);
    its summary table."""
    from temseg.segment import SegmentOptions, load_model, segment_images

    options = SegmentOptions(
        pixel_size_nm=args.pixel_size_nm, resample=args.resample,
        xray_threshold=args.xray_threshold,
    )  # fmt: skip
    result = segment_images(
        [str(p) for p in images],
        load_model(model_uri, tracking_uri=uri),
        out,
        options=options,
        truth=None if truth is None else [str(p) for p in truth],
        overwrite=True,
        progress=False,
    )
    return result.summary


def _contrast(inputs: StudyInputs, args: argparse.Namespace) -> dict[str, float | None]:
    """Each paired image's measured contrast (:mod:`temseg.data.contrast`), preprocessed as
    the store was."""
    from temseg.data.contrast import measure_contrast
    from temseg.data.preprocess import preprocess
    from temseg.data.readers import read_mask, read_raw

    out = {}
    for m in inputs.pairs:
        frames = read_raw(m.path).data
        std = [
            preprocess(
                f, pixel_size_nm=m.pixel_size_nm, xray_threshold=args.xray_threshold,
                flat_field=args.flat_field,
            )[0]
            for f in frames
        ]
        out[m.name] = measure_contrast(np.stack(std), read_mask(m.mask))["contrast"]
    return out


def finish(
    args: argparse.Namespace,
    inputs: StudyInputs,
    *,
    out: Path,
    name: str,
    uri: str,
    experiment: str,
    why: str,
) -> Path:
    """Segment with the registered network, write ``sizes.csv`` and the page; its path."""
    rec = recommended(uri, name, experiment)
    tables = [
        _segment(
            [m.path for m in inputs.pairs], [m.mask for m in inputs.pairs],
            out / "segmented", rec["uri"], uri, args,
        ).assign(trained_on="yes (with its mask)")
    ]
    if inputs.extra:
        more = _segment([m.path for m in inputs.extra], None, out / "segmented-more", rec["uri"],
                        uri, args)
        tables.append(more.assign(trained_on="no"))
    sizes = pd.concat(tables, ignore_index=True).reindex(columns=SIZE_COLUMNS)
    sizes.to_csv(out / "sizes.csv", index=False)
    contrast = _contrast(inputs, args)
    facts = {
        "profile": f"{args.profile} ({why})",
        "flat field": "on (--flat-field)" if args.flat_field else "off (the paper's protocol)",
        "pixel size": f"{inputs.pixel_size_nm:g} nm/px",
        "images": f"{len(inputs.pairs)} with masks (trained on)"
        + (f", {len(inputs.extra)} segmented only" if inputs.extra else ""),
        "measured contrast": ", ".join(
            f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in contrast.items()
        ),
        "trials": f"{rec['trials']} in MLflow experiment {experiment} at {uri}",
    }
    shown = display_table(sizes)
    (out / "study.md").write_text(_markdown(rec, shown, facts))
    (out / "index.html").write_text(_html(rec, shown, facts))
    print(f"study: {out / 'index.html'}\n{answer_sentence(rec)}", flush=True)
    return out / "index.html"


def answer_sentence(rec: dict[str, Any]) -> str:
    """The page's first line, plain text."""
    px = float(rec["pixel_size_nm"])
    rf = int(float(rec["rf_px"]))
    if rec["n_seeds"] >= 2:
        dice = (
            f"test dice {rec['dice']:.3f} [95 % interval {rec['dice_lo']:.3f}, "
            f"{rec['dice_hi']:.3f}] over {rec['n_seeds']} seeds"
        )
    else:
        dice = f"test dice {rec['dice']:.3f} (1 seed: no interval; 3+ seeds give one)"
    return (
        f"Recommended network: {network_label(rec['num_blocks'], rec['pools'], rec['dilations'])}"
        f", RF {rf} px ({rf * px:.2f} nm); {dice}. Registered as "
        f"{rec['uri']} (version {rec['version']}, seed {rec['seed']})."
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def display_table(sizes: pd.DataFrame) -> pd.DataFrame:
    """The page's size table: each statistic with its interval in one cell, ``1.285 [1.029,
    1.566]`` (``sizes.csv`` keeps the separate columns)."""
    def cell(r: Any, name: str) -> str:
        v, lo, hi = (r[f"{name}{s}_nm"] for s in ("", "_lo", "_hi"))
        if v != v:
            return ""
        return f"{v:.3f}" + ("" if lo != lo else f" [{lo:.3f}, {hi:.3f}]")

    out = sizes[["image", "frame", "trained_on", "count_interior"]].copy()
    for name, label in (("d50", "D50 nm"), ("d10", "D10 nm"), ("d90", "D90 nm"),
                        ("dvmean", "D[4,3] nm")):
        out[label] = [cell(r, name) for _, r in sizes.iterrows()]
    return out.assign(
        gsd=sizes["gsd"], in_domain=sizes["in_domain"], dice=sizes["dice"],
        d50_bias_nm=sizes["d50_bias_nm"],
    ).rename(columns={"count_interior": "particles"})  # fmt: skip


def _markdown(rec: dict[str, Any], sizes: pd.DataFrame, facts: dict[str, str]) -> str:
    rows = ["| " + " | ".join(sizes.columns) + " |", "|" + "---|" * len(sizes.columns)]
    rows += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in sizes.itertuples(index=False)]
    lines = [f"# temseg study\n\n**{answer_sentence(rec)}**\n", f"Why: {rec.get('reason', '')}\n"]
    lines += ["## Particle sizes\n", SIZES_NOTE + "\n", *rows, ""]
    lines += ["## How\n", *(f"- {k}: {v}" for k, v in facts.items())]
    lines += ["- report: report/report.html; masks and particle tables: segmented/\n"]
    return "\n".join(lines)


def _html(rec: dict[str, Any], sizes: pd.DataFrame, facts: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in sizes.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>"
        for r in sizes.itertuples(index=False)
    )
    how = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in facts.items())
    return (
        "<!doctype html><meta charset='utf-8'><title>temseg study</title>"
        "<style>body{font-family:sans-serif;max-width:72em} td,th{padding:2px 8px;"
        "text-align:right}</style><h1>temseg study</h1>"
        f"<p><b>{html.escape(answer_sentence(rec))}</b></p>"
        f"<p>Why this one: {html.escape(str(rec.get('reason', '')))}</p>"
        f"<h2>Particle sizes</h2><p>{html.escape(SIZES_NOTE)} (<a href='sizes.csv'>sizes.csv"
        f"</a>)</p><table><tr>{head}</tr>{body}"
        f"</table><h2>How</h2><ul>{how}</ul><p><a href='report/report.html'>the sweep's "
        "report</a> · <a href='segmented/index.html'>masks, overlays and particle tables</a>"
        "</p>"
    )
