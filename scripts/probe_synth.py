#!/usr/bin/env python
"""The fast generator through the real-data probe (`temseg realism`) and the calibration measures.

Makes an hr-5nm store at the paper's 0.02152 nm/px with the given generator version and knobs,
runs the authors' five networks on every patch (temseg.realism.probe) and prints, beside the
probe's table, the calibration measures of scripts/calibrate_synth.py on the generator's own
images: contrast score (the store's), particle darkening (noise-free particle / background
mean intensity), area fraction of the whole images, carbon spectrum sharpness (peak power over
the power at 2 nm^-1) and fringe visibility (band-passed std in particles over that in the
carbon) against defocus. Multislice's figures for comparison are in docs/physics.md.

    python scripts/probe_synth.py --seed 5 --images 40 --contrast 0.17 --coverage 0.35 \\
        --fringe-free-fraction 0 --out docs/physics/probe_v3_s5.csv      (~6 min, 1 core)

One torch and BLAS thread, so it can run beside other jobs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from calibrate_synth import peak_in, radial_power, visibility  # noqa: E402
from temseg import realism  # noqa: E402
from temseg.data.synth import generator_params, make_synthetic_store, render_image  # noqa: E402

DEFOCI = (-12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0)


def calibration(knobs: dict, contrast: float, seed: int, images: int, size: int) -> dict:
    """The generator's calibration measures on ``images`` noise-free images of ``size`` px."""
    px = 0.02152
    ratios, fractions = [], []
    for i in range(images):
        r = render_image(
            generator_params("hr-5nm", contrast=contrast, image_size=size, **knobs),
            np.random.default_rng([seed, i]),
        )
        ratios.append(r.expected[r.mask > 0].mean() / r.expected[r.mask == 0].mean())
        fractions.append(r.mask.mean())
    bare = dict(knobs, fringe_free_fraction=1.0, illumination=0.0, mottle=0.0,
                mean_inner_phase_rad_per_nm=0.0)  # fmt: skip
    bare.update(defocus_nm=(-8.0, -8.0), astigmatism_nm=(0.0, 0.0), cs_mm=(0.0, 0.0))
    carbon = render_image(
        generator_params("hr-5nm", contrast=0.0, image_size=size, **bare),
        np.random.default_rng(seed),
    ).expected
    k, p = radial_power(carbon, px)
    sharp = float(p[(k > 3) & (k < 6)].max() / np.interp(2.0, k, p))
    vis = []
    clean = dict(knobs, illumination=0.0, fringe_free_fraction=0.0, faint_fraction=0.0)
    clean.update(partial_fringe_fraction=0.0, astigmatism_nm=(0.0, 0.0), cs_mm=(0.0, 0.0))
    for df in DEFOCI:
        g = generator_params("hr-5nm", contrast=contrast, image_size=size,
                             **{**clean, "defocus_nm": (df, df)})  # fmt: skip
        r = render_image(g, np.random.default_rng(seed))
        vis.append(visibility(r.expected, r.mask, px) if r.mask.any() else float("nan"))
    return {
        "darkening": float(np.mean(ratios)),
        "area_fraction": float(np.mean(fractions)),
        "carbon_peak_nm": 1 / peak_in(k, p, 3.0, 6.0),
        "carbon_sharpness": sharp,
        "visibility": vis,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--contrast", type=float, required=True)
    p.add_argument("--version", type=int, help="generator version (default: the current)")
    p.add_argument("--coverage", type=float)
    p.add_argument("--fringe-free-fraction", type=float)
    p.add_argument("--dose", type=float)
    p.add_argument("--models", default=str(realism.DEFAULT_MODELS))
    p.add_argument("--out", help="also write the probe's table here (.csv or .json)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    knobs = {
        k: v
        for k, v in {
            "version": args.version,
            "coverage": args.coverage,
            "fringe_free_fraction": args.fringe_free_fraction,
            "dose": args.dose,
        }.items()
        if v is not None
    }
    if args.out:
        realism.check_out(args.out)
    realism.find_models(args.models)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="probe-synth-") as tmp:
        store = make_synthetic_store(
            Path(tmp) / "hr5.zarr",
            preset="hr-5nm",
            contrast=args.contrast,
            images=args.images,
            seed=args.seed,
            image_size=args.image_size,
            patch_size=512,
            **knobs,
        )
        result = realism.probe([store], models=args.models)
        print(realism.format_table(result))
        if args.out:
            print(realism.write_result(result, args.out))
    cal = calibration(knobs, args.contrast, args.seed, min(args.images, 4), 512)
    print(
        f"\ncalibration (4 noise-free 512 px images): particle/background intensity "
        f"{cal['darkening']:.3f}, area fraction {cal['area_fraction']:.3f}, carbon peak "
        f"{cal['carbon_peak_nm']:.3f} nm, carbon peak / power at 2 nm^-1 "
        f"{cal['carbon_sharpness']:.0f}"
    )
    print("fringe visibility vs defocus " + " ".join(f"{d:g}" for d in DEFOCI) + " nm: "
          + " ".join(f"{v:.2f}" for v in cal["visibility"]))  # fmt: skip
    print(f"knobs {knobs}, C {args.contrast}, seed {args.seed}; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
