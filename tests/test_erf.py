"""Effective receptive field (Luo et al. 2016): exact values on hand-computable networks, the
bound set by the exact reach on the real network, eval-mode independence of the patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from temseg.erf import effective_receptive_field, erf_radii, gradient_map, patch_indices
from temseg.model import ResidualUNet
from temseg.receptive_field import exact_receptive_field, reach_interval

# class-1 kernel of a one-layer network: 0.4 centre, 0.1 per edge neighbour, 0.05 per corner
# (total 1.0): the centre holds 40 %, the cross (distance 1) 80 %, all nine (distance sqrt 2)
# 100 %. So r50 = 1 and r95 = sqrt(2), whatever the input (the network is linear).
KERNEL = torch.tensor([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]])


def one_conv(sign: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[1, 0] = sign * KERNEL
        conv.weight[0, 0] = 1.0  # the background logit must not enter the measure
        conv.bias.fill_(0.3)
    return conv


def test_one_conv_layer_has_the_hand_computed_radii():
    images = torch.randn(5, 1, 17, 17, generator=torch.Generator().manual_seed(0))
    grad = gradient_map(one_conv(), images)
    expected = np.zeros((17, 17))
    expected[7:10, 7:10] = KERNEL.double().numpy()
    np.testing.assert_allclose(grad, expected, atol=1e-7)
    out = effective_receptive_field(one_conv(), images)
    assert out["erf50_px"] == 1.0
    assert out["erf95_px"] == pytest.approx(math.sqrt(2), abs=1e-12)
    assert out["erf_patches"] == 5
    # absolute gradient: a negated kernel has the same ERF
    assert effective_receptive_field(one_conv(-1.0), images)["erf95_px"] == out["erf95_px"]
    # the fractions at the edges of the rings: 40 % -> 0, 80 % -> 1, 100 % -> sqrt 2
    r2 = math.sqrt(2)
    assert erf_radii(grad, (0.4, 0.8, 0.81, 1.0)) == pytest.approx([0.0, 1.0, r2, r2], abs=1e-12)


def test_radii_of_a_ring_and_an_off_centre_output_pixel():
    m = np.zeros((9, 9))
    m[4, 4] = 1.0
    m[4, 7] = m[1, 4] = 1.0  # two pixels at distance 3
    assert erf_radii(m, (0.3, 0.34, 0.95)) == [0.0, 3.0, 3.0]
    # the same map seen from (0, 0): the nearest mass is at sqrt(32), the farthest at sqrt(65)
    assert erf_radii(m, (0.3, 0.95), centre=(0, 0)) == pytest.approx([math.sqrt(17), math.sqrt(65)])
    assert all(math.isnan(r) for r in erf_radii(np.zeros((3, 3))))
    with pytest.raises(ValueError, match="non-negative"):
        erf_radii(-m)
    with pytest.raises(ValueError, match=r"fractions must lie in \(0, 1\]"):
        erf_radii(m, (0.0,))


def test_patch_choice_is_deterministic_and_bounded():
    assert patch_indices(40, 4) == [0, 13, 26, 39]
    assert patch_indices(100) == patch_indices(100) and len(patch_indices(100)) == 16
    assert patch_indices(5) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("pools", "dilations"), [((2, 2), None), ((4, 4), None), ((2, 2), (1, 2, 2))]
)
def test_real_network_gradient_stays_inside_the_exact_reach(pools, dilations):
    torch.manual_seed(0)
    net = ResidualUNet(len(pools), pools, dilations)
    net.train()  # gradient_map must switch to eval itself and restore the mode afterwards
    size = 192
    images = torch.randn(3, 1, size, size, generator=torch.Generator().manual_seed(1))
    grad = gradient_map(net, images)
    assert net.training
    c = size // 2
    lo, hi = reach_interval(pools, c, dilations)  # same interval on both axes
    inside = np.zeros_like(grad, dtype=bool)
    inside[lo : hi + 1, lo : hi + 1] = True
    assert grad[~inside].max() == 0.0 and grad[c, c] > 0
    r50, r95 = erf_radii(grad)
    corner = math.hypot(max(c - lo, hi - c), max(c - lo, hi - c))
    assert 0 <= r50 <= r95 <= corner
    assert 2 * r95 <= exact_receptive_field(pools, dilations)[1]


def test_eval_mode_makes_patches_independent():
    # with BatchNorm in eval mode a patch's gradient does not depend on its batch mates:
    # one batch of 4 and four batches of 1 give the same map
    torch.manual_seed(0)
    net = ResidualUNet(2, (2, 2))
    images = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    np.testing.assert_allclose(
        gradient_map(net, images, batch_size=4), gradient_map(net, images, batch_size=1), rtol=1e-5
    )
    with pytest.raises(ValueError, match=r"images must be \(n >= 1, 1, P, P\)"):
        gradient_map(net, images[:, 0])
