"""Does ``temseg segment`` report sizes a lab can publish? The measurements of issue 24.

1. Coverage: over micrographs with different seeds (``temseg synth-image``, which writes the
   true particle list), how many 95 % intervals of D50 and D90 (number-weighted, equivalent-
   circle diameter of particles not touching the border) contain that micrograph's true value
   (the list's ``footprint_diameter_nm``: the true label's equivalent circle), for the seed
   ensemble and for its best network alone; each with the intervals over particles (and
   networks) only, and widened by the boundary error measured on the networks' held-out
   test split (:mod:`temseg.segment.calibration`, what ``temseg segment`` writes by default).
2. Split: masks of touching pairs of discs (sizes as the generator's, 12 % sd) -> count error
   of ``--split`` against the true count.
3. Domain guard: an image like the training store and one 3x more contrasted (generator C
   chosen so; contrast score measured with the true mask), ``in_domain`` of each.
4. ``--model auto`` between the registered models of a store, on images like each.

    python scripts/segment_validation.py --tracking-uri sqlite:////tmp/x/mlruns.db \
        --ensemble models:/temseg-hr-2.2nm-c0.090-s0_px0.04@seeds \
        --single models:/temseg-hr-2.2nm-c0.090-s0_px0.04@recommended --out docs/segment
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from temseg.cli import main as cli
from temseg.particles import label_particles, split_touching
from temseg.segment import (
    DEFAULT_BATCH,
    DEFAULT_MIN_DIAMETER_NM,
    DEFAULT_TILE,
    SegmentOptions,
    choose_auto,
    load_models,
    segment_images,
)
from temseg.segment.calibration import for_models
from temseg.segment.registry import auto_candidates
from temseg.segment.sizes import widen

PRESET, PIXEL = "hr-2.2nm", 0.04


def synth(folder: Path, seed: int, contrast: float, size: int, version: int) -> Path:
    """A micrograph of the networks' own generator version (docs/segment was measured with
    the version 2 demo's networks on version 2 images)."""
    out = folder / f"s{seed}-c{contrast:g}.tif"
    cli(["synth-image", str(out), "--preset", PRESET, "--size", str(size), "--seed", str(seed),
         "--contrast", str(contrast), "--pixel-size-nm", str(PIXEL), "--overwrite",
         "--generator-version", str(version)])  # fmt: skip
    return out


def true_quantiles(image: Path) -> tuple[float, float, int]:
    t = pd.read_csv(image.with_name(image.stem + "_particles.csv"))
    d = t.loc[~t["touches_border"].astype(bool), "footprint_diameter_nm"].to_numpy()
    q = np.quantile(d, [0.5, 0.9], method="inverted_cdf")
    return float(q[0]), float(q[1]), len(d)


def coverage(models, images, folder: Path, label: str, boot: int) -> pd.DataFrame:
    """Per image: D50 / D90 with the intervals over particles (and networks), and the same
    widened by the networks' boundary-error term (``*_cal_*``, :func:`calibrated`)."""
    rows = []
    for img in images:
        res = segment_images([img], models, folder / f"{label}-{img.stem}",
                             options=SegmentOptions(n_boot=boot, calibrate=False),
                             progress=False, log=lambda m: None)  # fmt: skip
        s = res.summary.iloc[0]
        t50, t90, n_true = true_quantiles(img)
        rows.append({
            "networks": label, "image": img.stem, "n_true": n_true, "n": s["count_interior"],
            "true_d50_nm": t50, "d50_nm": s["d50_nm"], "d50_lo_nm": s["d50_lo_nm"],
            "d50_hi_nm": s["d50_hi_nm"], "d50_covered": s["d50_lo_nm"] <= t50 <= s["d50_hi_nm"],
            "true_d90_nm": t90, "d90_nm": s["d90_nm"], "d90_lo_nm": s["d90_lo_nm"],
            "d90_hi_nm": s["d90_hi_nm"], "d90_covered": s["d90_lo_nm"] <= t90 <= s["d90_hi_nm"],
            "in_domain": s["in_domain"], "contrast": s["contrast"],
            "contrast_otsu": s["contrast_otsu"],
        })  # fmt: skip
    return calibrated(pd.DataFrame(rows), models)


def calibrated(table: pd.DataFrame, models) -> pd.DataFrame:
    """Add the intervals ``temseg segment`` writes by default: D50 / D90 widened by the
    boundary error measured on the networks' held-out test split (the same
    :func:`temseg.segment.sizes.widen`, applied to the same bootstrap intervals)."""
    cal, note = for_models(models, min_diameter_nm=DEFAULT_MIN_DIAMETER_NM,
                           tile=DEFAULT_TILE, batch_size=DEFAULT_BATCH)  # fmt: skip
    if cal is None:
        raise SystemExit(f"segment_validation: {note}")
    table["boundary_mu"], table["boundary_tau"], table["boundary_rms"] = cal.mu, cal.tau, cal.rms
    for q in ("d50", "d90"):
        lo_hi = [widen(r[f"{q}_nm"], r[f"{q}_lo_nm"], r[f"{q}_hi_nm"], cal.extra()[q])
                 for _, r in table.iterrows()]  # fmt: skip
        table[f"{q}_cal_lo_nm"], table[f"{q}_cal_hi_nm"] = np.array(lo_hi).T
        table[f"{q}_cal_covered"] = table[f"{q}_cal_lo_nm"].le(table[f"true_{q}_nm"]) & table[
            f"{q}_cal_hi_nm"
        ].ge(table[f"true_{q}_nm"])
    return table


