"""Receptive-field arithmetic of the residual UNet, in pure Python (no torch import).

Two measures of the receptive field (RF) of an output pixel, the side of the input square
that can influence it:

* :func:`receptive_field`, the paper's convention: Sytwu, Groschner & Scott (2022),
  equation (1), one number per architecture. The study's tables, sweeps and the "RF < patch"
  rule all use it.
* :func:`exact_receptive_field`, the true reach: interval propagation through the exact
  network of :mod:`temseg.model`, as (min, max) over output positions. Nearest upsampling is
  not aligned with the pool cells, so with pools of 4 or more (and with N >= 3 even for pools
  of 2) the reach depends on the output pixel's position: pools 4-4 reach 116-132 px
  (Eq. 1: 120), 8-8 reach 356-420 px (Eq. 1: 392); pools 2-2 reach 44 px everywhere.

Equation (1):

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
import re
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
    """Receptive field in pixels by the paper's equation (1) (the study's convention).

    This is the convention of Sytwu, Groschner & Scott (2022), used for every table, sweep
    and the "RF < patch" rule; it is not the true reach of every output pixel. For pools of 4
    or more the reach depends on the pixel's position (nearest upsampling is not aligned with
    the pool cells): see :func:`exact_receptive_field` for the min and max over positions
    (pools 4-4: Eq. 1 gives 120 px, the exact reach is 116-132 px).

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


def reach_interval(
    pools: Sequence[int], x: int, dilations: Sequence[int] | None = None
) -> tuple[int, int]:
    """Input columns ``(lo, hi)`` that can influence output column ``x``, on an infinite line.

    Interval propagation, backwards, through the exact network of :mod:`temseg.model` along
    one axis (the network is separable per axis for this purpose; the 2-D reach of a pixel is
    the product of its row and column intervals). Rules: a 3x3 convolution with dilation d
    widens an interval by d on each side (a residual block: two of them, its 1x1 skip conv
    keeps the interval, the add takes the hull); a max pool of s maps cell i to input cells
    ``[s*i, s*i + s - 1]``; a nearest upsampling by s maps pixel p to cell ``floor(p / s)``; a
    concatenation takes the hull of its two inputs' intervals. Every path's interval contains
    ``x``, so the hull is the exact set. The image border is ignored (infinite input): the
    result is the architecture's property, not the padding's.

    Examples
    --------
    >>> reach_interval([4, 4], 0), reach_interval([4, 4], 6)
    ((-58, 57), (-58, 73))
    """
    pools = check_pools(pools)
    dil = resolve_dilations(len(pools), dilations)
    n = len(pools)

    def block(i: int, lo: int, hi: int) -> tuple[int, int]:
        # residual block with dilation dil[i]: conv3x3 -> conv3x3, hull with its 1x1 skip
        w = CONVS_PER_BLOCK * dil[i] * (CONV_KERNEL - 1) // 2
        return lo - w, hi + w

    def encoder_out(i: int, lo: int, hi: int) -> tuple[int, int]:
        """Input interval of the interval [lo, hi] of encoder block i's output (level i)."""
        lo, hi = block(i, lo, hi)  # now on encoder block i's input
        for j in reversed(range(i)):  # back through pool j, then encoder block j
            s = pools[j]
            lo, hi = block(j, s * lo, s * hi + s - 1)
        return lo, hi

    def decoder_in(i: int, lo: int, hi: int) -> tuple[int, int]:
        """Input interval of [lo, hi] of decoder block i's input: concat(skip_i, upsampled)."""
        skip_lo, skip_hi = encoder_out(i, lo, hi)
        s = pools[i]
        lo, hi = lo // s, hi // s  # nearest upsampling by s: pixel p <- cell floor(p / s)
        if i + 1 < n:  # the deeper decoder block's output
            deep_lo, deep_hi = decoder_in(i + 1, *block(i + 1, lo, hi))
        else:  # the bottleneck's output, whose input is pool n-1 of encoder block n-1
            lo, hi = block(n, lo, hi)
            s = pools[n - 1]
            deep_lo, deep_hi = encoder_out(n - 1, s * lo, s * hi + s - 1)
        return min(skip_lo, deep_lo), max(skip_hi, deep_hi)

    # final 1x1 conv keeps the interval; decoder block 0 widens it, then its input
    return decoder_in(0, *block(0, x, x))


def exact_receptive_field_widths(
    pools: Sequence[int], dilations: Sequence[int] | None = None
) -> list[int]:
    """Width of :func:`reach_interval` for every output phase ``x = 0 .. prod(pools) - 1``.

    The width is periodic in x with period prod(pools) (a shift by it shifts every level by
    a whole number of cells), so one period covers every position of an infinite image.
    """
    widths = []
    for x in range(pool_product(check_pools(pools))):
        lo, hi = reach_interval(pools, x, dilations)
        widths.append(hi - lo + 1)
    return widths


