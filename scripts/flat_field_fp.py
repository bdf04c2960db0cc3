"""Background false positives with and without flat-field correction (docs/flat_field.md).

Unevenly lit synthetic micrographs (``--illumination 0.25``: each image's beam intensity
1 + a_y 2y + a_x 2x + a_b bump with every a drawn in [-0.25, 0.25]) and evenly lit ones
(``--illumination 0``), same seeds, so the same particles, carbon and lens. Each is segmented
by ``temseg segment``'s own run (:func:`temseg.segment.segment_images`, 1 nm speck removal)
without and with ``flat_field``, and scored against the generator's true mask:

- ``fp_bg``: the share of true background pixels marked as particle (false-positive area);
- ``fp_bg_corner``: the same in the image's darkest quarter (by the true illumination, the
  corner the gradient darkens), where an uncorrected network calls background particle;
- ``dice``.

Networks: each ``--model`` (a temseg checkpoint or MLflow URI, at its own pixel size; the
images are drawn at it) and the authors' five networks (../shared/reference_models, hr-5nm
images at 0.02152 nm/px, ``--model-pixel-size-nm`` 0.02152), none of which trained on
flat-fielded images: the correction is applied at inference only.

    python scripts/flat_field_fp.py --model models:/temseg-x@recommended \\
        --tracking-uri sqlite:///$PWD/mlruns.db --out docs/flat_field.csv
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from temseg.data.readers import read_mask, read_raw
from temseg.data.synth import generator_params, render_image, write_micrograph
from temseg.segment import SegmentOptions, load_model, segment_images

SHARED = Path(__file__).resolve().parents[1].parent / "shared"  # ../shared, as the tests
AUTHORS_PX = 0.02152


def darkest_quarter(params, seed: int, index: int) -> np.ndarray:
    """True on the quarter of the image where the generator's illumination is lowest."""
    even = render_image(
        generator_params(**{**params, "illumination": 0.0}), np.random.default_rng([seed, index])
    ).expected
    lit = render_image(generator_params(**params), np.random.default_rng([seed, index])).expected
    ratio = lit / np.maximum(even, 1e-6)
    return ratio <= np.quantile(ratio, 0.25)


def score(pred: np.ndarray, truth: np.ndarray, corner: np.ndarray) -> dict[str, float]:
    bg = truth == 0
    inter = float((pred & (truth > 0)).sum())
    return {
        "fp_bg": float((pred & bg).sum() / bg.sum()),
        "fp_bg_corner": float((pred & bg & corner).sum() / (bg & corner).sum()),
        "dice": 2 * inter / max(1.0, float(pred.sum() + (truth > 0).sum())),
    }


def run_model(name, model, preset, contrast, args, tmp: Path) -> list[dict]:
    rows = []
    for illum in (0.0, args.illumination):
        for index in range(args.images):
            knobs = {"pixel_size_nm": model.pixel_size_nm, "illumination": illum}
            stem = tmp / f"{preset}-i{illum:g}-{index}"
            paths = write_micrograph(
                f"{stem}.tif", preset=preset, contrast=contrast, seed=args.seed, index=index,
                image_size=args.size, overwrite=True, **knobs,
            )
            params = {"preset": preset, "contrast": contrast, "image_size": args.size, **knobs}
            corner = darkest_quarter(params, args.seed, index)
            truth = read_mask(paths["mask"])[0]
            for flat in (False, True):
                out = segment_images(
                    [paths["image"]], model, tmp / "seg", options=SegmentOptions(flat_field=flat),
                    overwrite=True, progress=False, log=lambda m: None,
                ).out
                pred = read_raw(out / f"{stem.name}_mask.tif").data[0] > 0
                rows.append({"network": name, "illumination": illum, "image": index,
                             "flat_field": flat, **score(pred, truth, corner)})
        print(pd.DataFrame(rows[-2 * args.images:]).to_string(index=False), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], help="temseg network (repeat)")
    ap.add_argument("--preset", default="hr-2.2nm", help="images for --model (default hr-2.2nm)")
    ap.add_argument("--contrast", type=float, default=0.09, help="C of the images (0.09)")
    ap.add_argument("--tracking-uri", help="MLflow store of the --model URIs")
    ap.add_argument("--authors", action="store_true", help="also the authors' five networks")
    ap.add_argument("--shared", type=Path, default=SHARED, help=f"default {SHARED}")
    ap.add_argument("--illumination", type=float, default=0.25, help="uneven amplitude (0.25)")
    ap.add_argument("--images", type=int, default=4, help="images per condition (4)")
    ap.add_argument("--size", type=int, default=1024, help="image side px (1024)")
    ap.add_argument("--seed", type=int, default=7, help="generator seed (7)")
    ap.add_argument("--out", required=True, help="CSV of every image and condition")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="flatfield-") as tmp:
        for spec in args.model:
            model = load_model(spec, tracking_uri=args.tracking_uri)
            rows += run_model(spec, model, args.preset, args.contrast, args, Path(tmp))
        if args.authors:
            found = sorted((args.shared / "reference_models").glob("*.h5"))
            if not found:
                ap.error(f"--authors: no .h5 networks in {args.shared / 'reference_models'}")
            for h5 in found:
                model = load_model(str(h5), model_pixel_size_nm=AUTHORS_PX)
                rows += run_model(h5.stem, model, "hr-5nm", args.contrast, args, Path(tmp))
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    summary = table.groupby(["network", "illumination", "flat_field"])[
        ["fp_bg", "fp_bg_corner", "dice"]
    ].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
