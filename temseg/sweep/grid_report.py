"""After a grid has trained: the summary table, the report, the registry, the parent's summary.

The decisions after a sweep live here, above the MLflow writer: which network to register
(the report's recommendation, :func:`temseg.analysis.recommend.recommended_trials`) and what
the parent run summarizes (the report's tables). :mod:`temseg.tracking` only records them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from temseg import tracking
from temseg.receptive_field import Architecture, format_seq, network_label
from temseg.tables import print_table
from temseg.trial import TrialResult


def print_summary(results: list[TrialResult], seconds: float) -> None:
    """The sweep's trials, one line each, by dataset and receptive field."""
    rows = []
    for r in sorted(results, key=lambda r: (r.trial.dataset, r.trial.architecture.rf_px)):
        t, arch, m = r.trial.train, r.trial.architecture, r.metrics
        rows.append(
            {
                "dataset": r.trial.dataset,
                "N": arch.num_blocks,
                "pools": format_seq(arch.pools),
                "dilations": format_seq(arch.dilations),
                "seed": t.seed,
                "rf_px": arch.rf_px,
                "rf_nm": r.trial.rf_nm,
                "best_val_dice": f"{m['best_val_hard_dice']:.4f}"
                if "best_val_hard_dice" in m
                else "",
                "test_hard_dice": f"{m['test_hard_dice']:.4f}" if "test_hard_dice" in m else "",
                "best_epoch": f"{m['best_epoch']:.0f}/{t.epochs}"
                + (" still improving" if m["best_epoch"] >= t.epochs else "")
                if "best_epoch" in m
                else "",
                "status": "ok" if r.error is None else "FAILED",
            }
        )
    failed = sum(r.error is not None for r in results)
    print(
        f"\nsweep finished in {seconds:.0f} s: {len(results) - failed} trials ok, {failed} failed"
    )
    print_table(rows)


