"""Speed of ``temseg segment`` on CPU: megapixels per second for N = 2, 3, 4, and the seconds
for one whole 4096 x 4096 micrograph.

Networks are random-initialized (speed does not depend on the weights) with one typical pool
sequence per N (RF by Eq. 1): N=2 4-4 (120 px, the demo's enough RF), N=3 2-4-4 (248 px),
N=4 2-2-2-4 (280 px). Inference is the seamless tiled path of
:func:`temseg.segment.predict_tiled` (fp32, channels-last, ``--tile`` and ``--batch-size``
as the command's defaults), timed after one warm-up pass. The whole-micrograph line times
the steps of ``temseg segment`` on a synthetic hr-2.2nm 4096 x 4096 image (N=2 4-4):
preprocessing, tiled inference, and the particle table of the generator's true mask (the
random network's mask is noise, whose tens of thousands of specks would time nothing real).

The ensemble line times, side by side in one run on the same 2048 x 2048 image, one network
and an ensemble of ``--ensemble`` K networks (N=2 4-4, different random weights) through
:func:`temseg.segment.run.predict_ensemble` (K tiled passes and the mean probability), and the
size statistics' bootstrap (1000 replicates) of the generator's true particles with K
networks' sizes against one; it prints each ratio.

    python scripts/bench_segment.py               # 2 threads, 2048 px, then the 4096 px image
    python scripts/bench_segment.py --skip-full   # only the megapixels per second
    python scripts/bench_segment.py --only-ensemble --ensemble 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from temseg.model import ResidualUNet
from temseg.segment import DEFAULT_BATCH, DEFAULT_TILE, predict_tiled, tile_margins
from temseg.segment.models import SegmentModel

POOLS = {2: (4, 4), 3: (2, 4, 4), 4: (2, 2, 2, 4)}


def net_for(n: int, seed: int = 0) -> ResidualUNet:
    torch.manual_seed(seed)
    return ResidualUNet(n, POOLS[n]).eval().to(memory_format=torch.channels_last)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--size", type=int, default=2048, help="image side for Mpx/s (default 2048)")
    ap.add_argument("--full-size", type=int, default=4096, help="whole micrograph side")
    ap.add_argument("--tile", type=int, default=DEFAULT_TILE)
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--skip-full", action="store_true", help="skip the whole-micrograph timing")
    ap.add_argument("--ensemble", type=int, default=3, help="networks of the ensemble (default 3)")
    ap.add_argument("--only-ensemble", action="store_true", help="only the ensemble's cost")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.only_ensemble:
        bench_ensemble(args)
        return
    image = np.random.default_rng(0).standard_normal((args.size, args.size)).astype(np.float32)
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 channels-last, "
        f"tile {args.tile}, batch {args.batch_size}"
    )
    print("N  pools     RF_px  margin_px  image_px  seconds  Mpx/s")
    for n in (2, 3, 4):
        net = net_for(n)
        predict_tiled(net, image[:512, :512], tile=args.tile, batch_size=args.batch_size)
        t0 = time.perf_counter()
        predict_tiled(net, image, tile=args.tile, batch_size=args.batch_size)
        s = time.perf_counter() - t0
        pools = "-".join(map(str, POOLS[n]))
        margin = tile_margins(POOLS[n])[0]
        print(
            f"{n}  {pools:<8}  {net.config.rf_px:>5}  {margin:>9}  {args.size:>8}  {s:>7.2f}  "
            f"{args.size**2 / 1e6 / s:>5.2f}",
            flush=True,
        )
    bench_ensemble(args)
    if args.skip_full:
        return
    from temseg.data.preprocess import preprocess
    from temseg.data.synth import generator_params, render_image
    from temseg.particles import particle_table

    size = args.full_size
    params = generator_params("hr-2.2nm", contrast=0.06, image_size=size)
    rendered = render_image(params, np.random.default_rng([0, 0]))
    t0 = time.perf_counter()
    std, _ = preprocess(rendered.counts, pixel_size_nm=params.pixel_size_nm)
    t1 = time.perf_counter()
    predict_tiled(net_for(2), std, tile=args.tile, batch_size=args.batch_size)
    t2 = time.perf_counter()
    table = particle_table(rendered.mask, params.pixel_size_nm)
    t3 = time.perf_counter()
    print(
        f"\n# one {size} x {size} micrograph, N=2 4-4: preprocessing {t1 - t0:.1f} s, "
        f"tiled inference {t2 - t1:.1f} s, particle table ({len(table)} particles) "
        f"{t3 - t2:.1f} s; total {t3 - t0:.1f} s"
    )


def bench_ensemble(args: argparse.Namespace) -> None:
    """Seconds of one network and of a K-network ensemble, side by side, and their ratio."""
    from temseg.data.synth import generator_params, render_image
    from temseg.particles import particle_table
    from temseg.segment.run import predict_ensemble
    from temseg.segment.sizes import particle_bootstrap

    k = args.ensemble
    image = np.random.default_rng(1).standard_normal((2048, 2048)).astype(np.float32)
    nets = [SegmentModel(net_for(2, seed), 0.04, f"random-{seed}", "temseg") for seed in range(k)]
    opts = {"tile": args.tile, "batch_size": args.batch_size}
    predict_ensemble(nets[:1], image[:512, :512], **opts)  # warm-up
    t0 = time.perf_counter()
    predict_ensemble(nets[:1], image, **opts)
    t1 = time.perf_counter()
    predict_ensemble(nets, image, **opts)
    t2 = time.perf_counter()
    params = generator_params("hr-2.2nm", contrast=0.09, image_size=2048, pixel_size_nm=0.04)
    table = particle_table(render_image(params, np.random.default_rng([0, 0])).mask, 0.04)
    d = table.loc[~table["touches_border"], "diameter_nm"].to_numpy()
    members = d[:, None] * np.linspace(0.95, 1.05, k)[None]
    t3 = time.perf_counter()
    particle_bootstrap(d, d)
    t4 = time.perf_counter()
    particle_bootstrap(d, d, members_d=members, members_feret=members)
    t5 = time.perf_counter()
    print(
        f"\n# ensemble of {k} vs one network (N=2 4-4), 2048 x 2048, same run: inference "
        f"{t1 - t0:.2f} s vs {t2 - t1:.2f} s (x{(t2 - t1) / (t1 - t0):.2f}); bootstrap of "
        f"{len(d)} particles {t4 - t3:.2f} s vs {t5 - t4:.2f} s (x{(t5 - t4) / (t4 - t3):.2f})"
    )


if __name__ == "__main__":
    main()