def touching_pairs(pairs: int, seed: int, radius_px: float) -> tuple[np.ndarray, int]:
    """Pairs of discs (radius sd 12 %) whose rims meet or overlap by up to 10 % of a
    diameter, at random orientations, one pair per grid cell."""
    rng = np.random.default_rng(seed)
    cell = int(6 * radius_px)
    side = math.ceil(math.sqrt(pairs))
    yy, xx = np.mgrid[: side * cell, : side * cell]
    mask = np.zeros(yy.shape, bool)
    for i in range(pairs):
        cy, cx = (i // side + 0.5) * cell, (i % side + 0.5) * cell
        r1, r2 = radius_px * np.clip(1 + 0.12 * rng.standard_normal(2), 0.5, 1.6)
        overlap = rng.uniform(0, 0.2) * radius_px
        a = rng.uniform(0, math.pi)
        sep = (r1 + r2 - overlap) / 2
        dy, dx = sep * math.sin(a), sep * math.cos(a)
        mask |= (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= r1**2
        mask |= (yy - cy + dy) ** 2 + (xx - cx + dx) ** 2 <= r2**2
    return mask, 2 * pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--ensemble", required=True, help="e.g. models:/<name>@seeds")
    ap.add_argument("--single", required=True, help="e.g. models:/<name>@recommended")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--contrast", type=float, default=0.09, help="generator C of the images")
    ap.add_argument("--bright", type=float, default=0.215, help="C of the 3x image")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", required=True, help="folder for the tables (docs/segment)")
    ap.add_argument(
        "--generator-version",
        type=int,
        default=2,
        help="generator version of the micrographs, that of the networks' training store "
        "(default 2: the version 2 demo's networks docs/segment was measured with; 3 for "
        "networks of today's demo)",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ens = load_models([args.ensemble], tracking_uri=args.tracking_uri)
    single = load_models([args.single], tracking_uri=args.tracking_uri)
    lines = [f"# segment validation ({len(ens)}-network ensemble: {args.ensemble})", ""]
    with tempfile.TemporaryDirectory(prefix="temseg-segval-") as tmp:
        tmp = Path(tmp)
        images = [
            synth(tmp, 1000 + k, args.contrast, args.size, args.generator_version)
            for k in range(args.images)
        ]
        table = pd.concat([coverage(ens, images, tmp, "ensemble", args.bootstrap),
                           coverage(single, images, tmp, "single", args.bootstrap)])  # fmt: skip
        table.to_csv(out / "coverage.csv", index=False)
        for label, t in table.groupby("networks", sort=False):
            lines.append(
                f"- {label}: D50 interval holds the true D50 in {int(t['d50_covered'].sum())}"
                f"/{len(t)} micrographs, D90 in {int(t['d90_covered'].sum())}/{len(t)}; median "
                f"D50 bias {np.median(t['d50_nm'] - t['true_d50_nm']):+.3f} nm, median interval "
                f"width {np.median(t['d50_hi_nm'] - t['d50_lo_nm']):.3f} nm, "
                f"{int(t['n'].median())} particles (true {int(t['n_true'].median())})"
            )
            r = t.iloc[0]
            lines.append(
                f"- {label} with the boundary-error term (held-out test split: mu "
                f"{100 * r['boundary_mu']:+.1f} %, tau {100 * r['boundary_tau']:.1f} %, rms "
                f"{100 * r['boundary_rms']:.1f} %): D50 in {int(t['d50_cal_covered'].sum())}"
                f"/{len(t)}, D90 in {int(t['d90_cal_covered'].sum())}/{len(t)}; median D50 "
                f"interval width {np.median(t['d50_cal_hi_nm'] - t['d50_cal_lo_nm']):.3f} nm"
            )
        like = synth(tmp, 2000, args.contrast, 1024, args.generator_version)
        bright = synth(tmp, 2000, args.bright, 1024, args.generator_version)
        guard = coverage(single, [like, bright], tmp, "guard", 200)  # its intervals unused
        for r in guard.itertuples():
            lines.append(f"- guard: {r.image}: contrast score {r.contrast:.3f} (network mask), "
                         f"{r.contrast_otsu:.3f} (Otsu mask) vs training {single[0].contrast:.3f}:"
                         f" in_domain {r.in_domain:g}")  # fmt: skip
        candidates = load_models(auto_candidates(args.tracking_uri),
                                 tracking_uri=args.tracking_uri, same_pixel_size=False)  # fmt: skip
        for img in (like, synth(tmp, 2000, 0.2, 1024, args.generator_version)):
            pick = choose_auto([img], candidates, log=lambda m: None)
            lines.append(f"- auto: {img.stem}: picks {pick.source} (training contrast "
                         f"{pick.contrast:.3f}) among {len(candidates)} registered models")  # fmt: skip
    radius = 2.2 / PIXEL / 2
    errors = []
    for seed in range(5):
        mask, n_true = touching_pairs(50, seed, radius)
        n_joined, n_split = int(label_particles(mask).max()), int(split_touching(mask).max())
        errors.append((n_true, n_joined, n_split))
    e = np.array(errors)
    lines.append(
        f"- split: {len(e)} masks of 50 touching pairs each ({e[:, 0].sum()} discs): "
        f"{e[:, 1].sum()} particles without --split, {e[:, 2].sum()} with it "
        f"(count error {100 * (e[:, 2].sum() - e[:, 0].sum()) / e[:, 0].sum():+.1f} %; worst "
        f"mask {100 * (np.abs(e[:, 2] - e[:, 0]) / e[:, 0]).max():.1f} %)"
    )
    (out / "validation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