def exact_receptive_field(
    pools: Sequence[int], dilations: Sequence[int] | None = None
) -> tuple[int, int]:
    """True reach in pixels of one output pixel: ``(min, max)`` over output positions.

    The width of the input interval that can influence one output pixel, by interval
    propagation through the exact network (:func:`reach_interval`), minimised and maximised
    over all positions (one period of prod(pools) covers them). Unlike the paper's Eq. 1
    (:func:`receptive_field`) this depends on where the pixel sits relative to the pool cells.
    Equation (1) always lies within ``[min, max]`` for the study's pool sequences.

    Examples
    --------
    >>> exact_receptive_field([2, 2]), exact_receptive_field([4, 4])
    ((44, 44), (116, 132))
    >>> exact_receptive_field([8, 8]), exact_receptive_field([2, 2], [1, 1, 2])
    ((356, 420), (60, 60))
    """
    widths = exact_receptive_field_widths(pools, dilations)
    return min(widths), max(widths)


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


def format_seq(values: Iterable[int]) -> str:
    """``(8, 8)`` -> ``"8-8"``: the one formatter of pools and dilations for the CLI and MLflow.

    >>> format_seq((1, 2, 2))
    '1-2-2'
    """
    return "-".join(str(int(v)) for v in values)


def parse_seq(text: str | Iterable[int]) -> tuple[int, ...]:
    """``"8-8"`` (or ``"8,8"``, or already a sequence) -> ``(8, 8)``: the one parser.

    Raises ``ValueError`` naming what arrived when ``text`` is not integers joined by - or ,.

    >>> parse_seq("4-2")
    (4, 2)
    """
    if not isinstance(text, str):
        return tuple(int(v) for v in text)
    try:
        seq = tuple(int(v) for v in text.replace(",", "-").split("-") if v.strip())
    except ValueError:
        seq = ()
    if not seq:
        raise ValueError(f"not a sequence of integers: {text!r} (write e.g. 8-8)")
    return seq


def network_label(
    num_blocks: int, pools: str | Iterable[int], dilations: str | Iterable[int]
) -> str:
    """The one name of a network that a user reads: run names, reports, pages, the registry.

    ``pools`` and ``dilations`` as sequences or in their ``"4-4"`` form (a table's columns).
    The machine id that MLflow tags and the benchmark table hold is :attr:`Architecture.name`.

    >>> network_label(2, (4, 4), (1, 1, 1))
    'N=2 pools 4-4 dilations 1-1-1'
    >>> network_label(3, "2-2-2", "1-2-2-2")
    'N=3 pools 2-2-2 dilations 1-2-2-2'
    """
    pools, dilations = format_seq(parse_seq(pools)), format_seq(parse_seq(dilations))
    return f"N={int(num_blocks)} pools {pools} dilations {dilations}"


@dataclass(frozen=True)
class Architecture:
    """One network of the study: N blocks, pools, dilations; its RF, parameters and FLOPs.

    The one architecture type: :class:`temseg.model.ResidualUNet` is built from it, a
    :class:`temseg.config.TrainConfig` holds one (``.model``), sweeps plan with it. Validated
    when built: N >= 1, N pool kernels >= 2, N + 1 dilations >= 1 (``None``: all 1). Strings
    such as ``"2-2"`` exist only at the CLI and MLflow boundaries (:func:`format_seq`,
    :func:`parse_seq`).
    """

    num_blocks: int
    pools: tuple[int, ...]
    dilations: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {self.num_blocks}")
        object.__setattr__(self, "num_blocks", int(self.num_blocks))
        object.__setattr__(self, "pools", check_pools(self.pools, self.num_blocks))
        object.__setattr__(self, "dilations", resolve_dilations(self.num_blocks, self.dilations))

    @property
    def rf_px(self) -> int:
        return receptive_field(self.pools, self.dilations)

    @property
    def rf_exact(self) -> tuple[int, int]:
        """True reach (min, max) over output positions: :func:`exact_receptive_field`."""
        return exact_receptive_field(self.pools, self.dilations)

    @property
    def n_params(self) -> int:
        return parameter_count(self.num_blocks)

    def forward_flops(self, patch_size: int) -> int:
        """Forward FLOPs over one square patch: :func:`forward_flops`."""
        return forward_flops(self, patch_size)

    @property
    def strategy(self) -> str:
        """``"pooling"`` when the RF comes from pools alone, ``"dilation"`` otherwise."""
        return "pooling" if all(d == 1 for d in self.dilations) else "dilation"

    @property
    def label(self) -> str:
        """What a user reads, e.g. ``N=2 pools 8-8 dilations 1-1-1`` (:func:`network_label`)."""
        return network_label(self.num_blocks, self.pools, self.dilations)

    @property
    def short_label(self) -> str:
        """:attr:`label` compacted for MLflow's run-name column, which shows ~20 characters:
        ``N2 p4-4`` for ``N=2 pools 4-4 dilations 1-1-1``, dilations only when not all 1
        (``N2 p2-2 d1-2-2``).

        >>> Architecture(2, (4, 4)).short_label, Architecture(2, (2, 2), (1, 2, 2)).short_label
        ('N2 p4-4', 'N2 p2-2 d1-2-2')
        """
        dil = "" if set(self.dilations) == {1} else f" d{format_seq(self.dilations)}"
        return f"N{self.num_blocks} p{format_seq(self.pools)}{dil}"

    @property
    def name(self) -> str:
        """Machine id, e.g. ``N2-p8.8-d1.1.1``: the MLflow tag ``temseg.architecture`` and the
        benchmark table's ``arch`` column, by which existing runs and tables are found, so its
        format stays; text for a user uses :attr:`label`. :meth:`from_name` reads it back."""
        return (
            f"N{self.num_blocks}-p{'.'.join(map(str, self.pools))}"
            f"-d{'.'.join(map(str, self.dilations))}"
        )

    @classmethod
    def from_name(cls, name: str) -> Architecture:
        """The architecture whose :attr:`name` is ``name``; ValueError for anything else.

        >>> Architecture.from_name("N2-p4.2-d1.1.1").label
        'N=2 pools 4-2 dilations 1-1-1'
        """
        m = re.fullmatch(r"N(\d+)-p(\d+(?:\.\d+)*)-d(\d+(?:\.\d+)*)", name)
        if m is None:
            raise ValueError(f"not an architecture id: {name!r} (e.g. N2-p8.8-d1.1.1)")
        return cls(int(m[1]), parse_seq(m[2].replace(".", "-")), parse_seq(m[3].replace(".", "-")))


