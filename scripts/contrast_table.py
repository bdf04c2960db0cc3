#!/usr/bin/env python
"""Which generator settings land in the real data's contrast band? A table, C x dose.

The same lab's HRTEM data (5 nm Au, ScottLabUCB/HRTEM-Generalization; SPEC.md section 5) has
a contrast score, median background minus median particle on the standardised image, of
0.239 at 80 e/A^2 and 0.576 at 884 e/A^2. This script renders synthetic images exactly as the
stores are made (raw counts -> the paper's preprocessing -> standardised image) and prints
that score, pooled over the images' pixels, next to temseg's stored contrast measure
(a robust standardised mean difference, temseg.data.contrast), for each contrast C and dose.

    python scripts/contrast_table.py                                  # the demo's sampling
    python scripts/contrast_table.py --preset hr-5nm --pixel-size-nm 0.02152 --image-size 512
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temseg.data.contrast import measure_contrast  # noqa: E402
from temseg.data.preprocess import XRAY_THRESHOLDS, preprocess  # noqa: E402
from temseg.data.synth import generator_params, get_preset, render_image  # noqa: E402

REAL_BAND = ((80.0, 0.239), (884.0, 0.576))  # (dose e/A^2, score): the real anchors


def score(preset: str, contrast: float, dose: float, args: argparse.Namespace) -> tuple:
    knobs = {"pixel_size_nm": args.pixel_size_nm} if args.pixel_size_nm else {}
    params = generator_params(
        preset, contrast=contrast, image_size=args.image_size, dose=dose, **knobs
    )
    threshold = XRAY_THRESHOLDS[get_preset(preset).regime]
    images, masks = [], []
    for i in range(args.images):
        r = render_image(params, np.random.default_rng([args.seed, i]))
        images.append(preprocess(r.counts, xray_threshold=threshold)[0])
        masks.append(r.mask)
    img, msk = np.stack(images), np.stack(masks).astype(bool)
    anchor = float(np.median(img[~msk]) - np.median(img[msk]))
    return anchor, float(measure_contrast(img, msk.astype(np.uint8))["contrast"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="hr-2.2nm")
    p.add_argument("--pixel-size-nm", type=float, default=0.04, help="0 = the preset's")
    p.add_argument("--image-size", type=int, default=384)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contrasts", default="0.02,0.04,0.06,0.09,0.13,0.2")
    p.add_argument("--doses", default="80,423,884")
    args = p.parse_args(argv)
    contrasts = [float(c) for c in args.contrasts.split(",")]
    doses = [float(d) for d in args.doses.split(",")]
    px = args.pixel_size_nm or get_preset(args.preset).pixel_size_nm
    print(
        f"{args.preset} at {px:g} nm/px, {args.images} images of {args.image_size} px, seed "
        f"{args.seed}. Score = median(background) - median(particle), standardised image "
        f"(real 5 nm Au: {REAL_BAND[0][1]} at {REAL_BAND[0][0]:g} e/A^2, {REAL_BAND[1][1]} at "
        f"{REAL_BAND[1][0]:g} e/A^2); in brackets temseg's stored contrast measure."
    )
    print("C      " + "".join(f"{d:>8g} e/A^2  " for d in doses))
    for c in contrasts:
        cells = []
        for d in doses:
            anchor, stored = score(args.preset, c, d, args)
            cells.append(f"{anchor:6.3f} ({stored:5.3f})")
        print(f"{c:<6g} " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
