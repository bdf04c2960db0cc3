"""Does a gain's interval cover other data draws? Seed-only vs seeds-and-test-images intervals.

Usage::

    python scripts/data_seed_intervals.py --tracking-uri sqlite:////tmp/iv/mlruns.db \\
        --experiments iv-s0 iv-s7 --pool iv-s0 iv-s7 --other iv-s1=0.096 iv-s23=0.056 \\
        --out docs/validation/data_seed_intervals.csv

Each experiment is one data draw (one ``--data-seed`` of the demo, or its low level alone).
Per experiment and plateau fit: the gain with its interval over training seeds only (the
bootstrap temseg used before per-image records) and over seeds and test images (the
report's now), the observed gain (largest minus smallest RF) with both, and which of the
other experiments' point estimates each interval contains. ``--pool`` adds one fit over
several experiments (data draws) of one level: blocks are (draw, training seed) pairs, test
images are drawn within each draw. Prints the table; writes a CSV with ``--out``.
"""

from __future__ import annotations

import argparse
import re
import sys

import pandas as pd


def intervals(experiment: str, uri: str, n_boot: int) -> pd.DataFrame:
    """One row per plateau fit of ``experiment``: both kinds of interval side by side."""
    from temseg.analysis import answer, collect, plateau

    done = collect.finished(collect.load_runs(experiment, uri))
    images = collect.load_test_images(done, uri)
    rows = []
    for kind, imgs in (("seeds", None), ("images", images)):
        fits = plateau.fit_plateaus(done, n_boot=n_boot, images=imgs)
        ans = answer.level_answers(done, fits, imgs).set_index(["dataset", "num_blocks"])
        cols = ["gain", "gain_lo", "gain_hi", "observed_gain", "observed_gain_lo"]
        part = ans[[*cols, "observed_gain_hi", "interval_over"]]
        rows.append(part.add_suffix("" if kind == "seeds" else "_new"))
    out = pd.concat(rows, axis=1).reset_index()
    out.insert(0, "experiment", experiment)
    out["verdict"] = ans["verdict"].to_numpy()
    out["n_test_images"] = images.groupby("run_id").size().max() if len(images) else 0
    return out.drop(columns=["gain_new", "observed_gain_new"])


def pooled(experiments: list[str], uri: str, n_boot: int) -> dict[str, object]:
    """One plateau fit over the trials of several data draws (one level, one N): blocks are
    (data draw, training seed) pairs, test images drawn within each draw."""
    from temseg.analysis import collect, image_bootstrap, plateau

    done = pd.concat([collect.finished(collect.load_runs(e, uri)) for e in experiments])
    images = collect.load_test_images(done, uri)
    blocks = (done["dataset"] + "/" + done["seed"].map("{:09d}".format)).to_numpy()  # by seed
    rf, dice = done["rf_px"].to_numpy(float), done["test_hard_dice"].to_numpy(float)
    counts = image_bootstrap.counts_for(done, images)
    fit = plateau.fit_plateau(rf, dice, blocks, n_boot=n_boot, counts=counts)
    return {
        "experiment": "+".join(experiments),
        "gain": fit.gain,
        "gain_lo_new": fit.gain_lo,
        "gain_hi_new": fit.gain_hi,
        "interval_over_new": f"{fit.interval_over} ({len(set(blocks))} draw x seed blocks)",
        "verdict": fit.verdict,
    }


def level(dataset: str) -> str:
    """The contrast level a dataset belongs to across data draws: its generator C token
    (``hr-2.2nm-c0.090-s7_px0.04_gv3`` -> ``c0.090``), else the name itself."""
    m = re.search(r"-(c\d+\.\d+)-s\d+", str(dataset))
    return m.group(1) if m else str(dataset)


def contains(
    table: pd.DataFrame, others: dict[tuple[str, str], float], lo: str, hi: str
) -> list[str]:
    """Per row: the other data draws (not pooled into it) of the same contrast level whose
    gain lies in its [lo, hi]."""
    return [
        " ".join(
            name
            for (name, lvl), gain in others.items()
            if lvl == level(r["dataset"])
            and name not in r["experiment"].split("+")
            and r[lo] <= gain <= r[hi]
        )
        for _, r in table.iterrows()
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracking-uri", required=True, help="MLflow store of the experiments")
    p.add_argument("--experiments", nargs="+", required=True, help="one per data draw")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (1000)")
    p.add_argument(
        "--pool",
        nargs="+",
        action="append",
        default=[],
        metavar="EXPERIMENT",
        help="also one fit pooling these experiments (data draws); repeatable",
    )
    p.add_argument(
        "--other",
        nargs="+",
        default=[],
        metavar="NAME=GAIN",
        help="gains of other data draws measured elsewhere, at the lowest contrast level, "
        "e.g. s23=0.056",
    )
    p.add_argument("--out", help="CSV to write")
    args = p.parse_args(argv)
    try:
        table = pd.concat([intervals(e, args.tracking_uri, args.n_boot) for e in args.experiments])
        pools = [pooled(group, args.tracking_uri, args.n_boot) for group in args.pool]
    except (ValueError, FileNotFoundError) as exc:
        print(f"data_seed_intervals: {exc}", file=sys.stderr)
        return 2
    table = pd.concat([table, pd.DataFrame(pools)]).reset_index(drop=True)
    single = table[~table["experiment"].str.contains("+", regex=False)]
    others = {
        (e, level(d)): g
        for e, d, g in zip(single["experiment"], single["dataset"], single["gain"], strict=True)
    }
    levels = {level(d) for d in table["dataset"]}
    lowest = min(levels, key=lambda v: float(v[1:]) if re.fullmatch(r"c[\d.]+", v) else 1e9)
    others.update({(k, lowest): float(v) for k, v in (o.split("=", 1) for o in args.other)})
    for kind in ("", "_new"):
        table[f"contains_gain{kind}"] = contains(table, others, f"gain_lo{kind}", f"gain_hi{kind}")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))
    if args.out:
        table.round(4).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
