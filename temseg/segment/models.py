"""Load the networks to segment with: temseg checkpoints, MLflow runs and registered models,
the paper authors' published checkpoints; each with the pixel size it was trained at.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temseg.schema import MODEL_CARD

if TYPE_CHECKING:  # torch is imported where it runs, so `temseg --help` stays instant
    import torch

    from temseg.model import ResidualUNet

CHECKPOINT_NAMES = ("best.pt", "model.pt")
AUTHORS_PIXEL_SIZE_NM = 0.02152  # the paper's 5 nm Au data (Table 1)


@dataclass
class SegmentModel:
    """A network ready to segment, with the pixel size of the data it was trained on."""

    net: ResidualUNet
    pixel_size_nm: float
    source: str
    kind: str  # "temseg", "mlflow" or "legacy"
    card: dict[str, Any] = field(default_factory=dict)
    contrast: float | None = None  # contrast score of the training store (temseg.data.contrast)
    store: str | None = None  # the patch store it was trained on (its config's ``data``)

    @property
    def flat_field(self) -> bool:
        """Whether the network trained on flat-fielded images: its registry card, else the
        store its checkpoint names (if still there); the authors' networks did not."""
        return bool(self.card.get("flat_field", False))

    def describe(self) -> str:
        c = self.net.config
        trained = "" if self.contrast is None else f", training contrast {self.contrast:.3g}"
        return (
            f"{self.source} ({self.kind}): {c.label}, RF {c.rf_px} px, trained at "
            f"{self.pixel_size_nm:g} nm/px{trained}"
        )


def _is_mlflow_uri(spec: str) -> bool:
    return spec.startswith(("runs:/", "models:/"))


def resolve_uri(tracking_uri: str | None) -> str:
    """The MLflow store: ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the project's."""
    from temseg.analysis import collect

    return collect._check_uri(
        tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or collect.default_tracking_uri()
    )


def _download_mlflow(spec: str, tracking_uri: str | None, dst: Path) -> tuple[Path, dict]:
    """Download a ``runs:/`` or ``models:/name@alias`` (``models:/name/version``) artifact.

    Returns the local path and the model version's tags (empty for ``runs:/``).
    """
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from temseg.analysis import collect

    uri = resolve_uri(tracking_uri)
    tags: dict = {}
    try:
        source = spec
        if spec.startswith("models:/"):
            client = MlflowClient(uri, registry_uri=uri)
            rest = spec[len("models:/") :].strip("/")
            if "@" in rest:
                name, alias = rest.split("@", 1)
                try:
                    mv = client.get_model_version_by_alias(name, alias)
                except MlflowException as exc:
                    names = sorted(m.name for m in client.search_registered_models())
                    raise ValueError(
                        f"--model {spec}: no registered model {name!r} with alias {alias!r} at "
                        f"{uri} ({exc.message.splitlines()[0]}); registered models there: "
                        f"{names or 'none'}"
                    ) from None
            elif "/" in rest:
                name, version = rest.rsplit("/", 1)
                mv = client.get_model_version(name, version)
            else:
                raise ValueError(
                    f"--model {spec}: give models:/<name>@<alias> or models:/<name>/<version>"
                )
            source, tags = mv.source, dict(mv.tags)
        with collect._quiet_downloads():
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(dst), tracking_uri=uri
            )
    except MlflowException as exc:
        raise ValueError(f"--model {spec}: {exc.message.splitlines()[0]} (at {uri})") from None
    return Path(path), tags


def _checkpoint_in(folder: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.rglob("*.pt"))
    if len(found) == 1:
        return found[0]
    raise ValueError(
        f"{folder}: expected one temseg checkpoint ({' or '.join(CHECKPOINT_NAMES)}), found "
        f"{[str(p.relative_to(folder)) for p in found] or 'none'}"
    )


def _carried(config: dict, card: dict, key: str) -> float | None:
    """``pixel_size_nm`` or ``contrast`` a temseg checkpoint carries: its config, its model
    card, or the attributes of the store it was trained on, if that is still there."""
    for source in (config, card):
        if source.get(key) is not None:
            return float(source[key])
    data = config.get("data")
    if data and Path(data).exists():
        from temseg.data.store import StoreError, read_attrs

        try:
            value = read_attrs(data)[key]
        except (StoreError, KeyError, OSError):
            return None
        return None if value is None else float(value)
    return None


