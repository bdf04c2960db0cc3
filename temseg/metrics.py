"""Dice scores on the particle class (label 1), for torch tensors and numpy arrays.

Dice D = 2 |X and Y| / (|X| + |Y|) (SPEC.md section 5), X the prediction, Y the label.

Forms, named so a number always says which it is:

- **hard** dice uses the argmax mask of the 2-class logits; **soft** dice uses the class-1
  probability in place of the mask.
- **pooled** sums intersection and sizes over every pixel of every image first (one number
  for a whole split). temseg logs this form everywhere (``*_hard_dice`` in MLflow, reports).
- **per-image** gives one dice per image.
- **smoothed per-image** is the authors' form, (2 I + 1) / (|X| + |Y| + 1) averaged over
  images (their ``compute_dice``/``compute_hard_dice`` with smooth = 1).

Empty masks: when prediction and label are both empty, dice is defined as 1 (perfect
agreement on "no particle"); the smoothed form gives 1 there by construction. When only one
is empty, dice is 0.

For training, :class:`DiceAccumulator` keeps the three sums on the device, so an epoch's
dice costs no host synchronisation per batch.
"""

from __future__ import annotations

import numpy as np
import torch


def _ratio(inter: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    # 2I/(|X|+|Y|), with 0/0 (both empty) defined as 1
    return torch.where(total > 0, 2 * inter / total.clamp_min(1e-12), torch.ones_like(total))


def dice_terms(
    logits: torch.Tensor, target: torch.Tensor, *, soft: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image intersection and |X| + |Y| for logits (B, 2, H, W) and labels (B, H, W)."""
    if soft:
        pred = torch.softmax(logits.float(), dim=1)[:, 1]
    else:
        pred = (logits[:, 1] > logits[:, 0]).float()  # argmax over 2 classes
    tgt = target.float()
    inter = (pred * tgt).sum(dim=(-2, -1))
    total = pred.sum(dim=(-2, -1)) + tgt.sum(dim=(-2, -1))
    return inter, total


def dice_per_image(
    logits: torch.Tensor, target: torch.Tensor, *, soft: bool = False
) -> torch.Tensor:
    """Dice per image, shape (B,)."""
    inter, total = dice_terms(logits, target, soft=soft)
    return _ratio(inter, total)


def dice_pooled(logits: torch.Tensor, target: torch.Tensor, *, soft: bool = False) -> torch.Tensor:
    """One dice over all pixels of the batch (a 0-d tensor)."""
    inter, total = dice_terms(logits, target, soft=soft)
    return _ratio(inter.sum(), total.sum())


def dice_smoothed(
    logits: torch.Tensor, target: torch.Tensor, *, soft: bool = False, smooth: float = 1.0
) -> torch.Tensor:
    """The authors' form: mean over images of (2 I + smooth) / (|X| + |Y| + smooth)."""
    inter, total = dice_terms(logits, target, soft=soft)
    return ((2 * inter + smooth) / (total + smooth)).mean()


def dice_masks(pred: np.ndarray, target: np.ndarray) -> float:
    """Pooled hard dice of two binary numpy masks (any shape); both empty gives 1.0.

    >>> dice_masks(np.array([1, 1, 1, 1]), np.array([1, 1, 0, 0]))
    0.6666666666666666
    """
    pred = np.asarray(pred).astype(bool)
    target = np.asarray(target).astype(bool)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} != label shape {target.shape}")
    total = int(pred.sum()) + int(target.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, target).sum()) / total


class DiceAccumulator:
    """Pooled hard and soft dice over many batches, summed on the device (no host sync)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        prob = torch.softmax(logits.float(), dim=1)[:, 1]
        hard = (logits[:, 1] > logits[:, 0]).float()
        tgt = target.float()
        tsum = tgt.sum()
        self.sums += torch.stack(
            [(hard * tgt).sum(), hard.sum() + tsum, (prob * tgt).sum(), prob.sum() + tsum]
        ).double()

    def compute(self) -> dict[str, float]:
        s = self.sums.cpu()
        return {
            "hard_dice": float(_ratio(s[0], s[1])),
            "soft_dice": float(_ratio(s[2], s[3])),
        }
