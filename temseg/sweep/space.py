"""The grid's space and its trials: datasets x architectures x seeds (SPEC.md sections 3, 5).

For each N in ``blocks``, every pool sequence over ``kernels`` whose RF is below the patch
size (or the ``pools`` given), with dilations all 1 (or the ``dilations`` given); plus, with
``dilation_variants``, the paper's Figure 4 strategy for N = 2 and 3 (pool 2 everywhere; the
full-resolution block undilated, the deeper blocks' dilation rising: 1,d,...,d); times every
dataset and every seed. A search's space (:mod:`temseg.sweep.search.space`) is the same.
Pure planning: no torch, Ray or MLflow.
"""

from __future__ import annotations

from typing import Any

from temseg.config import ConfigError
from temseg.receptive_field import (
    Architecture,
    dilation_variants,
    format_seq,
    pool_product,
    pool_sequences,
    resolve_dilations,
)
from temseg.sweep.profile import SweepConfig
from temseg.trial import GRID, Dataset, Trial

FIG4_BLOCKS = (2, 3)  # the paper's dilation study used N = 2 and 3


def architectures(cfg: SweepConfig, patch_size: int) -> list[Architecture]:
    """The sweep's networks for one patch size, without duplicates, in a stable order."""
    out: list[Architecture] = []
    explicit_pools, explicit_dil = list(cfg.pool_seqs), list(cfg.dilation_sets)
    for n in cfg.blocks:
        if explicit_pools:
            seqs = [p for p in explicit_pools if len(p) == n]
        else:
            seqs = pool_sequences(n, kernels=cfg.kernels, patch_size=patch_size)
        dils = [d for d in explicit_dil if len(d) == n + 1] or [resolve_dilations(n, None)]
        for seq in seqs:
            for dil in dils:
                out.append(Architecture(n, seq, dil))
        if cfg.dilation_variants and not explicit_dil and n in FIG4_BLOCKS:
            out.extend(dilation_variants(n, patch_size=patch_size))
    seen, unique = set(), []
    for a in out:
        if a not in seen and a.rf_px < patch_size and patch_size % pool_product(a.pools) == 0:
            seen.add(a)
            unique.append(a)
    if explicit_pools:
        bad = [p for p in explicit_pools if patch_size % pool_product(p)]
        if bad:
            raise ConfigError(
                f"pool sequence(s) {[format_seq(p) for p in bad]} do not divide the "
                f"{patch_size} px patch (their product must divide it)"
            )
    if not unique and explicit_pools and not any(len(p) in cfg.blocks for p in explicit_pools):
        raise ConfigError(
            f"empty grid: no pool sequence in {list(cfg.pools)} fits blocks {list(cfg.blocks)} "
            "(an N-block network takes N pool kernels, e.g. 4-4 for N = 2)"
        )
    if not unique:
        raise ConfigError(
            f"empty grid: no architecture with blocks {list(cfg.blocks)}"
            f"{', pools ' + str(list(cfg.pools)) if cfg.pools else ''} has RF below the "
            f"{patch_size} px patch"
        )
    return unique


def make_trial(
    cfg: SweepConfig,
    ds: Dataset,
    arch: Architecture,
    seed: int,
    *,
    search: str = GRID,
    study: str | None = None,
) -> Trial:
    """The :class:`temseg.trial.Trial` of ``arch`` on ``ds`` with ``seed`` under ``cfg``'s
    protocol, its precision resolved ("auto" -> what this machine trains), validated."""
    train = cfg.train_config(ds.path, arch, seed)
    return Trial(ds, train, profile=cfg.profile, search=search, study=study)


def plan_trials(cfg: SweepConfig, datasets: list[Dataset]) -> list[Trial]:
    """The grid's trials: dataset x architecture x seed, in a stable order."""
    return [
        make_trial(cfg, ds, arch, seed)
        for ds in datasets
        for arch in architectures(cfg, ds.patch_size)
        for seed in cfg.seeds
    ]


def build_trials(
    cfg: SweepConfig,
    datasets: list[Dataset],
    *,
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str | None = None,
) -> list[dict[str, Any]]:
    """The grid's trials as Ray carries them: one ``{"train", "meta"}`` dict each."""
    return [
        t.to_ray(
            tracking_uri=tracking_uri,
            experiment_id=experiment_id,
            gpus_per_trial=cfg.gpus_per_trial,
            parent_run_id=parent_run_id,
        )
        for t in plan_trials(cfg, datasets)
    ]


def trial_table(cfg: SweepConfig, datasets: list[Dataset]) -> list[dict[str, Any]]:
    rows = []
    for ds in datasets:
        for a in architectures(cfg, ds.patch_size):
            rows.append(
                {
                    "dataset": ds.name,
                    "num_blocks": a.num_blocks,
                    "pools": format_seq(a.pools),
                    "dilations": format_seq(a.dilations),
                    "strategy": a.strategy,
                    "rf_px": a.rf_px,
                    "rf_nm": round(a.rf_px * ds.pixel_size_nm, 2),
                    "n_params": a.n_params,
                    "precision": cfg.precision_resolved,
                    "seeds": len(cfg.seeds),
                }
            )
    return rows
