"""Benchmark the data layer: generator images/s, store load, PatchDataset + DataLoader patches/s.

Usage::

    python scripts/bench_data.py                      # hr-2.2nm, 512 px images, 256 px patches
    python scripts/bench_data.py --images 24 --workers 2 --preset hr-5nm

Prints one line per measurement; the store is written to a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Generator images/s and PatchDataset + DataLoader patches/s of temseg.data."
    )
    p.add_argument("--preset", default="hr-2.2nm", help="generator preset (default hr-2.2nm)")
    p.add_argument("--contrast", type=float, default=0.06, help="C (default 0.06)")
    p.add_argument("--images", type=int, default=12, help="images to generate (default 12)")
    p.add_argument("--image-size", type=int, default=512, help="image side px (default 512)")
    p.add_argument("--patch-size", type=int, default=256, help="patch side px (default 256)")
    p.add_argument("--batch-size", type=int, default=8, help="DataLoader batch (default 8)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the dataset (default 2)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from temseg.data.dataset import PatchDataset
    from temseg.data.preprocess import XRAY_THRESHOLDS, preprocess
    from temseg.data.store import load_split, read_attrs
    from temseg.data.synth import generator_params, get_preset, make_synthetic_store, render_image

    params = generator_params(args.preset, contrast=args.contrast, image_size=args.image_size)
    threshold = XRAY_THRESHOLDS[get_preset(args.preset).regime]
    t0 = time.perf_counter()
    for i in range(args.images):
        r = render_image(params, np.random.default_rng([args.seed, i]))
    t_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.images):
        preprocess(r.counts, xray_threshold=threshold)
    t_pre = time.perf_counter() - t0
    print(
        f"generator: {args.images / t_render:.1f} images/s ({args.image_size} px, {args.preset}); "
        f"preprocessing {args.images / t_pre:.1f} images/s"
    )

    tmp = Path(tempfile.mkdtemp(prefix="temseg-bench-"))
    try:
        store = tmp / "bench.zarr"
        t0 = time.perf_counter()
        make_synthetic_store(
            store,
            preset=args.preset,
            contrast=args.contrast,
            images=args.images,
            seed=args.seed,
            image_size=args.image_size,
            patch_size=args.patch_size,
        )
        t_store = time.perf_counter() - t0
        n = read_attrs(store)["n_patches"]
        print(
            f"store: {args.images} images -> {n['train']}/{n['val']}/{n['test']} patches in "
            f"{t_store:.2f} s ({args.images / t_store:.1f} images/s end to end)"
        )
        t0 = time.perf_counter()
        images, _ = load_split(store, "train")
        t_load = time.perf_counter() - t0
        print(
            f"load_split(train): {len(images) / t_load:.0f} patches/s ({images.nbytes / t_load / 1e6:.0f} MB/s)"
        )
        ds = PatchDataset(store, "train", augment=True)
        ds[0]
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        dt = time.perf_counter() - t0
        print(f"PatchDataset[i] (in memory, dihedral x8): {len(ds) / dt:.0f} patches/s")
        for in_memory in (False, True):
            ds = PatchDataset(store, "train", augment=True, in_memory=in_memory)
            loader = DataLoader(
                ds,
                batch_size=args.batch_size,
                shuffle=True,
                num_workers=args.workers,
                generator=torch.Generator().manual_seed(0),
            )
            t0 = time.perf_counter()
            seen = 0
            for _ in range(args.epochs):
                for x, _y in loader:
                    seen += x.shape[0]
            dt = time.perf_counter() - t0
            mode = "in memory" if in_memory else "chunk per item"
            print(
                f"PatchDataset + DataLoader ({mode}, {args.workers} workers, batch "
                f"{args.batch_size}, dihedral x8, {torch.get_num_threads()} torch threads): "
                f"{seen / dt:.0f} patches/s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
