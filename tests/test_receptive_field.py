"""Receptive-field arithmetic against the paper's worked values (SPEC.md section 3)."""

import subprocess
import sys

import pytest

from temseg.receptive_field import (
    check_input_size,
    dilation_variants,
    parameter_count,
    pool_sequences,
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
    rfs = [a.rf_px for a in dilation_variants(2, patch_size=512)]
    assert rfs == [44, 84, 164, 324]
    assert [a.rf_px for a in dilation_variants(3, patch_size=512)] == [96, 184, 360]
    assert all(a.strategy == "dilation" for a in dilation_variants(2)[1:])


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