def forward_flops(arch: Architecture, patch_size: int) -> int:
    """Floating-point operations of one forward pass over one ``patch_size`` square patch.

    Counts the convolutions (2 per multiply-add, biases, BatchNorm, ReLU, pooling and
    upsampling left out, as ``torch.utils.flop_counter`` does): per residual block at side s,
    ``2 s^2 (9 c_in c_out + 9 c_out^2 + c_in c_out)``, encoder block i at side
    ``P / prod(p_<i)`` with 4 * 2**i filters, the bottleneck at ``P / prod(p)``, decoder block i
    from ``f_i + f_(i+1)`` channels, and the final 1x1 conv to 2 classes. Dilation changes no
    count ("same" padding keeps every side). Larger pools shrink the deeper feature maps, so a
    larger RF through pooling is *cheaper*.

    Examples
    --------
    >>> forward_flops(Architecture(2, (2, 2), (1, 1, 1)), 128) > forward_flops(
    ...     Architecture(2, (4, 4), (1, 1, 1)), 128)
    True
    """
    n, pools = arch.num_blocks, arch.pools
    if patch_size % pool_product(pools):
        raise ValueError(f"patch {patch_size} px is not divisible by the pools {pools}")
    f = [4 * 2**i for i in range(n + 1)]

    def block(cin: int, cout: int, side: int) -> int:
        return 2 * side * side * (9 * cin * cout + 9 * cout * cout + cin * cout)

    sides = [patch_size]
    for p in pools:
        sides.append(sides[-1] // p)
    total = 0
    cin = 1
    for i in range(n):
        total += block(cin, f[i], sides[i])
        cin = f[i]
    total += block(f[n - 1], f[n], sides[n])
    for i in range(n):
        total += block(f[i] + f[i + 1], f[i], sides[i])
    total += 2 * patch_size * patch_size * f[0] * 2
    return total


def train_gflop(arch: Architecture, patch_size: int) -> float:
    """Training GFLOP per patch: forward + backward ~= 3 x forward (Kaplan et al. 2020)."""
    return 3 * forward_flops(arch, patch_size) / 1e9


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

    As the authors built their dilated networks, the first (full-resolution) encoder block
    stays undilated and the deeper blocks take the dilation: the paper sets the dilation
    constant within each residual block (its exact table, Table S2, is not in the text
    available here), and the issue that read their networks names sets like 1,1,2. temseg
    gives every block below full resolution and the bottleneck one dilation d, so the
    dilations are ``(1, d, ..., d)`` (N + 1 values; decoder blocks reuse their encoder
    block's), d = 1, 2, 4, 8, ..., keeping every set whose RF (Eq. 1) is below the patch
    size. d = 1 is the undilated pool-2 network, the start of the series.

    Examples
    --------
    N=2 at 512 px: (1,1,1) 44, (1,2,2) 76, (1,4,4) 140, (1,8,8) 268 px ((1,16,16) is 524);
    N=3: (1,1,1,1) 96, (1,2,2,2) 176, (1,4,4,4) 336 px.

    >>> [(a.dilations, a.rf_px) for a in dilation_variants(2)][1:]
    [((1, 2, 2), 76), ((1, 4, 4), 140), ((1, 8, 8), 268)]
    """
    pools = (2,) * num_blocks

    def dil(d: int) -> tuple[int, ...]:
        return (1,) + (d,) * num_blocks  # full-resolution block undilated

    out = []
    d = 1
    while receptive_field(pools, dil(d)) < patch_size:
        out.append(Architecture(num_blocks, pools, dil(d)))
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
