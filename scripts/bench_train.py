#!/usr/bin/env python
"""Training throughput of temseg's step against the paper's reference loop, side by side.

Both loops train the same network (:class:`temseg.model.ResidualUNet`) from the same initial
weights on the same patches with the same batch size, in one process, in alternating timed
rounds (the variant that goes first rotates each round), so that load from other processes
on a shared machine hits both alike. The printed ``ratio`` is per round: reference seconds /
temseg seconds for the same number of steps; its median and spread over the rounds are given.

The temseg step is fit's training step (:mod:`temseg.train`): the split held in memory as one
tensor, batches gathered by index with the dihedral transform applied on the device
(``Split.batch``), channels-last forward (``_forward``: bf16 autocast on CPU and CUDA, fit's
default; ``--precision fp32`` for the fp32 forward), cross-entropy,
Adam, loss and dice sums kept on the device (``DiceAccumulator``) and read by the host once per
timed block, as fit reads them once per epoch. The step is ``temseg.train.train_step`` itself,
the function fit's loop calls.

The reference loop follows the paper's published protocol (Sytwu, Groschner & Scott 2022, the
authors' code; SPEC.md section 5): the augmented training set (each patch under the 8 dihedral
transforms) materialised as in-memory float32 / int64 arrays, served by a
``torch.utils.data.DataLoader`` (shuffle, default collate, no workers), fp32, contiguous NCHW
tensors, cross-entropy, Adam, and every batch the loss, the soft dice and the hard dice (the
authors' smoothed per-image form, softmax recomputed for each) pulled to the host with
``.item()``.

Before timing, a correctness check runs the first two steps of every variant on the same two
batches from the same initial weights and compares loss and pooled hard/soft dice with the
plain (reference) step, which is always fp32: the fp32 temseg step agrees to ~1e-5, the bf16
one to ~1e-3 (see ``TOLERANCE``).

Examples
--------
The issue's CPU target (2 cores, N=2, 256 px, batch 8)::

    .venv/bin/python scripts/bench_train.py --device cpu --blocks 2 --pools 2-2 \\
        --patch-size 256 --batch-size 8 --steps 10 --rounds 5 --compile

The GPU target (N=2, 512 px, batch 32)::

    python scripts/bench_train.py --device cuda --patch-size 512 --batch-size 32 --compile
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from temseg import train as T
from temseg.config import ModelConfig, resolve_precision
from temseg.data.store import read_attrs, write_store
from temseg.metrics import DiceAccumulator
from temseg.model import ResidualUNet, count_parameters
from temseg.receptive_field import check_input_size

LR = 1e-4  # the paper's Adam learning rate (SPEC.md section 5)
# Agreement of the temseg step with the plain step from the same weights and batch. fp32: the
# loss and soft dice agree to ~1e-5 (channels-last and NCHW convolutions sum in different
# orders; measured ~7e-6 relative loss, ~1e-6 soft dice at 256 px, batch 8). Hard dice moves
# in steps: a pixel whose two logits nearly tie can flip class (measured: 17-39 of 524288
# pixels), each flip moving the pooled hard dice by up to 2 / (|X| + |Y|) ~ 7e-6, so its bound
# is looser. bf16 autocast (CPU or CUDA) is compared with the same fp32 plain step: bf16 keeps
# ~3 significant digits (8-bit mantissa, relative rounding 2**-9 ~ 2e-3 per operation), so the
# loss and soft dice agree to ~1e-3 (measured on CPU: loss 1.0e-3 to 1.2e-3 relative, soft
# dice 4e-5 to 1.4e-4, at 64 px batch 4 and 256 px batch 8); at the untrained initial weights
# many pixels' two logits nearly tie and ~1 % of them flip class (measured: 9461 of 1048576
# pixels), moving the hard dice by up to 1.5e-3, hence its wider bound.
TOLERANCE = {
    "fp32": {"loss": 2e-5, "hard": 2e-4, "soft": 2e-5},
    "bf16": {"loss": 1e-2, "hard": 2e-2, "soft": 1e-2},
}
# (device type, blocks, patch px, batch, precision) -> the throughput target over the reference
TARGETS = {
    ("cpu", 2, 256, 8, "bf16"): 2.5,
    ("cpu", 2, 256, 8, "fp32"): 1.3,
    ("cuda", 2, 512, 32, "bf16"): 3.0,
    ("cuda", 2, 512, 32, "fp32"): 3.0,
}


def native_cpu_bf16() -> bool | None:
    """Whether oneDNN runs bf16 convolutions natively on this CPU (AVX512-BF16/AMX class).

    Without it (e.g. AVX2-only CPUs) bf16 convolutions under autocast fall back to
    ``aten::_slow_conv2d`` (im2col + gemm) and train slower than fp32. None when unknown.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


