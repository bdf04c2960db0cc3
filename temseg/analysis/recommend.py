"""The network a sweep recommends per dataset: the trial whose checkpoint users segment with.

Pure pandas on the per-trial table (:func:`temseg.analysis.collect.load_runs`, plus each
run's ``best_val_hard_dice``) and the study's answers (``answers.csv``,
:func:`temseg.analysis.answer.level_answers`). Per dataset:

1. each answered level (N, strategy) proposes one receptive field: its "enough" RF (the
   smallest tested RF at or above the plateau's onset) when there is one; otherwise (dice
   still rising, flat, or undetermined) the RF whose architecture has the best seed-mean
   validation dice among the level's trials;
2. among those proposals, the architecture with the best seed-mean validation dice wins
   (ties: fewer parameters, then the smaller RF); a dataset without any answered level
   falls back to the best seed-mean validation dice over all its finished trials;
3. among that architecture's seeds, the trial with the best validation dice (ties: the
   lower seed).

Choices use validation dice, never test dice, so the test split stays a fair estimate of the
recommended network (the "enough" RF itself comes from the study's test-dice answer).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from temseg.analysis import plateau

VAL_METRIC = "best_val_hard_dice"
ARCH = ["num_blocks", "pools", "dilations"]
RECOMMENDED_COLUMNS = [
    "dataset",
    "run_id",
    "seed",
    "num_blocks",
    "pools",
    "dilations",
    "rf_px",
    "pixel_size_nm",
    VAL_METRIC,
    "test_hard_dice",
    "reason",
]


def _best_arch(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials of the architecture with the best seed-mean validation dice."""
    means = trials.groupby(ARCH, dropna=False)[VAL_METRIC].mean().reset_index(name="_mean")
    means = means.merge(trials[ARCH + ["rf_px", "n_params"]].drop_duplicates(ARCH), on=ARCH)
    best = means.sort_values(["_mean", "n_params", "rf_px"], ascending=[False, True, True])
    key = best.iloc[0][ARCH]
    return trials[(trials[ARCH] == key.values).all(axis=1)]


def recommended_trials(trials: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """One recommended trial per dataset (columns :data:`RECOMMENDED_COLUMNS`).

    ``trials`` needs ``dataset, num_blocks, pools, dilations, rf_px, n_params, seed, status,
    run_id, pixel_size_nm, test_hard_dice`` and ``best_val_hard_dice``; ``answers`` needs
    ``dataset, num_blocks, strategy, enough_rf_px``. See the module docstring for the rule.
    """
    ok = trials[(trials["status"] == "FINISHED") & np.isfinite(trials[VAL_METRIC].astype(float))]
    rows = []
    for dataset, level_trials in ok.groupby("dataset", sort=True):
        proposals = []
        for a in answers[answers["dataset"] == dataset].itertuples(index=False):
            level = level_trials[level_trials["num_blocks"] == a.num_blocks]
            members = plateau._strategy_members(level).get(a.strategy)
            if members is None or members.empty:
                continue
            enough = float(a.enough_rf_px)
            at = members[members["rf_px"] == enough] if math.isfinite(enough) else members[:0]
            if len(at):
                proposals.append(
                    (_best_arch(at), f"enough RF of N={a.num_blocks} {a.strategy}: {enough:.0f} px")
                )
            else:
                proposals.append(
                    (
                        _best_arch(members),
                        f"no enough RF for N={a.num_blocks} {a.strategy}: best seed-mean "
                        "validation dice",
                    )
                )
        if not proposals:
            proposals.append(
                (_best_arch(level_trials), "no answer: best seed-mean validation dice")
            )
        arch, reason = max(
            proposals,
            key=lambda p: (
                p[0][VAL_METRIC].mean(),
                -int(p[0]["n_params"].iloc[0]),
                -int(p[0]["rf_px"].iloc[0]),
            ),
        )
        best = arch.sort_values([VAL_METRIC, "seed"], ascending=[False, True]).iloc[0]
        rows.append({**{c: best[c] for c in RECOMMENDED_COLUMNS[:-1]}, "reason": reason})
    return pd.DataFrame(rows, columns=RECOMMENDED_COLUMNS)
