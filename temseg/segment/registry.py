"""Several networks at once: a registered model's seeds, an explicit list, or ``auto``.

A sweep registers every seed of its recommended network as versions of ``temseg-<dataset>``
with aliases ``seed-<seed>``; the best by validation dice also holds ``recommended``
(:func:`temseg.tracking.register_recommended`). ``--model models:/<name>@seeds`` stands for
those seed versions whose architecture (tags ``temseg.num_blocks``, ``temseg.pools``,
``temseg.dilations``) is the ``recommended`` one's. ``--model auto`` considers the
``recommended`` version of every registered model of a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from temseg.segment.models import SegmentModel, load_model, resolve_uri

if TYPE_CHECKING:
    import torch

SEEDS = "seeds"  # the pseudo-alias of a registered model's seed versions
SEED_ALIAS = "seed-"  # the aliases the sweep gives them
RECOMMENDED = "recommended"
ARCH_TAGS = ("temseg.num_blocks", "temseg.pools", "temseg.dilations")
SAME_PIXEL_RTOL = 0.01


def expand_spec(spec: str, tracking_uri: str | None) -> list[str]:
    """``models:/<name>@seeds`` -> ``models:/<name>/<version>`` per seed; others unchanged."""
    if not (spec.startswith("models:/") and spec.endswith(f"@{SEEDS}")):
        return [spec]
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = resolve_uri(tracking_uri)
    name = spec[len("models:/") : -len(SEEDS) - 1].strip("/")
    client = MlflowClient(uri, registry_uri=uri)
    try:
        model = client.get_registered_model(name)
        best = client.get_model_version_by_alias(name, RECOMMENDED)
    except MlflowException as exc:
        raise ValueError(f"--model {spec}: {exc.message.splitlines()[0]} (at {uri})") from None
    arch = [best.tags.get(t) for t in ARCH_TAGS]
    versions = sorted(
        {
            int(v)
            for alias, v in model.aliases.items()
            if alias.startswith(SEED_ALIAS)
            and [client.get_model_version(name, v).tags.get(t) for t in ARCH_TAGS] == arch
        }
        | {int(best.version)}
    )
    return [f"models:/{name}/{v}" for v in versions]


def auto_candidates(tracking_uri: str | None) -> list[str]:
    """``models:/<name>@recommended`` for every registered model of the store that has one."""
    from mlflow import MlflowClient

    uri = resolve_uri(tracking_uri)
    client = MlflowClient(uri, registry_uri=uri)
    names = sorted(
        m.name for m in client.search_registered_models() if RECOMMENDED in (m.aliases or {})
    )
    if not names:
        raise ValueError(f"--model auto: no registered model with alias {RECOMMENDED!r} at {uri}")
    return [f"models:/{n}@{RECOMMENDED}" for n in names]


def load_models(
    specs: Sequence[str],
    *,
    model_pixel_size_nm: float | None = None,
    tracking_uri: str | None = None,
    device: str | torch.device = "cpu",
    same_pixel_size: bool = True,
) -> list[SegmentModel]:
    """Load every network of ``specs`` (``@seeds`` expanded). An ensemble must share one
    training pixel size (within 1 %), or the members would see different scales; candidates
    for ``auto`` (``same_pixel_size=False``) need not."""
    expanded = [s for spec in specs for s in expand_spec(spec, tracking_uri)]
    models = [
        load_model(
            s, model_pixel_size_nm=model_pixel_size_nm, tracking_uri=tracking_uri, device=device
        )
        for s in expanded
    ]
    first = models[0]
    for m in models[1:] if same_pixel_size else []:
        if abs(m.pixel_size_nm - first.pixel_size_nm) > SAME_PIXEL_RTOL * first.pixel_size_nm:
            raise ValueError(
                f"--model: an ensemble's networks must be trained at one pixel size; "
                f"{m.source} was trained at {m.pixel_size_nm:g} nm/px, {first.source} at "
                f"{first.pixel_size_nm:g} nm/px"
            )
    return models
