#!/usr/bin/env python
"""The demo's receptive-field protocol on multislice stores, and the cross-domain check.

Stores at the demo's scale (hr-2.2nm physics at 0.04 nm/px, 18 images of 384 px, 192 px
patches, split 0.34 / 0.22 / 0.44, seed 0):

- ``ms-low``:  multislice, 5 nm carbon, 80 e/A^2 (the real data's low-dose anchor);
- ``ms-high``: multislice, 2 nm carbon, 884 e/A^2 (its high-dose anchor);
- ``fast``:    the fast generator at C = 0.09 (the demo's low level).

Each store trains N = 2 with pools 2-2, 4-2, 2-8, 4-4 (RF 44, 80, 104, 120 px) and seeds 752,
2245, 140: 6 epochs, batch 4, Adam 2e-3 with warm-up and cosine decay, dihedral
augmentation, validation on the patches as stored (sweeps/demo.yaml). The best-validation
checkpoint of every trial is then tested on the test split of every store: the diagonal is
the in-domain dice, the rest the cross-domain dice.

    python scripts/physics_study.py --out docs/physics/study.csv     (36 trials)
    python scripts/physics_study.py --pools 2-2 4-4 --seeds 752 2245 --train-on ms-low fast ms-high

Needs the sim extra (pip install 'temseg[sim]') for the multislice stores.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCALE = dict(image_size=384, patch_size=192, split_fractions=(0.34, 0.22, 0.44))
MS_CONDITIONS = {
    "ms-low": dict(carbon_thickness_nm=5.0, dose=80.0),
    "ms-high": dict(carbon_thickness_nm=2.0, dose=884.0),
}
POOLS = [(2, 2), (4, 2), (2, 8), (4, 4)]
SEEDS = [752, 2245, 140]
PROTOCOL = dict(
    num_blocks=2,
    epochs=6,
    lr=2e-3,
    lr_schedule="cosine",
    batch_size=4,
    augment=True,
    val_dihedral=False,
    device="cpu",
)


def make_stores(root: Path, images: int, seed: int) -> dict[str, Path]:
    from temseg.data.simulate import make_simulated_store
    from temseg.data.synth import make_contrast_series

    root.mkdir(parents=True, exist_ok=True)
    stores = {}
    for name, cond in MS_CONDITIONS.items():
        path = root / f"{name}-s{seed}.zarr"
        if not path.exists():
            t0 = time.perf_counter()
            make_simulated_store(
                path,
                preset="hr-2.2nm",
                images=images,
                seed=seed,
                pixel_size_nm=0.04,
                aperture_mrad=(12.0, 16.0),  # band limit at 0.04 nm/px: 16.4 mrad
                v1=True,  # the study (docs/physics.md section 3) ran on the first image model
                **SCALE,
                **cond,
            )
            print(f"{path.name}: {time.perf_counter() - t0:.0f} s", flush=True)
        stores[name] = path
    (fast,) = make_contrast_series(
        root,
        contrasts=[0.09],
        preset="hr-2.2nm",
        images=images,
        seed=seed,
        pixel_size_nm=0.04,
        version=2,  # the generator version of the committed study (docs/physics/study.csv)
        **SCALE,
    )
    stores["fast"] = fast
    return stores


def summarize(path: str) -> str:
    """Markdown tables of a study CSV: in-domain test dice per store and RF (seed mean +- sd,
    n), the gain from the smallest to the largest RF (a fixed pair, so not biased up as the
    best RF picked from the same data would be) with a 95 % bootstrap interval over seeds,
    and the cross-domain matrix (seed means over every RF)."""
    import numpy as np
    import pandas as pd

    d = pd.read_csv(path)
    stores = list(dict.fromkeys(d["train_on"]))
    tests = [c for c in d.columns if c.startswith("test_")]
    out = [
        "| trained on | "
        + " | ".join(f"RF {r} px" for r in sorted(d.rf_px.unique()))
        + " | gain, smallest to largest RF [95 % CI] | seeds gaining |",
        "|---" * (len(d.rf_px.unique()) + 3) + "|",
    ]
    rng = np.random.default_rng(0)
    for store in stores:
        mine = d[d.train_on == store]
        wide = mine.pivot_table(index="seed", columns="rf_px", values="fit_test")
        cells = [
            f"{wide[r].mean():.3f} +- {wide[r].std(ddof=1):.3f} (n={wide[r].count()})"
            for r in sorted(wide.columns)
        ]
        best = max(wide.columns)
        lo_rf = min(wide.columns)
        gains = (wide[best] - wide[lo_rf]).dropna().to_numpy()
        boot = [rng.choice(gains, len(gains)).mean() for _ in range(2000)] if len(gains) else []
        ci = f"[{np.percentile(boot, 2.5):+.3f}, {np.percentile(boot, 97.5):+.3f}]" if boot else ""
        gain = f"{gains.mean():+.3f} {ci}" if len(gains) else "n/a"
        out.append(
            f"| `{store}` | " + " | ".join(cells) + f" | {gain} | "
            f"{int((gains > 0).sum())}/{len(gains)} |"
        )
    out += [
        "",
        "| trained on \\ tested on | " + " | ".join(f"`{t[5:]}`" for t in tests) + " |",
        "|---" * (len(tests) + 1) + "|",
    ]
    for store in stores:
        mine = d[d.train_on == store]
        cells = [f"{mine[t].mean():.3f} +- {mine[t].std(ddof=1):.3f}" for t in tests]
        out.append(f"| `{store}` | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data/physics", help="folder for the stores and runs")
    p.add_argument("--images", type=int, default=18)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/physics/study.csv")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-on", nargs="+", default=["ms-low", "ms-high", "fast"])
    p.add_argument("--pools", nargs="+", default=[f"{a}-{b}" for a, b in POOLS])
    p.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    p.add_argument(
        "--summarize",
        metavar="CSV",
        help="print the study's tables from its CSV (no training) and exit",
    )
    args = p.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize))
        return 0

    import torch

    from temseg.config import resolve_precision
    from temseg.data.store import read_attrs
    from temseg.model import load_checkpoint
    from temseg.train import Split, evaluate, fit

    torch.set_num_threads(args.threads)
    root = Path(args.root).absolute()
    stores = make_stores(root, args.images, args.seed)
    for name, path in stores.items():
        a = read_attrs(path)
        print(f"{name}: {path} contrast {a['contrast']:.3f} patches {a['n_patches']}", flush=True)
    device = torch.device("cpu")
    precision = resolve_precision("auto", gpus_per_trial=0)  # as the demo: bf16 if native
    print(f"precision: {precision}", flush=True)
    tests = {name: Split(str(path), "test", device, augment=True) for name, path in stores.items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["train_on", "pools", "rf_px", "seed", "best_epoch", "seconds", "fit_test"]
    fields += [f"test_{name}" for name in stores]
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        for train_on in args.train_on:
            for pools in [tuple(int(v) for v in p.split("-")) for p in args.pools]:
                for seed in args.seeds:
                    workdir = root / "runs" / f"{train_on}-p{pools[0]}-{pools[1]}-s{seed}"
                    cfg = {
                        **PROTOCOL,
                        "data": str(stores[train_on]),
                        "pools": pools,
                        "seed": seed,
                        "precision": precision,
                    }
                    res = fit(cfg, workdir=workdir)
                    model, _ = load_checkpoint(res["best_checkpoint"])
                    model = model.to(memory_format=torch.channels_last)
                    row = {
                        "train_on": train_on,
                        "pools": f"{pools[0]}-{pools[1]}",
                        "rf_px": res["rf_px"],
                        "seed": seed,
                        "best_epoch": res["best_epoch"],
                        "seconds": round(res["seconds"], 1),
                        "fit_test": round(res["test_hard_dice"], 4),
                    }
                    for name, split in tests.items():
                        te = evaluate(
                            model, split, batch_size=8, device=device, precision=precision
                        )
                        row[f"test_{name}"] = round(te["hard_dice"], 4)
                    writer.writerow(row)
                    f.flush()
                    print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
