"""The study's plan: which sweep profile fits this machine, and how long its grid will take.

Profile: ``--profile`` when given; else the paper's grid (``paper``) when the study is given
a Ray cluster (``--address``), GPUs per trial (``--gpus-per-trial``) or finds a CUDA GPU here;
else the laptop-scale grid (``demo``) on this machine's CPUs.

Time: every trial's training and evaluation cost in floating-point operations
(:func:`temseg.receptive_field.forward_flops`, backward = 2 x forward; the 8 dihedral copies
when augmenting) divided by a CPU throughput measured on the demo profile, plus each trial's
start, over the trials that run at once, plus the sweep's start-up (Ray, MLflow, report).
GPUs are not calibrated: the estimate then gives the CPU figure and says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from temseg.receptive_field import forward_flops

LAPTOP_PROFILE = "demo"
GPU_PROFILE = "paper"
# Effective GFLOP/s of one 1-CPU trial, fp32, from the demo profile on this project's 2-core
# AMD EPYC: its 24 trials cost 9588 GFLOP under the model below (24 / 16 / 32 patches of
# 192 px per level) and ran 2 at a time in 11 min 59 s with data, report and registry
# (README "What the demo shows"): 9588 / ((719 - 60 - 12 x 20) s x 2) = 11.4.
CPU_GFLOPS_PER_TRIAL = 11.4
STARTUP_S = 60.0  # Ray runtime, MLflow store, report and registry of a sweep
TRIAL_S = 20.0  # each trial's own start (worker process, torch, MLflow run, checkpoints)
N_DIHEDRAL = 8


def choose_profile(
    explicit: str | None, *, address: str | None, gpus_per_trial: float | None
) -> tuple[str, str]:
    """(profile, why) for this machine; see the module docstring."""
    if explicit:
        return explicit, "given by --profile"
    if address:
        return GPU_PROFILE, f"a Ray cluster at --address {address}: the paper's grid"
    if gpus_per_trial:
        return GPU_PROFILE, f"--gpus-per-trial {gpus_per_trial:g}: the paper's grid"
    gpus = _local_gpus()
    if gpus:
        return GPU_PROFILE, f"{gpus} CUDA GPU(s) here: the paper's grid"
    return LAPTOP_PROFILE, f"CPU only ({os.cpu_count()} cores, no GPU or cluster): the laptop grid"


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def trial_gflop(train: Any, patches: dict[str, int], patch_size: int) -> float:
    """Training + validation + test GFLOP of one trial (a :class:`temseg.config.TrainConfig`)
    on a store with ``patches`` per split."""
    from temseg.receptive_field import Architecture

    arch = Architecture(train.num_blocks, train.pools, train.dilations)
    fwd = forward_flops(arch, patch_size) / 1e9
    copies = N_DIHEDRAL if train.augment else 1
    val_copies = copies if train.val_dihedral else 1
    per_epoch = 3 * fwd * patches["train"] * copies + fwd * patches["val"] * val_copies
    return train.epochs * per_epoch + fwd * patches["test"] * copies


def estimate_seconds(
    trials: Sequence[Any], patches: dict[str, int], patch_size: int, *, concurrent: int
) -> float:
    """Wall seconds of a grid of ``trials`` (:class:`temseg.trial.Trial`) run ``concurrent``
    at a time on CPUs."""
    total = sum(trial_gflop(t.train, patches, patch_size) for t in trials)
    at_once = max(1, min(concurrent, len(trials)))
    return STARTUP_S + (len(trials) * TRIAL_S + total / CPU_GFLOPS_PER_TRIAL) / at_once


def planned_patches(
    shapes: Sequence[tuple[int, int, int]], patch_size: int, split: Sequence[float]
) -> dict[str, int]:
    """Patches per split before a store exists: every whole P x P tile of every frame (the
    min-particle rule may drop some), images split by the store's fractions."""
    per_image = [f * (h // patch_size) * (w // patch_size) for f, h, w in shapes]
    total = sum(per_image)
    n_train = round(total * split[0])
    n_val = round(total * split[1])
    return {"train": n_train, "val": n_val, "test": max(0, total - n_train - n_val)}


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h`` or ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