# ---------------------------------------------------------------------------------------------
# data


def disc_patches(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Standardised noise with 1-4 brighter discs per patch, and their 0/1 masks.

    Content does not change the speed of either loop; a real store can be given with --data.
    """
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0.0, 1.0, (n, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.integers(0, size, 2)
            r = rng.integers(max(2, size // 32), max(3, size // 6))
            masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        images[i] += 1.5 * masks[i]
    return images, masks


def make_disc_store(
    path: Path, *, patch_size: int, n_patches: int, n_val: int = 1, n_test: int = 1, seed: int = 0
) -> Path:
    """A temseg patch store (the real writer) with ``n_patches`` training patches."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in (("train", n_patches), ("val", n_val), ("test", n_test)):
        images, masks = disc_patches(n, patch_size, rng)
        splits[name] = (images, masks, np.zeros(n, np.int32))
    attrs = {
        "pixel_size_nm": 0.02,
        "kind": "synthetic",
        "contrast": 1.5,
        "sources": ["bench-discs"],
        "preprocessing": {"note": "benchmark discs, already standardised"},
        "generator": {"kind": "scripts.bench_train.disc_patches", "seed": seed},
    }
    return write_store(path, splits, attrs)


def dihedral_expand(images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The authors' augmented set in memory: (8n, 1, P, P) float32 images, (8n, P, P) int64."""
    xs, ys = [], []
    for img, msk in zip(images, masks, strict=True):
        for k in range(8):
            xi, yi = np.rot90(img, k % 4), np.rot90(msk, k % 4)
            if k >= 4:
                xi, yi = xi[:, ::-1], yi[:, ::-1]
            xs.append(xi)
            ys.append(yi)
    x = np.ascontiguousarray(np.stack(xs)[:, None], dtype=np.float32)
    y = np.ascontiguousarray(np.stack(ys), dtype=np.int64)
    return x, y


# ---------------------------------------------------------------------------------------------
# the two steps


def temseg_step_fn() -> tuple[Callable, str]:
    """The step fit() runs, imported rather than copied, so the benchmark measures fit itself."""
    return T.train_step, "temseg.train.train_step"


def _smoothed_dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # the authors' form: mean over images of (2 I + 1) / (|X| + |Y| + 1)
    inter = (pred * target).sum(dim=(1, 2))
    return ((2 * inter + 1) / (pred.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)).mean()


def reference_step(model, optimizer, x, y, device, history):
    """The paper-protocol step: fp32 NCHW, and loss, soft and hard dice .item() every batch."""
    x, y = x.to(device), y.to(device)
    out = model(x)
    loss = F.cross_entropy(out, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        target = y.float()
        soft = _smoothed_dice(torch.softmax(out, dim=1)[:, 1], target)
        hard = _smoothed_dice(torch.softmax(out, dim=1).argmax(dim=1).float(), target)
    history.append((loss.item(), soft.item(), hard.item()))
    return out.detach()


# ---------------------------------------------------------------------------------------------
# runners: each owns a model, an optimizer and an endless stream of batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TemsegRunner:
    def __init__(self, name, model, split, *, batch_size, seed, device, precision, step):
        self.name, self.model, self.split = name, model, split
        self.optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        self.batch_size, self.seed = batch_size, seed
        self.device, self.precision, self.step = device, precision, step
        self.batches = self._indices()

    def _indices(self) -> Iterator[torch.Tensor]:
        # fit's order (epoch_order); only full batches, so every timed step has the same work
        epoch = 0
        while True:
            epoch += 1
            order = T.epoch_order(self.seed, epoch, len(self.split))
            for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                yield order[start : start + self.batch_size]

    def one(self, x, y, acc, loss_sum):
        return self.step(
            self.model,
            self.optimizer,
            x,
            y,
            device=self.device,
            precision=self.precision,
            acc=acc,
            loss_sum=loss_sum,
        )

    def run(self, steps: int) -> float:
        self.model.train()
        acc = DiceAccumulator(self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = self.split.batch(next(self.batches))
            self.one(x, y, acc, loss_sum)
        acc.compute()  # the host reads the sums once per epoch in fit
        float(loss_sum)
        _sync(self.device)
        return time.perf_counter() - t0


class ReferenceRunner:
    def __init__(self, name, model, images, masks, *, batch_size, seed, device):
        self.name, self.model, self.device = name, model, device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        dataset = TensorDataset(torch.from_numpy(images), torch.from_numpy(masks))
        g = torch.Generator().manual_seed(seed)
        # drop_last: every timed step has the same work as temseg's
        self.loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=g
        )
        self.batches = self._batches()
        self.history: list[tuple[float, float, float]] = []

    def _batches(self):
        while True:
            yield from self.loader

    def one(self, x, y):
        return reference_step(self.model, self.optimizer, x, y, self.device, self.history)

    def run(self, steps: int) -> float:
        self.model.train()
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = next(self.batches)
            self.one(x, y)
        _sync(self.device)
        return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# correctness


def _pooled(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Pooled hard and soft dice, written out independently of temseg.metrics."""
    logits, t = logits.double(), y.double()
    hard = (logits[:, 1] > logits[:, 0]).double()
    prob = torch.softmax(logits, dim=1)[:, 1]
    h = 2 * (hard * t).sum() / (hard.sum() + t.sum())
    s = 2 * (prob * t).sum() / (prob.sum() + t.sum())
    return float(h), float(s)


def check_step(ref: ReferenceRunner, runners: list[TemsegRunner], batches, tol: dict):
    """First steps of every variant on the same batches; returns (lines, all_ok).

    Each variant and the plain step start from the same weights; step k of each sees batch k,
    so step 2 also checks that the first update was the same.
    """
    plain = []
    for x, y in batches:
        out = ref.one(x.contiguous(), y)
        plain.append((out, ref.history[-1][0], *_pooled(out, y)))
    lines, ok_all = [], True
    for r in runners:
        diff = {"loss": 0.0, "hard": 0.0, "soft": 0.0}
        flips, pixels = 0, 0
        for (x, y), (p_out, p_loss, p_hard, p_soft) in zip(batches, plain, strict=True):
            acc = DiceAccumulator(r.device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=r.device)
            r.model.train()
            out = r.one(x.clone(), y.clone(), acc, loss_sum)
            d = acc.compute()
            loss = float(loss_sum) / len(y)
            diff["loss"] = max(diff["loss"], abs(loss - p_loss) / max(1e-12, abs(p_loss)))
            diff["hard"] = max(diff["hard"], abs(d["hard_dice"] - p_hard))
            diff["soft"] = max(diff["soft"], abs(d["soft_dice"] - p_soft))
            if isinstance(out, torch.Tensor) and out.shape == p_out.shape:
                flips += int(((out[:, 1] > out[:, 0]) != (p_out[:, 1] > p_out[:, 0])).sum())
                pixels += y.numel()
        ok = all(math.isfinite(v) and v <= tol[k] for k, v in diff.items())
        ok_all &= ok
        flipped = f", argmax differs on {flips} of {pixels} pixels" if pixels else ""
        lines.append(
            f"correctness {r.name} vs plain step ({len(batches)} steps from the same initial "
            f"weights on the same batches): loss rel diff {diff['loss']:.1e} (tol "
            f"{tol['loss']:g}), soft dice diff {diff['soft']:.1e} (tol {tol['soft']:g}), hard "
            f"dice diff {diff['hard']:.1e} (tol {tol['hard']:g}){flipped}: "
            f"{'OK' if ok else 'FAIL'}"
        )
    return lines, ok_all


# ---------------------------------------------------------------------------------------------
# reporting


def spread(values: list[float]) -> tuple[float, float, float, float, float]:
    """median, first and third quartile, min, max."""
    med = statistics.median(values)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = med
    return med, q1, q3, min(values), max(values)


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(",", "-").split("-") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 2-2 or 2,2, got {text!r}"
        ) from None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:i or auto")
    p.add_argument("--blocks", type=int, default=2, help="N, residual blocks")
    p.add_argument("--pools", type=parse_ints, default=None, help="pool kernels (default 2 each)")
    p.add_argument("--dilations", type=parse_ints, default=None, help="N + 1 dilations")
    p.add_argument("--patch-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patches", type=int, default=16, help="training patches (x 8 dihedral)")
    p.add_argument("--data", default=None, help="a temseg patch store to use instead of discs")
    p.add_argument("--steps", type=int, default=10, help="steps per variant per timed round")
    p.add_argument("--rounds", type=int, default=5, help="alternating timed rounds")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="temseg's forward pass: bf16 autocast or fp32; auto (what a sweep runs by "
        "default): bf16 on CUDA and on CPUs with native bf16, else fp32. The reference is "
        "always fp32",
    )
    p.add_argument(
        "--compile", action="store_true", help="also time the temseg step with torch.compile(model)"
    )
    p.add_argument("--seed", type=int, default=752)
    args = p.parse_args(argv)
    for name in ("blocks", "patch_size", "batch_size", "patches", "steps", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        device = T.resolve_device(args.device)
        model_cfg = ModelConfig(args.blocks, args.pools or (2,) * args.blocks, args.dilations)
    except ValueError as exc:
        print(f"bench_train.py: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    # what a sweep trains with by default (temseg.config.resolve_precision)
    precision = resolve_precision(args.precision, gpus_per_trial=float(device.type == "cuda"))
    tol = TOLERANCE[precision]

    with tempfile.TemporaryDirectory(prefix="temseg-bench-") as tmp:
        if args.data:
            store = Path(args.data).absolute()
            patch_size = int(read_attrs(store)["patch_size"])
            source = f"store {store}"
        else:
            patch_size = args.patch_size
            try:
                check_input_size(patch_size, model_cfg.pools)
            except ValueError as exc:
                print(f"bench_train.py: {exc}", file=sys.stderr)
                return 2
            store = make_disc_store(
                Path(tmp) / "discs.zarr", patch_size=patch_size, n_patches=args.patches
            )
            source = "synthetic discs"
        check_input_size(patch_size, model_cfg.pools)
        split = T.Split(str(store), "train", device, augment=True)
    n_samples = len(split)
    if n_samples < 2 * args.batch_size:
        print(
            f"bench_train.py: {n_samples} augmented samples is fewer than two batches of "
            f"{args.batch_size}; give more --patches",
            file=sys.stderr,
        )
        return 2
    images, masks = dihedral_expand(split.images.cpu().numpy()[:, 0], split.masks.cpu().numpy())

    torch.manual_seed(args.seed)  # the initial weights every variant starts from
    init = ResidualUNet(model_cfg.num_blocks, model_cfg.pools, model_cfg.dilations)
    step, step_source = temseg_step_fn()

    def clone(channels_last: bool) -> torch.nn.Module:
        m = copy.deepcopy(init).to(device)
        return m.to(memory_format=torch.channels_last) if channels_last else m

    ref = ReferenceRunner(
        "reference",
        clone(False),
        images,
        masks,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
    )
    common = dict(
        batch_size=args.batch_size, seed=args.seed, device=device, precision=precision, step=step
    )
    runners = [TemsegRunner("temseg", clone(True), split, **common)]
    if args.compile:
        runners.append(TemsegRunner("temseg+compile", torch.compile(clone(True)), split, **common))

    px = patch_size * patch_size
    print(
        f"machine: {machine_name(device)}; {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}, python {platform.python_version()}"
    )
    print(
        f"network: {model_cfg.label} ({count_parameters(init)} "
        f"parameters, RF {model_cfg.rf_px} px); data: {source}, {len(split.images)} patches of "
        f"{patch_size} px x 8 dihedral = {n_samples} samples; batch {args.batch_size}; "
        f"{args.steps} steps x {args.rounds} alternating rounds after {args.warmup} warmup steps"
    )
    forward = "bf16 autocast" if precision == "bf16" else "fp32"
    print(f"temseg step: {step_source}; forward {forward}, channels-last")
    if device.type == "cpu" and precision == "bf16" and native_cpu_bf16() is False:
        print(
            "note: this CPU has no native bf16 convolutions (oneDNN bf16 unsupported, "
            f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}): bf16 autocast "
            "falls back to slow_conv2d here; compare --precision fp32"
        )
    print(
        "reference: DataLoader over in-memory float32 arrays, fp32 NCHW, loss + soft dice + "
        "hard dice .item() every batch, softmax recomputed for each dice"
    )

    # correctness first: the first two steps of every variant, same weights, same batches
    order = T.epoch_order(args.seed, 0, n_samples)
    check_batches = [
        split.batch(order[i * args.batch_size : (i + 1) * args.batch_size]) for i in range(2)
    ]
    t0 = time.perf_counter()
    lines, ok = check_step(ref, runners, check_batches, tol)
    for line in lines:
        print(line, flush=True)
    if args.compile:
        print(f"(correctness steps, including compilation, took {time.perf_counter() - t0:.0f} s)")

    everyone = [ref, *runners]
    for r in everyone:
        if args.warmup:
            r.run(args.warmup)
    times: dict[str, list[float]] = {r.name: [] for r in everyone}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(args.rounds):
        turn = everyone[i % len(everyone) :] + everyone[: i % len(everyone)]
        cells = []
        for r in turn:
            gc.collect()
            times[r.name].append(r.run(args.steps))
            cells.append(f"{r.name} {times[r.name][-1]:.2f} s")
        print(
            f"round {i + 1}/{args.rounds} ({args.steps} steps each): " + ", ".join(cells),
            flush=True,
        )

    print()
    print(f"{'variant':16s} {'s/step (median)':>16s} {'patches/s':>10s} {'megapixels/s':>13s}")
    for r in everyone:
        total = sum(times[r.name])
        n = args.steps * args.rounds * args.batch_size
        med = statistics.median(times[r.name]) / args.steps
        print(f"{r.name:16s} {med:16.3f} {n / total:10.2f} {n * px / total / 1e6:13.3f}")
    print()
    results = {}
    for r in runners:
        ratios = [a / b for a, b in zip(times["reference"], times[r.name], strict=True)]
        med, q1, q3, lo, hi = spread(ratios)
        results[r.name] = med
        print(
            f"ratio {r.name} / reference (throughput, per round): median {med:.2f}x, "
            f"IQR {q1:.2f}-{q3:.2f}, min-max {lo:.2f}-{hi:.2f} over {len(ratios)} rounds"
        )
    if args.compile:
        ratios = [a / b for a, b in zip(times["temseg"], times["temseg+compile"], strict=True)]
        med, q1, q3, lo, hi = spread(ratios)
        verdict = "wins" if lo > 1.0 else "loses" if hi < 1.0 else "no clear difference"
        print(
            f"ratio temseg+compile / temseg: median {med:.2f}x, IQR {q1:.2f}-{q3:.2f}, "
            f"min-max {lo:.2f}-{hi:.2f}: compile {verdict} on {device.type}"
        )
    key = (device.type, model_cfg.num_blocks, patch_size, args.batch_size, precision)
    target = TARGETS.get(key)
    if target is not None:
        print(
            f"target: temseg >= {target}x the reference on {device.type} "
            f"(N={model_cfg.num_blocks}, {patch_size} px, batch {args.batch_size}, {precision}): "
            f"{'met' if results['temseg'] >= target else 'NOT met'} "
            f"(median {results['temseg']:.2f}x)"
        )
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"peak CUDA memory allocated (all variants): {peak:.0f} MiB")
    if not ok:
        print(
            "correctness check FAILED: the timings above compare steps that disagree",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
