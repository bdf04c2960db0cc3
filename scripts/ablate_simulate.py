#!/usr/bin/env python
"""The multislice realism ablation (issue 22, docs/physics.md "Ablation"): 5 nm Au stores at
0.02152 nm/px and 423 e/A^2 under the version 1 model, each realism knob alone and the
chosen combination, every one scored by the authors' five networks (`temseg realism`).

Knobs that act after the multislice (detector, illumination, labels) reuse the renderings of
the store they modify: the same draws, the same bytes as simulating anew (finish_image), so
those rows differ from their base only by the knob. Renderings are cached per image under
--cache (pickle), so an interrupted run resumes.

    python scripts/ablate_simulate.py render   # all groups, one at a time, one thread
    python scripts/ablate_simulate.py probe --out docs/physics/ablation.csv
    python scripts/ablate_simulate.py field --only combo --levels 0,0.5 --ratios 1,2

The groups render the version 1 model with the knobs of each group, so field context (the
cell standardized in a modelled field, version 2's default) is off unless a row sets it;
the `field` stage re-standardizes a row's stored cells in a grid of fields (carbon level,
field sd ratio) and prints the probe per value, as storing them would (an affine map).

Rows: NAME = (render group, settings applied after the multislice). --only NAME[,NAME] limits
the run. Tuning seed 41; the combination is confirmed on seed 7 (`combo-seed7`), not tuned on.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from temseg.data import simulate as sim  # noqa: E402

PRESET = "hr-5nm"  # 5 nm Au, 0.02152 nm/px, 423 e/A^2
# real data: particles cover 2.2 % of the field and a kept 512 px patch holds 9.4 % particle
# pixels (10/50/90 %: 2.0/6.8/17.3 %); one particle centred up to 2 nm outside the cell and
# cut there gives 9.4 % (1.6/7.3/20.7 %)
REAL_AREA = {"coverage": 0.022, "field_margin": 0.4}
BACKGROUND = {"carbon_thickness_nm": (5.0, 20.0), "contamination_per_100nm2": 2.0}
# the chosen combination: the sample-level knobs here, the rest applied after the multislice
COMBO = {"zone_axis_fraction": 0.0, **REAL_AREA}
COMBO_AFTER = {"illumination_variation": 0.1, "detector": "ideal"}
# field context chosen on `combo`, seed 41 (the `field` stage): first with the ideal camera,
# then with the Ceta, which seed 7 preferred and temseg simulate took as its default
FIELD = {"field_carbon_level": 0.5, "field_std_ratio": 1.5}
CETA_FIELD = {"detector": "ceta", "field_carbon_level": 0.7, "field_std_ratio": 2.0}
FIELD_FILM = {"field_carbon_level": 0.75, "field_std_ratio": 1.5}  # on the 5-20 nm film
# group: (seed, image_size, images, sample-level settings)
GROUPS = {
    "v1": (41, 512, 24, {}),
    "area": (41, 512, 10, REAL_AREA),
    "orientation": (41, 512, 8, {"zone_axis_fraction": 0.0}),
    "motion": (41, 512, 6, {"motion_frames": 3}),
    "background": (41, 512, 6, BACKGROUND),
    "combo": (41, 512, 12, COMBO),
    "combo-seed7": (7, 512, 44, COMBO),
    # the combination on a 5-20 nm film with contamination (the background knob)
    # a third seed, rendered after seed 7 had chosen between the ideal and the Ceta camera
    "combo-seed11": (11, 512, 40, COMBO),
    "combo-background": (41, 512, 12, {**COMBO, **BACKGROUND}),
    "combo-background-seed7": (7, 512, 44, {**COMBO, **BACKGROUND}),
}
# row: (group, settings applied after the multislice)
ROWS = {
    "v1": ("v1", {}),
    "detector-ideal": ("v1", {"detector": "ideal"}),
    "detector-ceta": ("v1", {"detector": "ceta"}),
    "illumination": ("v1", {"illumination_variation": 0.1}),
    "labels-polygon": ("v1", {"label_style": "polygon"}),
    "orientation": ("orientation", {}),
    "area": ("area", {}),
    "motion": ("motion", {}),
    "background": ("background", {"illumination_variation": 0.1}),
    "combo": ("combo", COMBO_AFTER),
    # choosing the settings after the multislice on the combination (seed 41 only)
    "combo-defocus6": ("combo", {**COMBO_AFTER, "defocus_nm": (-6.0, 6.0)}),
    "combo-defocus3": ("combo", {**COMBO_AFTER, "defocus_nm": (-3.0, 3.0)}),
    "combo-poisson": ("combo", {**COMBO_AFTER, "detector": "poisson"}),
    "combo-ceta": ("combo", {**COMBO_AFTER, "detector": "ceta"}),
    "combo-seed7": ("combo-seed7", COMBO_AFTER),
    # the combination standardized in its modelled field (version 2's default)
    "combo-field": ("combo", {**COMBO_AFTER, **FIELD}),
    "combo-seed7-field": ("combo-seed7", {**COMBO_AFTER, **FIELD}),
    "background-field": ("background", {"illumination_variation": 0.1, **FIELD}),
    # the combination's finishing and field on `area` (60 % on a zone axis, as v1)
    "area-field": ("area", {**COMBO_AFTER, **FIELD}),
    "combo-ceta-field": ("combo", {**COMBO_AFTER, "detector": "ceta", **FIELD}),
    # the Ceta with the field that scored best on seed 41 (`field --only combo-ceta`)
    "combo-ceta-field07": ("combo", {**COMBO_AFTER, **CETA_FIELD}),
    "combo-seed7-ceta-field07": ("combo-seed7", {**COMBO_AFTER, **CETA_FIELD}),
    "combo-seed11-field": ("combo-seed11", {**COMBO_AFTER, **FIELD}),
    "combo-seed11-ceta-field07": ("combo-seed11", {**COMBO_AFTER, **CETA_FIELD}),
    "combo-background": ("combo-background", COMBO_AFTER),
    "combo-background-field": ("combo-background", {**COMBO_AFTER, **FIELD}),
    "combo-background-ceta": ("combo-background", {**COMBO_AFTER, "detector": "ceta"}),
    # the film's own best field on seed 41 (`field --only combo-background`), then seed 7
    "combo-background-field075": ("combo-background", {**COMBO_AFTER, **FIELD_FILM}),
    "combo-background-seed7-field075": ("combo-background-seed7", {**COMBO_AFTER, **FIELD_FILM}),
    "combo-background-seed7-field": ("combo-background-seed7", {**COMBO_AFTER, **FIELD}),
}


def group_params(group: str, after: dict) -> tuple[int, int, sim.SimParams]:
    seed, size, images, settings = GROUPS[group]
    params = sim.sim_params(PRESET, image_size=size, v1=True, **{**settings, **after})
    return seed, images, params


def rendered(cache: Path, group: str, i: int) -> tuple[sim.Draws, list | np.ndarray, int, float]:
    """Image i of a group: draws, exit waves (one per sub-exposure), slices, seconds
    (cached). Caches of the first runs hold the intensity through the group's lens instead
    of the waves (and draws without lens variates, recovered here from the seed)."""
    path = cache / group / f"{i:03d}.pkl"
    seed, _, params = group_params(group, {})
    if path.exists():
        d, waves, n_slices, seconds = pickle.loads(path.read_bytes())
        if not hasattr(d, "lens_unit"):  # first runs: the lens itself
            rng = np.random.default_rng([seed, i])
            rng.integers(2**63, size=2)  # build_sample's two stream seeds
            unit = sim.draw_lens_unit(rng)
            assert sim.lens_of(params, unit) == d.__dict__["lens"]
            d = sim.Draws(d.carbon, d.gold, d.particles, unit, d.seeds)
        return d, waves, n_slices, seconds
    t0 = time.perf_counter()
    d = sim.draw_image(params, np.random.default_rng([seed, i]))
    waves, n_slices = sim.exit_waves(params, d)
    out = (d, waves, n_slices, time.perf_counter() - t0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(out))
    tmp.replace(path)  # a reader never sees half a file
    return out


def render(cache: Path, groups: list[str]) -> None:
    for group in groups:
        _, images, _ = group_params(group, {})
        for i in range(images):
            *_, seconds = rendered(cache, group, i)
            print(f"{group} {i + 1}/{images} {seconds:.1f} s", flush=True)


def write_row(cache: Path, stores: Path, row: str) -> Path:
    group, after = ROWS[row]
    seed, images, params = group_params(group, after)
    render_params = group_params(group, {})[2]

    def source(p: sim.SimParams, i: int) -> sim.Simulated:
        d, waves, n_slices, seconds = rendered(cache, group, i)
        if isinstance(waves, np.ndarray):  # an intensity: the group's own lens only
            assert all(getattr(p, r) == getattr(render_params, r) for r in sim.RANGES)
            intensity = waves
        else:
            intensity = sim.waves_intensity(waves, sim.lens_of(p, d.lens_unit), p.voltage_kv)
        return sim.finish_image(p, d, intensity, n_slices, seconds)

    overrides = {k: v for k, v in params.to_dict().items() if k not in ("preset", "version")}
    return sim.make_simulated_store(
        stores / f"{row}.zarr",
        preset=PRESET,
        images=images,
        seed=seed,
        overwrite=True,
        progress=False,
        image_source=source,
        v1=True,  # as group_params: what the row does not set is the version 1 model's
        **overrides,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", choices=("render", "stores", "probe", "shift", "field"))
    ap.add_argument("--only", help="comma-separated group (render) or row names")
    ap.add_argument("--cache", type=Path, default=Path("data/ablation/cache"))
    ap.add_argument("--stores", type=Path, default=Path("data/ablation"))
    ap.add_argument("--out", type=Path, help="probe (or shift / field) table (CSV) to write")
    ap.add_argument(
        "--models", default=None, help="the authors' networks (temseg realism's default)"
    )
    ap.add_argument("--levels", default="0,0.25,0.5,0.75,1", help="field stage: carbon levels")
    ap.add_argument("--ratios", default="0.75,1,1.5,2", help="field stage: field sd ratios")
    args = ap.parse_args(argv)
    sim.require_sim(threads=1)
    if args.stage == "render":
        render(args.cache, args.only.split(",") if args.only else list(GROUPS))
        return 0
    rows = args.only.split(",") if args.only else list(ROWS)
    if args.stage == "stores":
        for row in rows:
            print(write_row(args.cache, args.stores, row), flush=True)
        return 0
    if args.stage in ("shift", "field"):
        table = []
        for row in rows:
            if args.stage == "shift":
                variants = shift_variants()
            else:
                variants = field_variants(_floats(args.levels), _floats(args.ratios))
            table += score_variants(args.stores / f"{row}.zarr", variants, args.models)
        if args.out:
            import pandas as pd

            args.out.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(table).to_csv(args.out, index=False, float_format="%.4f")
        return 0
    return probe_rows(args.stores, rows, args.out, args.models)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def shift_variants() -> list[tuple[str, Callable]]:
    """The standardized patches shifted and scaled: which change of the intensity scale
    turns the networks' carbon into background."""
    return [
        (label, lambda im, _m, a=scale, b=shift: im * a + b)
        for label, scale, shift in [("as stored", 1, 0), ("+0.25", 1, 0.25), ("+0.5", 1, 0.5),
                                    ("-0.5", 1, -0.5), ("x2", 2, 0), ("x0.5", 0.5, 0)]
    ]  # fmt: skip


