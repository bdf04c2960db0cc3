"""The search's plan: its config, its objectives and costs, and its space.

The space is define-by-run (N, one pool kernel per block, then the dilations) and, built by
:func:`space_for` from a sweep profile, holds exactly the grid's architectures. Pure: no
Optuna, Ray or MLflow import.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temseg.config import ConfigError, check_distinct
from temseg.receptive_field import (
    Architecture,
    format_seq,
    parameter_count,
    parse_seq,
    pool_product,
    train_gflop,
)

DICE = "best_val_hard_dice"  # what the trainable reports each epoch: best val dice so far


OBJECTIVES = ("dice", "dice-per-cost")


COSTS = ("flops", "params")


COST_METRIC = {"flops": "train_gflop", "params": "n_params"}


COST_WORDS = {"flops": "training GFLOP per patch", "params": "parameters"}


SEARCH_METHOD = "optuna"


CONSTRAINT = "rf_below_patch"


@dataclass(frozen=True)
class SearchConfig:
    """The search's own knobs; datasets, protocol and resources come from the sweep profile.

    ``max_epochs`` and ``train_seed`` of ``None`` mean the profile's ``epochs`` and first
    seed; ``grace_period`` 0 means ``max(1, max_epochs // 4)``; ``max_concurrent`` 0 means as
    many trials as the cluster fits; ``n_startup_trials`` 0 means ``min(10, max(2, trials //
    3))`` random proposals before TPE models the results.
    """

    trials: int = 12
    max_epochs: int | None = None
    objective: str = "dice"
    cost: str = "flops"
    seeds: tuple[int, ...] = (0,)
    train_seed: int | None = None
    tolerance: float = 0.01
    # dilation choices per level (searched one level at a time); empty = the profile's own
    # dilation sets (all ones unless it names some)
    dilation_choices: tuple[int, ...] = ()
    grace_period: int = 0
    reduction_factor: int = 3
    max_concurrent: int = 0
    n_startup_trials: int = 0

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {list(COSTS)}, got {self.cost!r}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must lie in [0, 1), got {self.tolerance}")
        if any(d < 1 for d in self.dilation_choices):
            raise ValueError(f"dilation_choices must be >= 1, got {list(self.dilation_choices)}")
        check_distinct("seeds", self.seeds)
        check_distinct("dilation_choices", self.dilation_choices)
        if self.reduction_factor < 2:
            raise ValueError(f"reduction_factor must be >= 2, got {self.reduction_factor}")
        for name in ("grace_period", "max_concurrent", "n_startup_trials"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def multi_objective(self) -> bool:
        return self.objective == "dice-per-cost"

    def startup_trials(self) -> int:
        return self.n_startup_trials or min(10, max(2, self.trials // 3))

    def grace(self, max_epochs: int) -> int:
        return min(max_epochs, self.grace_period or max(1, max_epochs // 4))


def search_config(values: Mapping[str, Any]) -> SearchConfig:
    """A :class:`SearchConfig` from CLI values (None = default), through ``from_dict``."""
    from temseg.config import from_dict

    return from_dict(SearchConfig, {k: v for k, v in values.items() if v is not None})


def study_name(dataset: str, scfg: SearchConfig, seed: int) -> str:
    """E.g. ``discs128/optuna-dice-s0`` or ``discs128/optuna-dice-per-flops-s1``."""
    what = f"dice-per-{scfg.cost}" if scfg.multi_objective else "dice"
    return f"{dataset}/{SEARCH_METHOD}-{what}-s{seed}"


def cost_of(arch: Architecture, cost: str, patch_size: int) -> float:
    """The cost objective: training GFLOP per patch (``flops``) or parameters (``params``)."""
    if cost == "flops":
        return train_gflop(arch, patch_size)
    if cost == "params":
        return float(parameter_count(arch.num_blocks))
    raise ValueError(f"cost must be one of {list(COSTS)}, got {cost!r}")


@dataclass(frozen=True)
class SearchSpace:
    """Define-by-run space: N, one pool kernel per block, then the dilations.

    Dilations come either as per-level choices (``dilations``: one value per level, each from
    these) or as whole sets (``dilation_sets``: one of the listed N + 1 tuples, asked only when
    N has more than one), or not at all (all ones). ``only``, when given, is the set of
    architectures the space may train (the profile's own grid), every other proposal being
    infeasible: so a search over a profile explores exactly the grid's architectures.
    """

    blocks: tuple[int, ...]
    kernels: tuple[int, ...]
    patch_size: int
    dilations: tuple[int, ...] = ()
    dilation_sets: tuple[tuple[int, ...], ...] = ()
    only: frozenset[Architecture] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(sorted({int(b) for b in self.blocks})))
        object.__setattr__(self, "kernels", tuple(sorted({int(k) for k in self.kernels})))
        object.__setattr__(self, "dilations", tuple(sorted({int(d) for d in self.dilations})))
        sets = tuple(sorted({tuple(int(d) for d in ds) for ds in self.dilation_sets}))
        object.__setattr__(self, "dilation_sets", sets)
        if self.only is not None:
            object.__setattr__(self, "only", frozenset(self.only))
        if self.dilations and self.dilation_sets:
            raise ConfigError("give dilation choices per level or dilation sets, not both")
        if not self.blocks or min(self.blocks) < 1:
            raise ConfigError(f"blocks must be >= 1, got {self.blocks}")
        if not self.kernels or min(self.kernels) < 2:
            raise ConfigError(f"pool kernels must be >= 2, got {self.kernels}")
        if not self.architectures():
            raise ConfigError(
                f"empty search space: no architecture with blocks {list(self.blocks)} and "
                f"kernels {list(self.kernels)} has RF below the {self.patch_size} px patch"
            )

    def _sets(self, n: int) -> list[tuple[int, ...]]:
        return [ds for ds in self.dilation_sets if len(ds) == n + 1] or [(1,) * (n + 1)]

    def sample(self, trial: Any) -> Architecture:
        """Ask ``trial`` (an ``optuna.Trial``) for N, then N kernels (and the dilations)."""
        n = trial.suggest_categorical("num_blocks", self.blocks)
        pools = tuple(trial.suggest_categorical(f"pool_{i}", self.kernels) for i in range(n))
        if self.dilations:
            dil = tuple(
                trial.suggest_categorical(f"dilation_{i}", self.dilations) for i in range(n + 1)
            )
        else:
            sets = self._sets(n)
            dil = sets[0]
            if len(sets) > 1:  # one parameter per N: Optuna needs one distribution per name
                chosen = trial.suggest_categorical(
                    f"dilations_n{n}", [format_seq(ds) for ds in sets]
                )
                dil = parse_seq(chosen)
        return Architecture(int(n), tuple(int(p) for p in pools), tuple(int(d) for d in dil))

    def params(self, arch: Architecture) -> dict[str, Any]:
        """The Optuna parameters under which :meth:`sample` gives ``arch`` (its inverse).

        >>> SearchSpace((2,), (2, 4), 128).params(Architecture(2, (4, 2)))
        {'num_blocks': 2, 'pool_0': 4, 'pool_1': 2}
        """
        n = arch.num_blocks
        out: dict[str, Any] = {"num_blocks": n}
        out.update({f"pool_{i}": int(p) for i, p in enumerate(arch.pools)})
        if self.dilations:
            out.update({f"dilation_{i}": int(d) for i, d in enumerate(arch.dilations)})
        elif len(self._sets(n)) > 1:
            out[f"dilations_n{n}"] = format_seq(arch.dilations)
        return out

    def violation(self, arch: Architecture) -> float:
        """0 for an architecture the patch can train; > 0 otherwise (how far out it is).

        RF >= P adds ``(RF - P + 1) / P``; a pool product that does not divide P adds 1; an
        architecture outside ``only`` adds 1.
        """
        out = 0.0
        if len(arch.pools) != arch.num_blocks or len(arch.dilations) != arch.num_blocks + 1:
            return 1.0
        if arch.rf_px >= self.patch_size:
            out += (arch.rf_px - self.patch_size + 1) / self.patch_size
        if self.patch_size % pool_product(arch.pools):
            out += 1.0
        if self.only is not None and arch not in self.only:
            out += 1.0
        return out

    def architectures(self) -> list[Architecture]:
        """Every architecture of the space the patch can train, ordered by N, pools, dilations."""
        out = []
        for n in self.blocks:
            if self.dilations:
                dil_sets = list(itertools.product(self.dilations, repeat=n + 1))
            else:
                dil_sets = self._sets(n)
            for pools in itertools.product(self.kernels, repeat=n):
                if self.patch_size % pool_product(pools):
                    continue
                for dil in dil_sets:
                    arch = Architecture(n, pools, tuple(dil))
                    if arch.rf_px < self.patch_size and (self.only is None or arch in self.only):
                        out.append(arch)
        return out


def space_for(sweep: Any, scfg: SearchConfig, patch_size: int) -> SearchSpace:
    """The search's space on one patch size: the profile's own, as its grid would train it.

    Without ``scfg.dilation_choices`` the space is exactly the grid's architectures
    (:func:`temseg.sweep.space.architectures`: its blocks, kernels or pool sequences, dilation sets
    and Figure 4 variants), so ``--compare-grid`` compares like with like. With them, each
    level's dilation is searched among those choices, over the profile's pool sequences.
    """
    from temseg.sweep.space import architectures

    if scfg.dilation_choices:
        pools = set(sweep.pool_seqs)
        space = SearchSpace(sweep.blocks, sweep.kernels, patch_size, scfg.dilation_choices)
        if not pools:
            return space
        only = frozenset(a for a in space.architectures() if a.pools in pools)
        return dataclasses.replace(space, only=only)
    try:
        grid = architectures(sweep, patch_size)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("empty grid", "empty search space")) from None
    sets = {a.dilations for a in grid}
    return SearchSpace(
        blocks=tuple(a.num_blocks for a in grid),
        kernels=tuple(k for a in grid for k in a.pools),
        patch_size=patch_size,
        dilation_sets=tuple(sets) if any(d != 1 for ds in sets for d in ds) else (),
        only=frozenset(grid),
    )