def write_report(experiment: str, tracking_uri: str, out_dir: Path) -> None:
    try:
        from temseg.analysis import report
    except ImportError:
        return
    try:
        path = report.write_report(experiment, tracking_uri, out_dir)
        import pandas as pd

        answers = pd.read_csv(path / "answers.csv")
        print("\nanswer (which receptive field is enough):", flush=True)
        for sentence in answers["sentence"]:
            print(f"- {sentence}", flush=True)
        print(f"report: {path / 'report.html'}", flush=True)
    except Exception as exc:  # the sweep's results are in MLflow whatever the report does
        print(f"report: not written ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)


def register_recommended(uri: str, experiment: str, report_dir: Path) -> list[dict[str, Any]]:
    """Register, per dataset, the sweep's recommended trial as ``temseg-<dataset>@recommended``.

    The trial is chosen by :func:`temseg.analysis.recommend.recommended_trials` from the
    report's ``recommendation.csv`` (in ``report_dir``) and the experiment's runs. Returns one dict
    per dataset (the chosen trial, ``model`` and ``version``).
    """
    import pandas as pd

    from temseg.analysis import collect
    from temseg.analysis.recommend import recommended_trials
    from temseg.data.preprocess import store_flat_field

    rec_csv = Path(report_dir) / "recommendation.csv"
    if not rec_csv.is_file():
        raise FileNotFoundError(f"{rec_csv}: no recommendation (the report was not written)")
    recommendation = pd.read_csv(rec_csv)
    trials = collect.load_runs(experiment, tracking_uri=uri)  # carries best_val_hard_dice
    data_paths = dict(zip(trials["run_id"], trials["data_path"], strict=True))
    out = []
    for r in recommended_trials(trials, recommendation).to_dict("records"):
        name = tracking.registered_model_name(r["dataset"])
        card = {
            k: r[k]
            for k in ("dataset", "seed", "num_blocks", "pools", "dilations", "rf_px", "reason")
        }
        card = {k: v.item() if hasattr(v, "item") else v for k, v in card.items()}
        # segment applies the flat field the network trained with (its store's preprocessing)
        card["flat_field"] = store_flat_field(data_paths[r["run_id"]])
        # segment's domain guard and seed ensembles: the training store's contrast score
        # travels with the model, and every seed of the recommended network becomes a version
        # with alias seed-<seed> (the recommended one too); `recommended` stays the best by
        # validation. `temseg segment --model models:/<name>@seeds` uses them all.
        same_net = (trials[["num_blocks", "pools", "dilations"]]
                    == [r["num_blocks"], r["pools"], r["dilations"]]).all(axis=1)  # fmt: skip
        seeds = trials[
            (trials["status"] == "FINISHED") & (trials["dataset"] == r["dataset"]) & same_net
        ].sort_values("seed")
        contrast = float(seeds["contrast"].iloc[0]) if "contrast" in seeds else float("nan")
        if contrast == contrast:
            card["contrast"] = contrast
        pixel_size_nm = float(r["pixel_size_nm"])
        version = tracking.register_checkpoint(
            uri, r["run_id"], name, pixel_size_nm=pixel_size_nm, card=card
        )
        for s in seeds.itertuples(index=False):
            alias = f"seed-{int(s.seed)}"
            if s.run_id == r["run_id"]:
                tracking.set_alias(uri, name, alias, version)
                continue
            seed_card = {**card, "seed": int(s.seed), "reason": "a seed of the recommended network"}
            tracking.register_checkpoint(
                uri, s.run_id, name, pixel_size_nm=pixel_size_nm, card=seed_card, alias=alias
            )
        out.append({**r, "model": name, "version": version})
    return out


def register_after_sweep(uri: str, experiment: str, report_dir: Path) -> None:
    """The sweep's last step: register the recommended networks and say so; a failure here
    is reported and never fails the sweep (its results are in MLflow either way)."""
    try:
        for r in register_recommended(uri, experiment, report_dir):
            print(
                f"registry: {r['model']}@{tracking.RECOMMENDED_ALIAS} = version {r['version']} (run "
                f"{r['run_id']}, {network_label(r['num_blocks'], r['pools'], r['dilations'])}, "
                f"RF {r['rf_px']} px, seed {r['seed']}, val dice "
                f"{r['best_val_hard_dice']:.4f}; {r['reason']}); segment with\n"
                f"  temseg segment IMAGE --model models:/{r['model']}@{tracking.RECOMMENDED_ALIAS} "
                f"--tracking-uri {uri} --out seg/",
                flush=True,
            )
    except Exception as exc:
        print(f"registry: not updated ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)


def summary_for_parent(report_dir: Path) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and tags of a grid's parent run from its report's ``recommendation.csv`` and
    ``summary.csv``: per dataset the best seed-mean test dice, the plateau dice, the
    recommended (cheapest) and smallest-RF networks; the sentences become the description."""
    import pandas as pd

    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    summary_csv = Path(report_dir) / "summary.csv"
    if summary_csv.is_file():
        summary = pd.read_csv(summary_csv)
        for ds, rows in summary.groupby("dataset"):
            metrics[f"{ds}/best_test_dice"] = float(rows["test_hard_dice_mean"].max())
    rec_csv = Path(report_dir) / "recommendation.csv"
    if rec_csv.is_file():
        sentences = []
        for r in pd.read_csv(rec_csv).to_dict("records"):
            ds = r["dataset"]
            metrics[f"{ds}/plateau_dice"] = float(r["plateau_dice"])
            for which, rf in (("cheapest", "cheapest_rf_px"), ("smallest_rf", "smallest_rf_px")):
                if isinstance(r.get(f"{which}_network"), str):
                    metrics[f"{ds}/{rf}"] = float(r[rf])
                    tags[f"temseg.{which}.{ds}"] = (
                        f"{Architecture.from_name(r[f'{which}_network']).label}, RF "
                        f"{int(r[rf])} px, dice "
                        f"{r[f'{which}_dice_mean']:.3f} +- {r[f'{which}_dice_std']:.3f}"
                    )
            tags[f"temseg.status.{ds}"] = str(r["status"])
            if isinstance(r.get("sentence"), str):
                sentences.append(r["sentence"])
        if sentences:
            tags[tracking.TAG_NOTE] = "\n\n".join(sentences)
    return metrics, tags