def field_variants(levels: list[float], ratios: list[float]) -> list[tuple[str, Callable]]:
    """Each patch standardized in a modelled field (the cell's carbon at ``level`` field sd,
    the field's sd ``ratio`` x the carbon's): what `temseg simulate --field-carbon-level
    LEVEL --field-std-ratio RATIO` stores, from the same renderings."""
    from temseg.data.sim_background import standardize_in_field

    def variant(level: float, ratio: float) -> Callable:
        def apply(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
            return np.stack([
                standardize_in_field(im, m, carbon_level=level, std_ratio=ratio)
                for im, m in zip(images, masks, strict=True)
            ])  # fmt: skip

        return apply

    return [(f"level {lv:+g}, ratio {r:g}", variant(lv, r)) for lv in levels for r in ratios]


def score_variants(
    store: Path, variants: list[tuple[str, Callable]], models: str | None
) -> list[dict]:
    """The networks on a store's patches transformed by each variant ``(images, masks) ->
    images``: per network dice (predicted fraction) and the mean dice, printed; the rows
    (store, variant, network, dice, pred_fraction, true_fraction) returned."""
    from temseg import realism
    from temseg.legacy import load_legacy_checkpoint

    _, images, masks = realism.load_store(store, split="all")
    band = realism.boundary_band(masks)
    files = realism.find_models(models or realism.DEFAULT_MODELS)
    nets = [(realism.network_name(f), load_legacy_checkpoint(f)) for f in files]
    print(f"{store.stem}: {len(images)} patches, true fraction {masks.mean():.3f}", flush=True)
    rows = []
    for label, transform in variants:
        x = transform(images, masks).astype(np.float32)
        cells, dice = [], []
        for name, net in nets:
            sc = realism.mask_scores(realism.predict_patches(net, x), masks, band)
            dice.append(sc["dice"])
            cells.append(f"{name} {sc['dice']:.3f} ({sc['pred_fraction']:.3f})")
            rows.append({"store": store.stem, "variant": label, "network": name,
                         "dice": sc["dice"], "pred_fraction": sc["pred_fraction"],
                         "true_fraction": sc["true_fraction"]})  # fmt: skip
        print(f"| {store.stem} | {label} | " + " | ".join(cells) + f" | {np.mean(dice):.3f} |",
              flush=True)  # fmt: skip
    return rows


def probe_rows(stores: Path, rows: list[str], out: Path | None, models: str | None) -> int:
    """`temseg realism` on each row's store: the long CSV (--out) and a markdown table."""
    import pandas as pd

    from temseg.realism import DEFAULT_MODELS, probe

    frames = []
    for row in rows:
        frame = probe([stores / f"{row}.zarr"], models=models or DEFAULT_MODELS).frame()
        frame.insert(0, "row", row)
        frames.append(frame)
        print(markdown(frame), flush=True)
    table = pd.concat(frames, ignore_index=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.drop(columns=["store"]).to_csv(out, index=False, float_format="%.4f")
        out.with_suffix(".md").write_text(markdown(table) + "\n")
    return 0


def markdown(table) -> str:
    """Per row: each network's dice (pred / true particle fraction), and the mean's dice,
    precision and recall."""
    nets = [n for n in dict.fromkeys(table["network"]) if n != "mean"]
    head = "| row | " + " | ".join(nets) + " | mean dice | precision | recall | true fraction |"
    lines = [head, "|---" * (len(nets) + 5) + "|"]
    for row, g in table.groupby("row", sort=False):
        by = g.set_index("network")
        cells = [
            f"{by.at[n, 'dice']:.3f} ({by.at[n, 'pred_fraction']:.2f})" for n in nets
        ]
        m = by.loc["mean"]
        lines.append(
            f"| {row} | " + " | ".join(cells) + f" | **{m['dice']:.3f}** | "
            f"{m['precision']:.3f} | {m['recall']:.3f} | {m['true_fraction']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
