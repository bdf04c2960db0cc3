#!/usr/bin/env python
"""GPU packing: trials per hour at 1, 1/2 and 1/4 GPU per trial through the real Ray Tune grid.

The paper's study is ~150 trainings per dataset of a network small enough (N = 2: 8074
parameters, 4-16 channels) that one training leaves most of a modern GPU idle. Ray Tune can
place several trials on one GPU (``gpus_per_trial`` = 0.5, 0.25); this script measures what
that buys. For each fraction it runs the same set of trials of the N = 2 grid at 512 px
(:func:`temseg.sweep.space.build_trials` -> :func:`temseg.sweep.runtime.run_trials` -> the real trainable,
``fit``, MLflow logging and Ray checkpoints included) and reports trials per hour (trials /
wall seconds of the whole grid, Ray scheduling and process start included) and the peak GPU
memory per trial, sampled with ``nvidia-smi`` (per process: CUDA context + PyTorch cache,
i.e. what packing has to fit; where the container hides per-process numbers, the peak of the
GPU's used memory above idle divided by the trials running at once).

Each fraction gets its own MLflow experiment, so no trial is skipped as "already finished".
A short untimed trial first warms Ray's worker start and the CUDA kernels.

It needs a CUDA GPU: without one it says so and exits with status 2, having run nothing.

Examples
--------
::

    python scripts/bench_packing.py                      # 8 trials x 1.0 / 0.5 / 0.25 GPU
    python scripts/bench_packing.py --epochs 20 --trials 16 --fractions 1,0.25
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

EXIT_NO_GPU = 2
SCRIPTS = Path(__file__).resolve().parent
TARGET_QUARTER = 2.5  # issue: 0.25 GPU per trial >= 2.5x the trials per hour of 1.0


# ---------------------------------------------------------------------------------------------
# GPU memory, sampled from outside the trials


def parse_compute_apps(text: str) -> dict[int, float]:
    """``nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits``
    output -> {pid: MiB}; rows whose memory is not reported (``[N/A]``) are left out.

    >>> parse_compute_apps("1234, 1520\\n77, [N/A]\\n")
    {1234: 1520.0}
    """
    out: dict[int, float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2:
            continue
        try:
            out[int(parts[0])] = float(parts[1])
        except ValueError:
            continue
    return out


def parse_used_total(text: str) -> float | None:
    """``nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits`` -> MiB, all GPUs."""
    values = []
    for line in text.splitlines():
        try:
            values.append(float(line.strip()))
        except ValueError:
            continue
    return sum(values) if values else None


class GpuMemoryPoller(threading.Thread):
    """Samples per-process and total GPU memory every ``interval`` seconds (nvidia-smi)."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.available = shutil.which("nvidia-smi") is not None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self.reset()

    @staticmethod
    def _query(args: list[str]) -> str:
        try:
            res = subprocess.run(
                ["nvidia-smi", *args, "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return res.stdout if res.returncode == 0 else ""

    def sample(self) -> tuple[dict[int, float], float | None]:
        apps = parse_compute_apps(self._query(["--query-compute-apps=pid,used_memory"]))
        total = parse_used_total(self._query(["--query-gpu=memory.used"]))
        return apps, total

    def reset(self) -> None:
        with self._lock:
            self.per_pid: dict[int, float] = {}
            self.peak_total = 0.0
            self.max_processes = 0

    def run(self) -> None:
        while self.available and not self._stop_event.is_set():
            apps, total = self.sample()
            with self._lock:
                for pid, mib in apps.items():
                    self.per_pid[pid] = max(self.per_pid.get(pid, 0.0), mib)
                self.max_processes = max(self.max_processes, len(apps))
                if total is not None:
                    self.peak_total = max(self.peak_total, total)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()

    def snapshot(self, own_pid: int) -> dict[str, Any]:
        with self._lock:
            trial_pids = {p: m for p, m in self.per_pid.items() if p != own_pid}
            return {
                "per_trial_mib": max(trial_pids.values()) if trial_pids else None,
                "processes": len(trial_pids),
                "max_processes": self.max_processes,
                "peak_total_mib": self.peak_total or None,
            }


# ---------------------------------------------------------------------------------------------
# the grid


def plan_trials(
    store: str,
    *,
    fraction: float,
    n_trials: int,
    blocks: int,
    seeds: tuple[int, ...],
    epochs: int,
    batch_size: int,
    cpus_per_trial: float,
    tracking_uri: str,
    experiment_id: str,
) -> list[dict[str, Any]]:
    """The first ``n_trials`` trials of the N = ``blocks`` grid on ``store`` at ``fraction``.

    The grid is the sweep's own (every pool sequence over kernels 2, 4, 8 with RF below the
    patch, dilations 1, times ``seeds``), built by :func:`temseg.sweep.space.build_trials`.
    """
    from temseg.sweep import datasets, profile, space

    cfg = profile.SweepConfig(
        profile="bench-packing",
        data=(store,),
        blocks=(blocks,),
        dilation_variants=False,
        seeds=seeds,
        epochs=epochs,
        lr=1e-4,
        batch_size=batch_size,
        augment=True,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=fraction,
        max_failures=0,
    )
    datasets = datasets.open_datasets([store])
    trials = space.build_trials(
        cfg, datasets, tracking_uri=tracking_uri, experiment_id=experiment_id
    )
    if len(trials) < n_trials:
        raise ValueError(
            f"the N={blocks} grid at {datasets[0].patch_size} px with {len(seeds)} seed(s) has "
            f"{len(trials)} trials, fewer than --trials {n_trials}; give more --seeds"
        )
    trials = trials[:n_trials]
    for t in trials:
        # The trial's CUDA memory cap is its GPU share. Set here explicitly: the trainable
        # only fills gpu_fraction when the key is absent, and build_trials writes 0.0.
        t["train"]["gpu_fraction"] = float(fraction)
        t["train"]["device"] = "cuda"
    return trials


def expected_concurrency(fraction: float, cpus: float, cpus_per_trial: float) -> int:
    by_gpu = math.floor(1 / fraction + 1e-9)
    by_cpu = math.floor(cpus / cpus_per_trial + 1e-9)
    return max(1, min(by_gpu, by_cpu))


def parse_fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected fractions like 1,0.5,0.25, got {text!r}"
        ) from None
    bad = [v for v in values if not 0 < v <= 1]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"GPU fractions must lie in (0, 1], got {text!r}")
    return values


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 752,2245, got {text!r}") from None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Trials per hour and peak GPU memory per trial at 1.0 / 0.5 / 0.25 GPU per "
        "trial, through temseg's real Ray Tune grid (N=2, 512 px). Needs a CUDA GPU: without "
        f"one it exits with status {EXIT_NO_GPU}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--fractions",
        type=parse_fractions,
        default=(1.0, 0.5, 0.25),
        help="GPU per trial, comma-separated; the first is the baseline",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=8,
        help="trials per fraction (a multiple of 4 keeps every wave full)",
    )
    p.add_argument("--blocks", type=int, default=2, help="N of the grid")
    p.add_argument("--seeds", type=parse_seeds, default=(752,), help="seeds of the grid")
    p.add_argument("--patch-size", type=int, default=512)
    p.add_argument("--patches", type=int, default=32, help="training patches (x 8 dihedral)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per trial")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cpus-per-trial", type=float, default=2.0)
    p.add_argument("--data", default=None, help="a temseg patch store instead of synthetic discs")
    p.add_argument(
        "--workdir",
        default=None,
        help="keep the store, MLflow database and Ray results here (default: a "
        "temporary folder, removed at the end)",
    )
    p.add_argument("--poll", type=float, default=0.5, help="nvidia-smi sampling interval, s")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warmup trial")
    args = p.parse_args(argv)
    for name in ("trials", "blocks", "patch_size", "patches", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.cpus_per_trial <= 0 or args.poll <= 0:
        p.error("--cpus-per-trial and --poll must be > 0")
    return args


def no_gpu_message() -> str | None:
    """Why this machine cannot run the benchmark, or None when it can."""
    import torch

    if torch.cuda.is_available():
        return None
    build = torch.version.cuda
    why = (
        f"this torch {torch.__version__} is a CPU-only build"
        if build is None
        else f"torch {torch.__version__} (CUDA {build}) sees no CUDA device"
    )
    return (
        f"bench_packing.py needs a CUDA GPU: {why}. It measures trials per hour with 1.0, 0.5 "
        "and 0.25 GPU per trial, which means nothing without a GPU; nothing was run. "
        "Run it on a GPU node with a CUDA build of torch."
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    why = no_gpu_message()
    if why:
        print(why, file=sys.stderr)
        return EXIT_NO_GPU

    import ray
    import torch

    from temseg import tracking
    from temseg.sweep import runtime as ttune

    sys.path.insert(0, str(SCRIPTS))
    from bench_train import make_disc_store

    own = args.workdir is None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="temseg-packing-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    poller = GpuMemoryPoller(args.poll)
    try:
        if args.data:
            store = str(Path(args.data).absolute())
            source = f"store {store}"
        else:
            n_val = max(1, args.patches // 7)
            store = str(
                make_disc_store(
                    work / "discs.zarr",
                    patch_size=args.patch_size,
                    n_patches=args.patches,
                    n_val=n_val,
                    n_test=n_val,
                )
            )
            source = f"synthetic discs, {args.patches} train / {n_val} val / {n_val} test patches"
        uri = f"sqlite:///{work / 'mlflow.db'}"
        tracking.check_tracking(uri)
        try:  # the plan first, so a grid too small fails before Ray starts
            plan = plan_trials(  # planning only: build_trials writes nothing to MLflow
                store,
                fraction=1.0,
                n_trials=args.trials,
                blocks=args.blocks,
                seeds=args.seeds,
                epochs=args.epochs,
                batch_size=args.batch_size,
                cpus_per_trial=args.cpus_per_trial,
                tracking_uri=uri,
                experiment_id="plan",
            )
        except ValueError as exc:
            print(f"bench_packing.py: {exc}", file=sys.stderr)
            return 1
        first = plan[0]["train"]
        pools = sorted({"-".join(map(str, t["train"]["pools"])) for t in plan})
        storage = str(work / "ray_results")
        cluster = ttune.init_ray(None, num_cpus=os.cpu_count())
        gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 0.0)
        if gpus < 1:
            print(
                f"bench_packing.py needs a CUDA GPU in the Ray runtime: torch sees "
                f"{torch.cuda.device_count()} but Ray counts {gpus:g} GPUs (check "
                "CUDA_VISIBLE_DEVICES); nothing was run.",
                file=sys.stderr,
            )
            return EXIT_NO_GPU
        ttune.check_resources(args.cpus_per_trial, max(args.fractions), cluster)
        props = torch.cuda.get_device_properties(0)
        print(
            f"machine: {props.name} ({props.total_memory / 2**20:.0f} MiB) x {gpus:g} in Ray, "
            f"{cpus:g} CPUs; torch {torch.__version__}, ray {ray.__version__}"
        )
        if not poller.available:
            print("nvidia-smi not found: peak GPU memory per trial is not measured")
        idle = poller.sample()[1]
        poller.start()
        stamp = time.strftime("%Y%m%d-%H%M%S")

        def grid(fraction: float, n: int, epochs: int, label: str) -> list[dict[str, Any]]:
            exp = tracking.ensure_experiment(uri, f"bench-packing-{label}-{stamp}")
            return plan_trials(
                store,
                fraction=fraction,
                n_trials=n,
                blocks=args.blocks,
                seeds=args.seeds,
                epochs=epochs,
                batch_size=args.batch_size,
                cpus_per_trial=args.cpus_per_trial,
                tracking_uri=uri,
                experiment_id=exp,
            )

        if not args.no_warmup:
            t0 = time.perf_counter()
            warmup = ttune.TuneRun(
                f"warmup-{stamp}", storage, args.cpus_per_trial, gpus_per_trial=1.0, max_failures=0
            )
            ttune.run_trials(grid(1.0, 1, 1, "warmup"), warmup)
            print(f"warmup trial (1 epoch, untimed): {time.perf_counter() - t0:.0f} s")

        print(
            f"grid: N={args.blocks} at {args.patch_size} px, {args.trials} trials per fraction "
            f"(pools {', '.join(pools)}; seeds {','.join(map(str, args.seeds))}), "
            f"{args.epochs} epochs, batch {args.batch_size}, {first['precision']}; data: "
            f"{source}; {args.cpus_per_trial:g} CPUs per trial",
            flush=True,
        )
        rows = []
        for fraction in args.fractions:
            trials = grid(fraction, args.trials, args.epochs, f"{fraction:g}gpu")
            conc = expected_concurrency(fraction, cpus, args.cpus_per_trial)
            poller.reset()
            t0 = time.perf_counter()
            run = ttune.TuneRun(
                f"packing-{fraction:g}gpu-{stamp}",
                storage,
                args.cpus_per_trial,
                gpus_per_trial=fraction,
                max_failures=0,
            )
            results = ttune.run_trials(trials, run)
            wall = time.perf_counter() - t0
            mem = poller.snapshot(os.getpid())
            failed = [r for r in results if r.error is not None]
            skipped = [r for r in results if r.metrics.get("skipped")]
            if failed or skipped:
                for r in failed:
                    print(f"  FAILED {r.trial.run_name}: {r.error}", file=sys.stderr)
                if skipped:
                    print(
                        f"  {len(skipped)} trials were skipped as already finished", file=sys.stderr
                    )
                return 1
            per_trial = mem["per_trial_mib"]
            if per_trial is None and mem["peak_total_mib"] and idle is not None:
                per_trial = (mem["peak_total_mib"] - idle) / conc  # per-process hidden
            seconds = [r.metrics.get("seconds", float("nan")) for r in results]
            rows.append(
                {
                    "fraction": fraction,
                    "concurrent": conc,
                    "seen": mem["max_processes"],
                    "trials": len(results),
                    "wall": wall,
                    "per_hour": len(results) / wall * 3600,
                    "train_s": sum(seconds) / len(seconds),
                    "per_trial_mib": per_trial,
                    "peak_total_mib": mem["peak_total_mib"],
                    "cap_mib": fraction * props.total_memory / 2**20,
                }
            )
            print(
                f"  {fraction:g} GPU per trial: {len(results)} trials in {wall:.0f} s", flush=True
            )
    finally:
        poller.stop()
        try:
            ttune.shutdown_ray()
        except Exception:  # noqa: BLE001 - ray may never have started
            pass
        if own:
            shutil.rmtree(work, ignore_errors=True)

    base = rows[0]["per_hour"]
    print()
    print(
        f"{'GPU/trial':>9s} {'concurrent':>10s} {'trials':>6s} {'wall s':>7s} "
        f"{'trials/hour':>11s} {'vs first':>8s} {'train s/trial':>13s} "
        f"{'peak MiB/trial':>14s} {'cap MiB':>8s} {'peak MiB GPU':>12s}"
    )
    for r in rows:
        mib = "n/a" if r["per_trial_mib"] is None else f"{r['per_trial_mib']:.0f}"
        tot = "n/a" if r["peak_total_mib"] is None else f"{r['peak_total_mib']:.0f}"
        conc = f"{r['concurrent']}" + (f" ({r['seen']} seen)" if r["seen"] else "")
        print(
            f"{r['fraction']:9.2f} {conc:>10s} {r['trials']:6d} {r['wall']:7.0f} "
            f"{r['per_hour']:11.1f} {r['per_hour'] / base:7.2f}x {r['train_s']:13.1f} "
            f"{mib:>14s} {r['cap_mib']:8.0f} {tot:>12s}"
        )
    print(
        "(trials/hour: trials / wall seconds of the whole grid; train s/trial: fit's own "
        "time per trial; peak MiB/trial: nvidia-smi, CUDA context included; cap: the trial's "
        "per-process CUDA memory cap)"
    )
    for r in rows[1:]:
        line = (
            f"ratio trials/hour at {r['fraction']:g} vs {rows[0]['fraction']:g} GPU per trial: "
            f"{r['per_hour'] / base:.2f}x"
        )
        if r["fraction"] == 0.25 and rows[0]["fraction"] == 1.0:
            met = r["per_hour"] / base >= TARGET_QUARTER
            line += f" (target >= {TARGET_QUARTER}x: {'met' if met else 'NOT met'})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
