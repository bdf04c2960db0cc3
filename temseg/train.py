"""Train one architecture on one patch store with the paper's protocol (SPEC.md section 5).

``fit(config, report)`` runs without Ray or MLflow: it reports through a callback once per
epoch, so a Ray trial, a test or a notebook can listen. Protocol: cross-entropy, Adam
(lr 1e-4), batch 32, the training set expanded by the 8 dihedral transforms, best epoch chosen
by validation hard dice, test metrics from that best checkpoint.

Determinism. The seed fixes the initial weights (``torch.manual_seed(seed)`` right before the
network is built) and, through a generator seeded by ``(seed, epoch)``, the order of the
8n augmented samples of each epoch: sample j of the permutation is patch j // 8 under dihedral
transform j % 8. So, for one seed, every architecture sees the same augmented training set in
the same batch order, and a run resumed at epoch e continues exactly as an uninterrupted one.

Speed. The splits are read into memory once (the stores are small: the paper's largest is
355 patches of 512 px); batches are gathered by index and transformed on the device, with no
DataLoader. Metric sums stay on the device; the host reads them once per epoch. The network
runs in channels-last memory format (about 2x faster on CPU for these 4-16 channel convs,
SPEC.md section 5); with ``precision="bf16"`` (the default) the forward pass runs under bf16
autocast on CPU and CUDA alike (``precision="fp32"`` runs it in fp32). On CUDA the process's
CUDA memory is capped at the trial's GPU fraction.

Precision is part of what is trained: a bf16 and an fp32 run of one config are different
trials (``temseg.config.RESOURCE_KEYS`` leaves it out), and neither resumes the other's state.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from temseg.config import TrainConfig, from_dict, to_dict
from temseg.data.augment import dihedral
from temseg.data.store import load_sources, load_split, read_attrs
from temseg.erf import effective_receptive_field
from temseg.metrics import DiceAccumulator
from temseg.model import ResidualUNet, count_parameters, load_checkpoint, save_checkpoint
from temseg.receptive_field import check_input_size
from temseg.train_state import Progress, resume, save_progress
from temseg.trial import TEST_IMAGES_FILE, TEST_IMAGES_FORMAT

Report = Callable[[dict[str, Any]], None]
EPOCH_METRICS = ("train_loss", "train_hard_dice", "val_loss", "val_hard_dice", "val_soft_dice")
# also per epoch: its seconds (training and validation, not the recorded test) and, with
# ``record_test``, the test hard dice of that epoch's weights
TIMED_METRICS = ("epoch_seconds", "epoch_test_hard_dice")
ERF_METRICS = ("erf50_px", "erf95_px", "erf95_nm")  # of the best checkpoint (temseg.erf)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA device")
    return device


def cuda_problem() -> str | None:
    """Why this process's torch cannot train on CUDA, in words; None when it can."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} here is a CPU-only build (it cannot use CUDA)"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} here (CUDA {torch.version.cuda}) sees no CUDA device"
    return None


def epoch_order(seed: int, epoch: int, n_samples: int) -> torch.Tensor:
    """The permutation of augmented-sample indices for one epoch (independent of the model)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_samples, generator=g)


class Split:
    """One split of a store in memory: images (n, 1, P, P) float32, masks (n, P, P) uint8."""

    def __init__(self, path: str, split: str, device: torch.device, *, augment: bool) -> None:
        images, masks = load_split(path, split)
        if len(images) == 0:
            raise ValueError(f"{path}: split {split!r} has no patches")
        pin = device.type == "cuda"
        self.images = torch.from_numpy(images).unsqueeze(1)
        self.masks = torch.from_numpy(masks)
        if pin:
            self.images, self.masks = self.images.pin_memory(), self.masks.pin_memory()
        self.images = self.images.to(device, non_blocking=True)
        self.masks = self.masks.to(device, non_blocking=True)
        self.n_transforms = 8 if augment else 1

    def __len__(self) -> int:
        return len(self.images) * self.n_transforms

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 1, P, P) and long masks (B, P, P) of augmented-sample indices."""
        patch = index // self.n_transforms
        k = index % self.n_transforms
        x = self.images[patch.to(self.images.device)]
        y = self.masks[patch.to(self.masks.device)]
        if self.n_transforms > 1:
            for t in torch.unique(k).tolist():  # at most 8 groups, one transform each
                sel = (k == t).nonzero().flatten().to(x.device)
                x[sel] = dihedral(x[sel], t)
                y[sel] = dihedral(y[sel], t)
        return x, y.long()


