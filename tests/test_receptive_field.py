"""Receptive-field arithmetic against the paper's worked values (SPEC.md section 3).

Equation (1) (the paper's convention) and the exact reach (interval propagation, checked
against a gradient probe of the real network).
"""

import subprocess
import sys

import pytest

from temseg.receptive_field import (
    Architecture,
    check_input_size,
    dilation_variants,
    exact_receptive_field,
    exact_receptive_field_widths,
    network_label,
    parameter_count,
    pool_product,
    pool_sequences,
    reach_interval,
    receptive_field,
    rf_nm,
    valid_architectures,
)


@pytest.mark.parametrize(
    ("pools", "dilations", "rf_px"),
    [
        ((2, 2), None, 44),  # paper: 0.95 nm at 0.02152 nm/px, 5.5 nm at 0.1243
        ((4, 4), None, 120),  # paper: 2.58 nm
        ((8, 8), None, 392),  # paper: 8.44 nm, 48.7 nm
        ((2, 2), (1, 1, 2), 60),  # SPEC.md table: dilated bottleneck
        ((2, 2), (1, 1, 1), 44),
    ],
)
def test_worked_values(pools, dilations, rf_px):
    assert receptive_field(pools, dilations) == rf_px


@pytest.mark.parametrize(
    ("pools", "pixel_size_nm", "nm"),
    [
        ((2, 2), 0.02152, 0.95),
        ((4, 4), 0.02152, 2.58),
        ((8, 8), 0.02152, 8.44),
        ((2, 2), 0.1243, 5.5),
        ((8, 8), 0.1243, 48.7),
    ],
)
def test_rf_in_nm_matches_paper(pools, pixel_size_nm, nm):
    decimals = len(str(nm).split(".")[1])  # as many decimals as the paper prints
    assert rf_nm(receptive_field(pools), pixel_size_nm) == pytest.approx(
        nm, abs=0.5 * 10**-decimals
    )


def test_rf_by_hand_for_three_blocks():
    # 1 + enc (2+2)*1 + 1*1 | (2+2)*2 + 1*2 | (2+2)*4 + 1*4 | bottleneck (2+2)*8 | dec 16+8+4
    assert receptive_field((2, 2, 2)) == 1 + 4 + 1 + 8 + 2 + 16 + 4 + 32 + 16 + 8 + 4


@pytest.mark.parametrize(("n", "count"), [(2, 9), (3, 14), (4, 7)])
def test_valid_pool_sequences_per_block_count(n, count):
    seqs = pool_sequences(n, kernels=(2, 4, 8), patch_size=512)
    assert len(seqs) == count
    assert all(receptive_field(s) < 512 and len(s) == n for s in seqs)


def test_thirty_architectures_at_512():
    archs = valid_architectures(blocks=(2, 3, 4), kernels=(2, 4, 8), patch_size=512)
    assert len(archs) == 30
    assert len({a.name for a in archs}) == 30


@pytest.mark.parametrize(("n", "params"), [(2, 8074), (3, 32730), (4, 130682)])
def test_parameter_count_formula(n, params):
    assert parameter_count(n) == params


def test_dilation_variants_rise_and_stay_below_patch():
    # first (full-resolution) block undilated, the deeper blocks and the bottleneck dilated
    # by d. Eq. 1 by hand for pools 2-2: RF = 1 + 8 d0 + 3 + 16 d1 + 16 d2 (44 at d = 1);
    # (1,16,16) gives 524 >= 512 and is left out.
    two = dilation_variants(2, patch_size=512)
    assert [a.dilations for a in two] == [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 8, 8)]
    assert [a.rf_px for a in two] == [44, 76, 140, 268]
    assert [a.rf_exact for a in two] == [(44, 44), (76, 76), (140, 140), (268, 268)]
    three = dilation_variants(3, patch_size=512)
    assert [a.dilations for a in three] == [(1, 1, 1, 1), (1, 2, 2, 2), (1, 4, 4, 4)]
    assert [a.rf_px for a in three] == [96, 176, 336]  # (1,8,8,8): 656
    # N=3 pools of 2 are not aligned: the exact reach spans 8 px around Eq. 1
    assert [a.rf_exact for a in three] == [(92, 100), (172, 180), (332, 340)]
    assert all(a.strategy == "dilation" for a in two[1:] + three[1:])
    assert all(a.dilations[0] == 1 for a in two + three)
    assert [a.rf_px for a in dilation_variants(2, patch_size=256)] == [44, 76, 140]