def load_model(
    spec: str,
    *,
    model_pixel_size_nm: float | None = None,
    tracking_uri: str | None = None,
    device: str | torch.device = "cpu",
) -> SegmentModel:
    """Load a network to segment with, and the pixel size it was trained at.

    Parameters
    ----------
    spec
        A temseg checkpoint (file, or a folder holding ``best.pt``), an MLflow URI
        (``runs:/<run_id>/<path>``, ``models:/<name>@<alias>``, ``models:/<name>/<version>``)
        or one of the paper authors' published ``.h5`` checkpoints.
    model_pixel_size_nm
        The training pixel size, required for the authors' checkpoints (they carry none; the
        paper's networks were trained at 0.02152 nm/px) and for temseg checkpoints whose
        pixel size cannot be found. Given for a checkpoint that carries one, it must agree.
    tracking_uri
        MLflow store for the URIs (default ``$MLFLOW_TRACKING_URI``, else the project's
        ``mlruns.db``).

    Notes
    -----
    Nothing here unpickles code: temseg checkpoints load with ``torch.load(weights_only=
    True)`` (:func:`temseg.model.load_checkpoint`), the authors' files through the
    allow-listed importer of :mod:`temseg.legacy`. A temseg checkpoint's pixel size comes
    from its config, else the ``temseg_model.json`` card beside it (registered models), else
    the patch store it was trained on, if that is still there.
    """
    import torch

    if model_pixel_size_nm is not None and not model_pixel_size_nm > 0:
        raise ValueError(f"--model-pixel-size-nm must be > 0, got {model_pixel_size_nm}")
    with tempfile.TemporaryDirectory(prefix="temseg-model-") as tmp:
        path, card, kind = _locate(spec, tracking_uri, Path(tmp))
        net, config, kind = _load_net(spec, path, kind)
    pixel = _pixel_size(spec, kind, config, card, model_pixel_size_nm)
    # channels-last is what makes these 4-to-64-channel convolutions fast on CPUs (SPEC.md 5)
    net = net.to(device).to(memory_format=torch.channels_last).eval()
    contrast = None if kind == "legacy" else _carried(config, card, "contrast")
    if kind != "legacy" and "flat_field" not in card:  # a checkpoint file: ask its store
        from temseg.data.preprocess import store_flat_field

        card["flat_field"] = store_flat_field(config.get("data"))
    store = None if kind == "legacy" else config.get("data")
    return SegmentModel(net, pixel, str(spec), kind, card, contrast, store or None)


def _locate(spec: str, tracking_uri: str | None, tmp: Path) -> tuple[Path, dict, str]:
    """The checkpoint file ``spec`` names (downloaded into ``tmp`` for an MLflow URI), its
    model card (``temseg_model.json`` beside it, completed by the model version's tags) and
    its kind so far ("mlflow" or "temseg")."""
    if _is_mlflow_uri(spec):
        path, tags = _download_mlflow(spec, tracking_uri, tmp)
        kind = "mlflow"
    else:
        path, tags, kind = Path(spec), {}, "temseg"
        if not path.exists():
            raise FileNotFoundError(f"--model {spec}: no such file")
    card: dict = {}
    if path.is_dir():
        if (path / MODEL_CARD).is_file():
            card = json.loads((path / MODEL_CARD).read_text())
        path = _checkpoint_in(path)
    elif (path.parent / MODEL_CARD).is_file():
        card = json.loads((path.parent / MODEL_CARD).read_text())
    for key in ("pixel_size_nm", "contrast"):
        if tags.get(f"temseg.{key}") and key not in card:
            card[key] = float(tags[f"temseg.{key}"])
    return path, card, kind


def _load_net(spec: str, path: Path, kind: str) -> tuple[ResidualUNet, dict, str]:
    """A temseg checkpoint, else (not from MLflow) one of the authors': the network, its
    config ({} for the authors') and its kind."""
    from temseg.model import load_checkpoint

    try:
        net, config = load_checkpoint(path)
    except ValueError as exc:
        if kind == "mlflow":
            raise ValueError(f"--model {spec}: {exc}") from None
        from temseg.legacy import LegacyCheckpointError, load_legacy_checkpoint

        try:
            return load_legacy_checkpoint(path), {}, "legacy"
        except LegacyCheckpointError as legacy_exc:
            raise ValueError(
                f"--model {spec}: neither a temseg checkpoint ({exc}) nor one of the "
                f"authors' ({legacy_exc})"
            ) from None
    return net, config, kind


def _pixel_size(
    spec: str, kind: str, config: dict, card: dict, model_pixel_size_nm: float | None
) -> float:
    """The pixel size the network was trained at: the one it carries (which a given
    ``model_pixel_size_nm`` must agree with), else the given one."""
    if kind == "legacy":
        if model_pixel_size_nm is None:
            raise ValueError(
                f"--model {spec}: the authors' checkpoints carry no pixel size; give the one "
                f"their training data had with --model-pixel-size-nm (the paper's networks "
                f"were trained at {AUTHORS_PIXEL_SIZE_NM} nm/px)"
            )
        return float(model_pixel_size_nm)
    carried = _carried(config, card, "pixel_size_nm")
    if carried is None and model_pixel_size_nm is None:
        raise ValueError(
            f"--model {spec}: the checkpoint carries no pixel size (no pixel_size_nm in "
            f"its config or a {MODEL_CARD} beside it, and its store "
            f"{config.get('data')!r} is not here); give --model-pixel-size-nm"
        )
    if (
        carried is not None
        and model_pixel_size_nm is not None
        and abs(carried - model_pixel_size_nm) > 0.01 * carried
    ):
        raise ValueError(
            f"--model-pixel-size-nm {model_pixel_size_nm:g} contradicts the "
            f"{carried:g} nm/px that {spec} was trained at; leave the option out"
        )
    return carried if carried is not None else float(model_pixel_size_nm)
