"""Dice: exact values, forms, the empty-mask case."""

import numpy as np
import pytest
import torch

from temseg.metrics import (
    DiceAccumulator,
    dice_masks,
    dice_per_image,
    dice_pooled,
    dice_smoothed,
)


def logits_for(mask):
    """2-class logits whose argmax is ``mask`` and whose softmax is 0.9 / 0.1."""
    mask = torch.as_tensor(mask, dtype=torch.float32)
    margin = float(np.log(9.0))  # softmax([0, log 9]) = [0.1, 0.9]
    return torch.stack([torch.zeros_like(mask), (2 * mask - 1) * margin], dim=-3)


def test_two_thirds():
    pred = logits_for([[[1, 1, 1, 1]]])
    target = torch.tensor([[[1, 1, 0, 0]]])
    assert dice_pooled(pred, target).item() == pytest.approx(2 / 3)
    assert dice_masks(np.array([1, 1, 1, 1]), np.array([1, 1, 0, 0])) == pytest.approx(2 / 3)


def test_soft_dice_uses_probabilities():
    pred = logits_for([[[1, 1, 1, 1]]])  # p1 = 0.9 everywhere
    target = torch.tensor([[[1, 1, 0, 0]]])
    # 2 * (0.9 * 2) / (3.6 + 2)
    assert dice_pooled(pred, target, soft=True).item() == pytest.approx(3.6 / 5.6, rel=1e-6)


def test_per_image_pooled_and_smoothed_differ_as_defined():
    pred = logits_for([[[1, 1, 0, 0]], [[1, 0, 0, 0]]])
    target = torch.tensor([[[1, 1, 0, 0]], [[0, 1, 0, 0]]])
    assert dice_per_image(pred, target).tolist() == pytest.approx([1.0, 0.0])
    assert dice_pooled(pred, target).item() == pytest.approx(2 * 2 / (3 + 3))
    # authors: mean of (2I+1)/(|X|+|Y|+1) = ((4+1)/(4+1) + (0+1)/(2+1)) / 2
    assert dice_smoothed(pred, target).item() == pytest.approx((1 + 1 / 3) / 2)


def test_empty_masks():
    empty = torch.zeros(1, 1, 4, dtype=torch.long)
    assert dice_pooled(logits_for(empty.float()), empty).item() == 1.0
    assert dice_per_image(logits_for(empty.float()), empty).tolist() == [1.0]
    assert dice_smoothed(logits_for(empty.float()), empty).item() == 1.0
    assert dice_masks(np.zeros(4), np.zeros(4)) == 1.0
    assert dice_masks(np.ones(4), np.zeros(4)) == 0.0


def test_accumulator_equals_pooled_over_all_batches():
    torch.manual_seed(0)
    logits = torch.randn(6, 2, 8, 8)
    target = (torch.rand(6, 8, 8) > 0.5).long()
    acc = DiceAccumulator()
    for i in range(0, 6, 2):
        acc.update(logits[i : i + 2], target[i : i + 2])
    got = acc.compute()
    assert got["hard_dice"] == pytest.approx(dice_pooled(logits, target).item(), abs=1e-6)
    assert got["soft_dice"] == pytest.approx(
        dice_pooled(logits, target, soft=True).item(), abs=1e-6
    )


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        dice_masks(np.zeros(3), np.zeros(4))