@pytest.mark.parametrize(
    ("pools", "dilations", "message"),
    [((1, 2), None, ">= 2"), ((2, 2), (1, 1), r"num_blocks \+ 1 = 3"), ((2, 2), (1, 0, 1), ">= 1")],
)
def test_bad_arguments(pools, dilations, message):
    with pytest.raises(ValueError, match=message):
        receptive_field(pools, dilations)


def test_input_size_error_names_a_working_size():
    with pytest.raises(ValueError, match=r"product of the pools 8x8 = 64.*448 or 512"):
        check_input_size(500, (8, 8))
    check_input_size(512, (8, 8))


def test_receptive_field_module_imports_no_torch():
    code = "import sys, temseg.receptive_field, temseg.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the exact reach (SPEC.md section 3, last paragraph) ------------------------------------


@pytest.mark.parametrize(
    ("pools", "dilations", "eq1", "exact"),
    [
        ((2, 2), None, 44, (44, 44)),  # pools of 2 with N=2: aligned, reach = Eq. 1
        ((4, 4), None, 120, (116, 132)),
        ((8, 8), None, 392, (356, 420)),
        ((2, 2), (1, 1, 2), 60, (60, 60)),
        ((2, 2, 2), None, 96, (92, 100)),  # N=3: pools of 2 are no longer aligned
    ],
)
def test_exact_reach_worked_values(pools, dilations, eq1, exact):
    assert receptive_field(pools, dilations) == eq1
    assert exact_receptive_field(pools, dilations) == exact


@pytest.mark.parametrize("n", [2, 3, 4])
def test_eq1_lies_within_the_exact_reach(n):
    for seq in pool_sequences(n, kernels=(2, 4, 8), patch_size=512):
        lo, hi = exact_receptive_field(seq)
        assert lo <= receptive_field(seq) <= hi, seq


def test_exact_reach_exceeds_the_patch_for_three_of_the_thirty():
    over = [a.pools for a in valid_architectures() if a.rf_exact[1] > 512]
    assert over == [(2, 8, 4), (4, 4, 4), (2, 2, 4, 4)]


def test_reach_is_periodic_and_translation_equivariant():
    pools = (4, 2)
    period = pool_product(pools)
    widths = exact_receptive_field_widths(pools)
    assert len(widths) == period
    for x in range(-2 * period, 2 * period):
        lo, hi = reach_interval(pools, x)
        lo0, hi0 = reach_interval(pools, x % period)
        shift = x - x % period
        assert (lo, hi) == (lo0 + shift, hi0 + shift)
        assert lo <= x <= hi


def test_reach_by_hand_for_one_block():
    # N=1, pool 2, x=10: decoder block [8, 12]; skip path: encoder block [6, 14]; deep path:
    # cells [4, 6], bottleneck [2, 8], pool [4, 17], encoder block [2, 19]. Hull: [2, 19].
    # x=11: [9, 13] -> cells [4, 6] again, so the same [2, 19]: even x reach [x-8, x+9],
    # odd x [x-9, x+8], 18 px either way, as Eq. 1 (1 + 4 + 1 + 8 + 4).
    assert reach_interval((2,), 10) == (2, 19)
    assert reach_interval((2,), 11) == (2, 19)
    assert reach_interval((2,), 12) == (4, 21)
    assert exact_receptive_field((2,)) == (18, 18) == (receptive_field((2,)),) * 2