def _forward(model, x, device, precision):
    x = x.contiguous(memory_format=torch.channels_last)
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return model(x).float()
    return model(x)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    device: torch.device,
    precision: str,
    acc: DiceAccumulator,
    loss_sum: torch.Tensor,
) -> torch.Tensor:
    """One optimisation step of :func:`fit` on images ``x`` (B, 1, P, P) and labels ``y`` (B, P, P).

    Adds the batch's summed loss to ``loss_sum`` and its dice terms to ``acc`` on the device, so
    nothing here waits for the device. Returns the detached logits (B, 2, P, P).
    """
    logits = _forward(model, x, device, precision)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    loss_sum += loss.detach().double() * len(y)
    logits = logits.detach()
    acc.update(logits, y)
    return logits


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: Split,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    per_patch: bool = False,
) -> dict[str, Any]:
    """Loss and pooled hard/soft dice of ``model`` on every sample of ``split``; with
    ``per_patch`` also ``counts``, a float64 (patches, 3) array of each patch's hard-mask
    intersection, predicted and true particle pixels summed over its transformed copies."""
    model.eval()
    acc = DiceAccumulator(device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    counts = torch.zeros((len(split.images), 3), dtype=torch.float64, device=device)
    n = len(split)
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(start + batch_size, n))
        x, y = split.batch(index)
        logits = _forward(model, x, device, precision)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double() / y[0].numel()
        acc.update(logits, y)
        if per_patch:
            hard, tgt = (logits[:, 1] > logits[:, 0]).double(), y.double()
            terms = torch.stack([hard * tgt, hard, tgt], dim=1).sum(dim=(-2, -1))
            counts.index_add_(0, (index // split.n_transforms).to(device), terms)
    out: dict[str, Any] = {"loss": float(loss_sum) / n, **acc.compute()}
    if per_patch:
        out["counts"] = counts.cpu().numpy()
    return out


COUNT_NAMES = ("intersection", "predicted", "true")  # its per-image pixel counts


def write_test_images(path: Path, data: str, counts: np.ndarray) -> None:
    """Write the per-test-image record a bootstrap over test images needs (JSON).

    ``counts`` is :func:`evaluate`'s per-patch array; patches are summed per source image
    (the store's ``source`` index), so each image's ``intersection``, ``predicted`` and
    ``true`` particle pixel counts cover all its patches and their dihedral copies, and
    2 sum(intersection) / (sum(predicted) + sum(true)) is the logged ``test_hard_dice``.
    Every trial of one store lists the same images in the same order (``source``).
    """
    source = load_sources(data, "test")
    images, where = np.unique(source, return_inverse=True)
    per_image = np.zeros((len(images), 3))
    np.add.at(per_image, where, counts)
    names = read_attrs(data)["sources"]
    record = {
        "format": TEST_IMAGES_FORMAT,
        "source": [int(i) for i in images],
        "name": [str(names[i]) for i in images],
        **{k: [int(round(v)) for v in per_image[:, j]] for j, k in enumerate(COUNT_NAMES)},
    }
    path.write_text(json.dumps(record))



WARMUP_FRACTION = 0.1  # of a cosine schedule's steps


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimisation step ``step`` (from 0) of ``total_steps``.

    A function of the step alone, so a resumed run continues the schedule exactly.

    Examples
    --------
    >>> c = TrainConfig(data="/d", num_blocks=2, pools=(2, 2), lr=1e-3, lr_schedule="cosine")
    >>> [round(learning_rate(c, i, 100), 6) for i in (0, 9, 10, 55, 100)]
    [0.0001, 0.001, 0.001, 0.0005, 0.0]
    """
    if cfg.lr_schedule == "cosine":
        warmup = max(1, round(WARMUP_FRACTION * total_steps))
        if step < warmup:  # linear warm-up: large-pool networks diverge early without it
            return cfg.lr * (step + 1) / warmup
        done = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(done, 1.0)))
    return cfg.lr


def fit(
    config: TrainConfig | dict[str, Any],
    report: Report | None = None,
    *,
    workdir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one network; return its history and test metrics.

    Parameters
    ----------
    config
        A :class:`TrainConfig` or a dict for :func:`temseg.config.from_dict`.
    report
        Called once per epoch with that epoch's metrics (``epoch`` counts from 1; the keys of
        ``EPOCH_METRICS``, ``best_epoch``, ``best_val_hard_dice``, ``seconds``). The last call
        also carries ``test_loss``, ``test_hard_dice``, ``test_soft_dice``, the effective
        receptive field of the best checkpoint (``erf50_px``, ``erf95_px``, ``erf95_nm``:
        :mod:`temseg.erf`) and ``done=True``.
        When it is called, ``workdir`` holds ``last.pt`` (resumable state) and ``best.pt``.
    workdir
        Where ``last.pt``, ``best.pt``, ``config.json`` and, after the last epoch,
        ``test_images.json`` (:func:`write_test_images`) go. If ``last.pt`` is already there,
        training resumes after its epoch. Default: a fresh temporary directory.

    Returns
    -------
    dict with ``config`` (resolved), ``history`` (a list per epoch metric), ``best_epoch``,
    ``test_*`` metrics, ``erf50_px``/``erf95_px``/``erf95_nm``, ``n_params``, ``rf_px``, ``best_checkpoint`` (path) and ``seconds``.
    """
    cfg = config if isinstance(config, TrainConfig) else from_dict(TrainConfig, config)
    device = _checked_device(cfg)
    say = log or (lambda msg: None)
    workdir = _make_workdir(workdir)
    resolved = to_dict(cfg)
    (workdir / "config.json").write_text(json.dumps(resolved, indent=2))

    train = Split(cfg.data, "train", device, augment=cfg.augment)
    val = Split(cfg.data, "val", device, augment=cfg.augment and cfg.val_dihedral)

    torch.manual_seed(cfg.seed)  # initial weights: same seed, same draw, any architecture
    model = ResidualUNet(cfg.model).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    test = Split(cfg.data, "test", device, augment=cfg.augment) if cfg.record_test else None
    progress = Progress({k: [] for k in EPOCH_METRICS + TIMED_METRICS})
    last = workdir / "last.pt"

    def emit(epoch: int) -> dict[str, Any]:
        return _emit(epoch, progress, cfg, workdir, device, say=say, report=report)

    row: dict[str, Any] = {}
    if last.exists():
        saved_epoch = resume(last, progress, model, optimizer, resolved, device, TIMED_METRICS)
        say(f"resuming after epoch {saved_epoch} of {cfg.epochs}")
        # The state of an epoch is saved before its report; if the report did not complete
        # (a crash in the listener, an unreachable tracking server), report it again now
        # rather than losing it. Listeners see an epoch at least once (temseg.sweep.runtime logs each
        # epoch to MLflow once).
        reported = workdir / "reported"
        done_epoch = int(reported.read_text()) if reported.exists() else 0
        if done_epoch < saved_epoch:
            row = emit(saved_epoch)

    history = progress.history
    for epoch in range(progress.start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss, tr = _train_epoch(model, optimizer, train, cfg, epoch, device)
        va = evaluate(model, val, batch_size=cfg.batch_size, device=device, precision=cfg.precision)
        history["train_loss"].append(train_loss)
        history["train_hard_dice"].append(tr["hard_dice"])
        history["val_loss"].append(va["loss"])
        history["val_hard_dice"].append(va["hard_dice"])
        history["val_soft_dice"].append(va["soft_dice"])
        if va["hard_dice"] > progress.best_dice:
            progress.best_epoch, progress.best_dice = epoch, va["hard_dice"]
            save_checkpoint(workdir / "best.pt", model, resolved)
        seconds = time.perf_counter() - t0
        progress.elapsed += seconds
        history["epoch_seconds"].append(seconds)
        if test is not None:
            te = evaluate(
                model, test, batch_size=cfg.batch_size, device=device, precision=cfg.precision
            )
            history["epoch_test_hard_dice"].append(te["hard_dice"])
        save_progress(last, epoch, progress, model, optimizer, resolved)
        row = emit(epoch)
    if "test_hard_dice" not in row:  # resumed a finished, reported run: only the answer is left
        row = _test(cfg, workdir, device)
    return _result(row, progress, model, cfg, resolved, workdir)


def _checked_device(cfg: TrainConfig) -> torch.device:
    """Check the store against the config and resolve the device (capping its GPU memory)."""
    if not os.path.isabs(cfg.data):
        raise ValueError(f"config.data must be an absolute path (got {cfg.data!r})")
    attrs = read_attrs(cfg.data)
    check_input_size(int(attrs["patch_size"]), cfg.pools)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and cfg.gpu_fraction > 0:
        torch.cuda.set_per_process_memory_fraction(min(cfg.gpu_fraction, 1.0), device)
    return device


def _make_workdir(workdir: str | os.PathLike | None) -> Path:
    """``workdir``, created if missing; a fresh temporary directory when None."""
    if workdir is None:
        import tempfile

        workdir = tempfile.mkdtemp(prefix="temseg-fit-")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def _result(
    row: dict[str, Any],
    progress: Progress,
    model: ResidualUNet,
    cfg: TrainConfig,
    resolved: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    """What :func:`fit` returns, from the last epoch's row (with the test metrics)."""
    return {
        "config": resolved,
        "history": progress.history,
        "best_epoch": progress.best_epoch,
        "best_val_hard_dice": progress.best_dice,
        "test_loss": row["test_loss"],
        "test_hard_dice": row["test_hard_dice"],
        "test_soft_dice": row["test_soft_dice"],
        **{k: row[k] for k in ERF_METRICS if k in row},
        "n_params": count_parameters(model),
        "rf_px": cfg.model.rf_px,
        "best_checkpoint": str(workdir / "best.pt"),
        "seconds": progress.elapsed,
    }


def _train_epoch(
    model: ResidualUNet,
    optimizer: torch.optim.Optimizer,
    train: Split,
    cfg: TrainConfig,
    epoch: int,
    device: torch.device,
) -> tuple[float, dict[str, float]]:
    """One pass over the training split in the seed's order for ``epoch``; the mean loss per
    patch and the pooled training dice."""
    model.train()
    acc = DiceAccumulator(device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    order = epoch_order(cfg.seed, epoch, len(train))
    steps = math.ceil(len(order) / cfg.batch_size)
    for i, start in enumerate(range(0, len(order), cfg.batch_size)):
        x, y = train.batch(order[start : start + cfg.batch_size])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, (epoch - 1) * steps + i, cfg.epochs * steps)
        train_step(
            model,
            optimizer,
            x,
            y,
            device=device,
            precision=cfg.precision,
            acc=acc,
            loss_sum=loss_sum,
        )
    return float(loss_sum) / len(train), acc.compute()


def _emit(
    epoch: int,
    progress: Progress,
    cfg: TrainConfig,
    workdir: Path,
    device: torch.device,
    *,
    say: Callable[[str], None],
    report: Report | None,
) -> dict[str, Any]:
    """Report a saved epoch, then mark it reported (at-least-once: see :func:`fit`)."""
    history = progress.history
    row = {"epoch": epoch, **{k: history[k][epoch - 1] for k in EPOCH_METRICS}}
    row.update({k: history[k][epoch - 1] for k in TIMED_METRICS if len(history[k]) >= epoch})
    row.update(
        best_epoch=progress.best_epoch,
        best_val_hard_dice=progress.best_dice,
        seconds=progress.elapsed,
    )
    if epoch == cfg.epochs:
        row.update(_test(cfg, workdir, device))
        row["done"] = True
    say(
        f"epoch {epoch}/{cfg.epochs} train_loss {row['train_loss']:.4f} "
        f"val_hard_dice {row['val_hard_dice']:.4f} ({progress.elapsed:.0f} s)"
    )
    if report is not None:
        report(row)
    (workdir / "reported").write_text(f"{epoch}\n")
    return row


def _test(cfg: TrainConfig, workdir: Path, device: torch.device) -> dict[str, float]:
    """Evaluate the best-validation checkpoint on the test split: dice, loss, the per-image
    record (``workdir/test_images.json``: :func:`write_test_images`) and its
    effective receptive field (:mod:`temseg.erf`: fp32, eval mode, up to 16 untransformed
    test patches; ``erf95_nm`` = ``erf95_px`` x the store's pixel size)."""
    best, _ = load_checkpoint(workdir / "best.pt", map_location=device)
    best = best.to(memory_format=torch.channels_last)
    test = Split(cfg.data, "test", device, augment=cfg.augment)
    te = evaluate(
        best,
        test,
        batch_size=cfg.batch_size,
        device=device,
        precision=cfg.precision,
        per_patch=True,
    )
    write_test_images(workdir / TEST_IMAGES_FILE, cfg.data, te["counts"])
    erf = effective_receptive_field(best.float(), test.images)
    pixel_size_nm = float(read_attrs(cfg.data)["pixel_size_nm"])
    return {
        "test_loss": te["loss"],
        "test_hard_dice": te["hard_dice"],
        "test_soft_dice": te["soft_dice"],
        "erf50_px": erf["erf50_px"],
        "erf95_px": erf["erf95_px"],
        "erf95_nm": erf["erf95_px"] * pixel_size_nm,
    }
