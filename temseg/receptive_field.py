"""Receptive-field arithmetic of the residual UNet, in pure Python (no torch import).

The receptive field (RF) of an output pixel is the side of the input square that can
influence it. Sytwu, Groschner & Scott (2022), equation (1):

    RF = 1 + sum_l (k_l - 1) * prod_{j<l} s_j

taken along the deepest path of the network: both 3x3 convolutions of every encoder block and
the max pool after it (kernel = stride = p_i), the bottleneck's two convolutions, then both
convolutions of every decoder block, where the nearest upsampling by p_i before a decoder
block divides the running stride product by p_i. A 3x3 convolution with dilation d counts as
a kernel of d * (3 - 1) + 1 (Araujo et al. 2019). The 1x1 skip convolutions are never on the
deepest path.

Worked values (SPEC.md section 3): N=2, pools 2-2 -> 44 px; 4-4 -> 120 px; 8-8 -> 392 px;
pools 2-2 with dilations 1,1,2 -> 60 px.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CONV_KERNEL = 3
CONVS_PER_BLOCK = 2
DEFAULT_KERNELS = (2, 4, 8)
DEFAULT_BLOCKS = (2, 3, 4)
DEFAULT_PATCH_SIZE = 512


def resolve_dilations(num_blocks: int, dilations: Sequence[int] | None) -> tuple[int, ...]:
    """Dilations as N + 1 values (encoder blocks, then bottleneck); ``None`` means all 1."""
    if dilations is None:
        return (1,) * (num_blocks + 1)
    dilations = tuple(int(d) for d in dilations)
    if len(dilations) != num_blocks + 1:
        raise ValueError(
            f"dilations must have num_blocks + 1 = {num_blocks + 1} values "
            f"(one per encoder block, then the bottleneck), got {len(dilations)}: {dilations}"
        )
    if any(d < 1 for d in dilations):
        raise ValueError(f"dilations must be >= 1, got {dilations}")
    return dilations


def check_pools(pools: Sequence[int], num_blocks: int | None = None) -> tuple[int, ...]:
    """Validate a pool sequence (one max-pool kernel >= 2 per encoder block)."""
    pools = tuple(int(p) for p in pools)
    if num_blocks is not None and len(pools) != num_blocks:
        raise ValueError(
            f"pools must have one kernel per block: num_blocks={num_blocks} "
            f"but {len(pools)} pools given: {pools}"
        )
    if not pools:
        raise ValueError("pools must not be empty (the network needs at least one block)")
    if any(p < 2 for p in pools):
        raise ValueError(f"every max-pool kernel must be >= 2, got pools {pools}")
    return pools


def receptive_field(pools: Sequence[int], dilations: Sequence[int] | None = None) -> int:
    """Receptive field in pixels of a residual UNet with these pools and dilations.

    Parameters
    ----------
    pools
        Max-pool kernel (= stride) after each encoder block; its length is N.
    dilations
        N + 1 convolution dilations (encoder blocks, then bottleneck); decoder blocks reuse
        their encoder block's value. ``None`` means no dilation.

    Notes
    -----
    RF = 1 + sum_l (k_l - 1) * J_l along the deepest path, where J_l is the product of the
    strides before layer l (divided back by p_i at each upsampling).

    Examples
    --------
    >>> receptive_field([2, 2]), receptive_field([8, 8]), receptive_field([2, 2], [1, 1, 2])
    (44, 392, 60)
    """
    pools = check_pools(pools)
    dil = resolve_dilations(len(pools), dilations)
    rf, jump = 1, 1

    def convs(d: int) -> int:
        return CONVS_PER_BLOCK * d * (CONV_KERNEL - 1) * jump

    for p, d in zip(pools, dil, strict=False):  # encoder
        rf += convs(d)
        rf += (p - 1) * jump  # max pool, kernel = stride = p
        jump *= p
    rf += convs(dil[-1])  # bottleneck
    for p, d in zip(reversed(pools), reversed(dil[:-1]), strict=True):  # decoder
        jump //= p  # nearest upsampling by p
        rf += convs(d)
    return rf


def rf_nm(rf_px: int, pixel_size_nm: float) -> float:
    """Receptive field in nm: ``rf_px * pixel_size_nm``."""
    return rf_px * pixel_size_nm


def pool_product(pools: Sequence[int]) -> int:
    out = 1
    for p in pools:
        out *= int(p)
    return out


def check_input_size(size: int, pools: Sequence[int]) -> None:
    """Raise if an input side is not divisible by the product of the pools."""
    prod = pool_product(pools)
    if size % prod:
        lower = (size // prod) * prod
        hint = f"{lower} or {lower + prod}" if lower else f"{prod}"
        raise ValueError(
            f"input size {size} is not divisible by the product of the pools "
            f"{'x'.join(map(str, pools))} = {prod}; use a multiple of {prod} (e.g. {hint})"
        )


def parameter_count(num_blocks: int) -> int:
    """Trainable parameters of the residual UNet with N blocks (independent of pools/dilation).

    Counts every conv (with bias) and BatchNorm (weight, bias) of SPEC.md section 2. Paper
    Table 2: N=2: 8074, N=3: 32730, N=4: 130682.
    """

    def block(cin: int, cout: int) -> int:
        conv1 = cin * cout * 9 + cout
        conv2 = cout * cout * 9 + cout
        skip = cin * cout + cout
        return conv1 + conv2 + skip + 2 * 2 * cout

    filters = [4 * 2**i for i in range(num_blocks + 1)]
    total = 0
    cin = 1
    for f in filters[:-1]:
        total += block(cin, f)
        cin = f
    total += block(filters[-2], filters[-1])
    for i in reversed(range(num_blocks)):
        total += block(filters[i] + filters[i + 1], filters[i])
    total += filters[0] * 2 + 2
    return total


@dataclass(frozen=True)
class Architecture:
    """One network of the study: N blocks, pools, dilations, and its receptive field."""

    num_blocks: int
    pools: tuple[int, ...]
    dilations: tuple[int, ...]

    @property
    def rf_px(self) -> int:
        return receptive_field(self.pools, self.dilations)

    @property
    def n_params(self) -> int:
        return parameter_count(self.num_blocks)

    @property
    def strategy(self) -> str:
        """``"pooling"`` when the RF comes from pools alone, ``"dilation"`` otherwise."""
        return "pooling" if all(d == 1 for d in self.dilations) else "dilation"

    @property
    def name(self) -> str:
        """Readable id, e.g. ``N2-p8.8-d1.1.1``."""
        return (
            f"N{self.num_blocks}-p{'.'.join(map(str, self.pools))}"
            f"-d{'.'.join(map(str, self.dilations))}"
        )


def pool_sequences(
    num_blocks: int,
    *,
    kernels: Iterable[int] = DEFAULT_KERNELS,
    patch_size: int = DEFAULT_PATCH_SIZE,
) -> list[tuple[int, ...]]:
    """Every pool sequence of length N over ``kernels`` whose RF is below ``patch_size``.

    With kernels {2, 4, 8} and 512 px patches this gives 9 / 14 / 7 sequences for
    N = 2 / 3 / 4: the paper's 30 architectures. Sequences are in lexicographic order.
    """
    kernels = sorted(set(int(k) for k in kernels))
    check_pools(kernels)
    return [
        seq
        for seq in itertools.product(kernels, repeat=num_blocks)
        if receptive_field(seq) < patch_size and patch_size % pool_product(seq) == 0
    ]


def dilation_variants(
    num_blocks: int, *, patch_size: int = DEFAULT_PATCH_SIZE
) -> list[Architecture]:
    """The dilation strategy of the paper's Figure 4: pool 2 in every block, dilation rising.

    The paper sets the dilation constant within each residual block; its exact table (Table
    S2) is not in the text available here. temseg uses one dilation d for every block and the
    bottleneck, d = 1, 2, 4, 8, ..., keeping every set whose RF is below the patch size:
    N=2 gives RF 44 / 84 / 164 / 324 px, N=3 gives 96 / 184 / 360 px at 512 px patches.
    """
    pools = (2,) * num_blocks
    out = []
    d = 1
    while receptive_field(pools, (d,) * (num_blocks + 1)) < patch_size:
        out.append(Architecture(num_blocks, pools, (d,) * (num_blocks + 1)))
        d *= 2
    return out


def valid_architectures(
    *,
    blocks: Iterable[int] = DEFAULT_BLOCKS,
    kernels: Iterable[int] = DEFAULT_KERNELS,
    patch_size: int = DEFAULT_PATCH_SIZE,
) -> list[Architecture]:
    """All pooling architectures of a study (no dilation), ordered by N then pools."""
    return [
        Architecture(n, seq, (1,) * (n + 1))
        for n in blocks
        for seq in pool_sequences(n, kernels=kernels, patch_size=patch_size)
    ]