def _probe_columns(pools, dilations, xs, width):
    """Gradient probe of the real ResidualUNet: input columns that reach each output in xs.

    Random Kaiming weights made positive (abs), float64, eval mode, so every activation is
    positive (no ReLU is off) and the gradient is a sum of positive path products (no
    cancellation). A ramp that rises to the right makes every max pool pick the rightmost
    column of its cell, so the rightmost nonzero gradient column is the reach's right end;
    a ramp falling to the right gives the left end. Returns [(lo, hi)] per position.
    """
    import torch

    from temseg.model import ResidualUNet

    torch.manual_seed(0)
    net = ResidualUNet(len(pools), pools, dilations).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    height = pool_product(pools)  # rows only add zero-padding, never columns
    cols = torch.arange(width, dtype=torch.float64)
    ends = {}
    for name, ramp in (("right", 100.0 + cols), ("left", 100.0 + width - cols)):
        inp = ramp.expand(len(xs), 1, height, width).clone().requires_grad_(True)
        out = net(inp)
        out[torch.arange(len(xs)), 1, height // 2, torch.tensor(xs)].sum().backward()
        grad = inp.grad.abs().sum(dim=(1, 2))  # (positions, columns)
        ends[name] = [torch.nonzero(g).flatten() for g in grad]
    found = []
    for left, right in zip(ends["left"], ends["right"], strict=True):
        lo, hi = int(left.min()), int(right.max())
        assert int(right.min()) >= lo and int(left.max()) <= hi  # nothing outside [lo, hi]
        found.append((lo, hi))
    return found


@pytest.mark.parametrize(
    ("pools", "dilations", "width", "all_phases"),
    [
        ((4, 4), None, 256, True),
        ((2, 2), (1, 1, 2), 128, True),
        ((2, 2, 2), None, 256, True),
        ((8, 8), None, 512, False),
    ],
)
def test_gradient_probe_matches_interval_propagation(pools, dilations, width, all_phases):
    period = pool_product(pools)
    if all_phases:
        phases = list(range(period))
    else:  # 4 regular phases, plus both sides of every change of the reach (and the wrap)
        phases = set(range(0, period, period // 4)) | {period - 1}
        for k in range(1, period):
            if reach_interval(pools, k) != reach_interval(pools, k - 1):
                phases |= {k - 1, k}
        phases = sorted(phases)
    xs, expected = [], []
    for k in phases:  # one position per phase, its reach centred in the image
        lo, hi = reach_interval(pools, k, dilations)
        shift = round((width / 2 - (lo + hi) / 2) / period) * period
        lo, hi = lo + shift, hi + shift
        assert 0 <= lo and hi < width, "image too narrow: the border would truncate the reach"
        xs.append(k + shift)
        expected.append((lo, hi))
    found = _probe_columns(pools, dilations, xs, width)
    assert found == expected
    widths = [hi - lo + 1 for lo, hi in found]
    if all_phases:
        assert (min(widths), max(widths)) == exact_receptive_field(pools, dilations)
    else:
        assert min(widths) == exact_receptive_field(pools, dilations)[0]
        assert max(widths) == exact_receptive_field(pools, dilations)[1]


# ---------------------------------------------------------------------------- names


def test_one_network_label_and_the_machine_id_it_keeps():
    """What a user reads everywhere (run names, reports, pages) and the tag id old runs and
    the benchmark table are found by."""
    arch = Architecture(3, (2, 4, 2), (1, 2, 2, 2))
    assert arch.label == "N=3 pools 2-4-2 dilations 1-2-2-2"
    assert arch.name == "N3-p2.4.2-d1.2.2.2"  # the temseg.architecture tag: never changes
    # a table's "4-4" columns give the same label as the tuples
    assert network_label(2, "4-4", "1-1-1") == Architecture(2, (4, 4)).label
    assert network_label(2, (4, 4), (1, 1, 1)) == "N=2 pools 4-4 dilations 1-1-1"


def test_the_machine_id_reads_back():
    archs = valid_architectures() + [Architecture(2, (2, 2), (1, 4, 8))]
    assert len(archs) == 31  # the paper's 30 pooling networks and one dilated
    for arch in archs:
        assert Architecture.from_name(arch.name) == arch
    for bad in ("N2 p4-4", "N2-p4.4", "N2-p4.4-d1.1", "n2-p4.4-d1.1.1", ""):
        with pytest.raises(ValueError):
            Architecture.from_name(bad)
