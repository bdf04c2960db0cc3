"""The effective receptive field (ERF) of a trained network: where its decisions look.

Luo, Li, Urtasun & Zemel (2016), "Understanding the effective receptive field in deep
convolutional neural networks" (NeurIPS): the input pixels that can influence one output
pixel (the theoretical RF, :mod:`temseg.receptive_field`) do not influence it equally; the
gradient of the output with respect to the input concentrates near the centre. Sytwu,
Groschner & Scott (2022, Supplementary Fig. S9) show this for their UNets: the skip
connections keep the ERF close to the decision pixel even as the theoretical RF grows.

Measure (one number pair per trained network):

1. For each of up to ``max_patches`` test patches (evenly spaced through the split, so the
   choice is deterministic), the gradient of the particle-class logit at the centre output
   pixel ``(P // 2, P // 2)`` with respect to the input patch; the network in eval mode
   (BatchNorm with its running statistics, so patches do not interact) and fp32.
2. The mean over patches of the absolute gradient: an (P, P) map of influence.
3. The ERF radius holding a fraction q of the map's mass: the smallest r such that the disc
   of radius r centred on the output pixel holds at least q of the total, r taken among the
   pixel distances ``sqrt(dy^2 + dx^2)`` (so it is the distance of an actual pixel). temseg
   reports q = 0.5 and 0.95; ``2 * erf95_px`` is the ERF diameter, comparable with the RF.

The disc can only hold mass inside the network's exact reach (:func:`temseg.receptive_field.
reach_interval`: the gradient is exactly zero outside it), so r_q is at most the distance to
the reach's farthest corner. Pure torch: no Ray, no MLflow (``temseg.train`` calls it on the
best checkpoint and reports the numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

ERF_FRACTIONS = (0.5, 0.95)
MAX_PATCHES = 16
PARTICLE_CLASS = 1


def patch_indices(n: int, max_patches: int = MAX_PATCHES) -> list[int]:
    """Up to ``max_patches`` indices evenly spaced over ``range(n)`` (deterministic).

    >>> patch_indices(40, 4), patch_indices(3, 16)
    ([0, 13, 26, 39], [0, 1, 2])
    """
    if n <= max_patches:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, max_patches)})


def gradient_map(
    model: nn.Module,
    images: torch.Tensor,
    *,
    class_index: int = PARTICLE_CLASS,
    batch_size: int = 8,
) -> np.ndarray:
    """Mean over patches of |d logit[class_index, centre] / d input|, as a (P, P) float64 map.

    ``images`` is (n, 1, P, P). The model is put in eval mode and run in fp32 (its training
    mode is restored afterwards); the sum of the centre logits over a batch has, in eval
    mode, each patch's own gradient in that patch's slot.
    """
    if images.ndim != 4 or images.shape[1] != 1 or len(images) == 0:
        raise ValueError(f"images must be (n >= 1, 1, P, P), got {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    p_y, p_x = images.shape[-2] // 2, images.shape[-1] // 2
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    param = next(model.parameters(), None)
    device = param.device if param is not None else images.device
    dtype = param.dtype if param is not None else torch.float32
    try:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device=device, dtype=dtype)
            x = x.detach().clone().requires_grad_(True)
            logits = model(x)  # (B, C, P, P)
            (grad,) = torch.autograd.grad(logits[:, class_index, p_y, p_x].sum(), x)
            total += grad.abs().sum(dim=(0, 1)).double().cpu()
    finally:
        model.train(was_training)
    return (total / len(images)).numpy()


def erf_radii(
    grad_map: np.ndarray,
    fractions: Sequence[float] = ERF_FRACTIONS,
    centre: tuple[int, int] | None = None,
) -> list[float]:
    """Radii (px) of the smallest discs about ``centre`` holding each fraction of the mass.

    Parameters
    ----------
    grad_map
        (H, W) non-negative influence map (e.g. :func:`gradient_map`).
    fractions
        Fractions q in (0, 1].
    centre
        The output pixel (row, col); default ``(H // 2, W // 2)``.

    Notes
    -----
    r_q = min { d_k : sum_{j : d_j <= d_k} m_j >= q * sum_j m_j }, d_j the distance of pixel j
    from the centre; pixels at equal distance enter together. NaN for a map with no mass.

    Examples
    --------
    A 3x3 kernel with 0.4 at the centre, 0.1 on each edge neighbour and 0.05 on each corner:
    the centre alone holds 40%, the cross 80%, all nine 100%.

    >>> m = np.zeros((5, 5)); m[1:4, 1:4] = [[.05, .1, .05], [.1, .4, .1], [.05, .1, .05]]
    >>> [round(r, 4) for r in erf_radii(m)]
    [1.0, 1.4142]
    """
    m = np.asarray(grad_map, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"grad_map must be 2-D, got shape {m.shape}")
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ValueError("grad_map must be finite and non-negative")
    for q in fractions:
        if not 0 < q <= 1:
            raise ValueError(f"fractions must lie in (0, 1], got {q}")
    cy, cx = centre if centre is not None else (m.shape[0] // 2, m.shape[1] // 2)
    yy, xx = np.indices(m.shape)
    d2 = ((yy - cy) ** 2 + (xx - cx) ** 2).ravel()  # integer squared distances: exact ties
    order = np.argsort(d2, kind="stable")
    d2, mass = d2[order], m.ravel()[order]
    total = mass.sum()
    if total <= 0:
        return [math.nan for _ in fractions]
    levels, first = np.unique(d2, return_index=True)
    cum = np.cumsum(mass)[np.r_[first[1:] - 1, len(mass) - 1]]  # mass within each distance
    out = []
    for q in fractions:
        # a relative tolerance keeps q = 1 reachable despite rounding in the cumulative sum
        k = int(np.searchsorted(cum, q * total * (1 - 1e-12), side="left"))
        out.append(math.sqrt(float(levels[min(k, len(levels) - 1)])))
    return out


def effective_receptive_field(
    model: nn.Module,
    images: torch.Tensor,
    *,
    max_patches: int = MAX_PATCHES,
    class_index: int = PARTICLE_CLASS,
) -> dict[str, float]:
    """``erf50_px`` and ``erf95_px`` of ``model`` on (up to ``max_patches`` of) ``images``.

    ``images`` (n, 1, P, P); the patches used are :func:`patch_indices` of n. See the module
    docstring for the definition. ``erf_patches`` says how many patches were averaged.
    """
    idx = patch_indices(len(images), max_patches)
    grad = gradient_map(model, images[idx], class_index=class_index)
    r50, r95 = erf_radii(grad, ERF_FRACTIONS)
    return {"erf50_px": r50, "erf95_px": r95, "erf_patches": float(len(idx))}
