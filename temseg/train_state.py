"""The resumable state of :func:`temseg.train.fit`: ``last.pt``, written after every epoch.

It holds the resolved config, the model and optimizer state and where training stands
(:class:`Progress`); :func:`resume` refuses a state of another format or of a config that
trains something else (resource keys such as the device may differ).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from temseg.config import RESOURCE_KEYS
from temseg.model import ResidualUNet

STATE_FORMAT = "temseg-train-state/1"


@dataclass
class Progress:
    """Where a fit stands: the per-epoch history, the best validation epoch, seconds trained."""

    history: dict[str, list[float]]
    best_epoch: int = 0
    best_dice: float = -math.inf
    start_epoch: int = 1
    elapsed: float = 0.0


def _trained(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that decides what is trained (not where or on what device)."""
    return {k: v for k, v in config.items() if k not in RESOURCE_KEYS}


def save_progress(
    last: Path,
    epoch: int,
    progress: Progress,
    model: ResidualUNet,
    optimizer: torch.optim.Optimizer,
    resolved: dict[str, Any],
) -> None:
    """Write the resumable state after ``epoch`` to ``last`` (atomically: a temporary file,
    then a rename)."""
    state = dict(
        config=resolved,
        epoch=epoch,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        history=progress.history,
        best_epoch=progress.best_epoch,
        best_val_hard_dice=progress.best_dice,
        seconds=progress.elapsed,
    )
    tmp = last.with_name(last.name + ".tmp")
    torch.save({"format": STATE_FORMAT, **state}, tmp)
    os.replace(tmp, last)


def resume(
    last: Path,
    progress: Progress,
    model: ResidualUNet,
    optimizer: torch.optim.Optimizer,
    resolved: dict[str, Any],
    device: torch.device,
    timed_metrics: Sequence[str],
) -> int:
    """Load ``last`` into the model, the optimizer and ``progress``; return its epoch.

    ``timed_metrics``: history keys that older states may lack (they start empty).
    """
    state = torch.load(last, map_location=device, weights_only=True)
    if state.get("format") != STATE_FORMAT or _trained(state["config"]) != _trained(resolved):
        raise ValueError(f"{last}: training state of another config; remove it to start over")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    progress.history = {k: [] for k in timed_metrics} | state["history"]
    progress.best_epoch, progress.best_dice = state["best_epoch"], state["best_val_hard_dice"]
    progress.start_epoch, progress.elapsed = state["epoch"] + 1, state["seconds"]
    return state["epoch"]
