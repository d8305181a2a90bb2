"""Turn a training run into a shipped model: weights, code statistics, bit priors, and a card
with figures measured on the exported file."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np
import torch

from .. import entropy, extension, hidden_prior, prior_tensors, zoo
from ..architecture import PRESETS, ModelKind
from ..container import Coding
from ..errors import InputError
from ..network import LBAE
from ..zoo import ATTRIBUTE_DIRECTION, LABEL_MEAN
from .checkpoint import Checkpoint, load_checkpoint, load_epoch
from .codes import code_statistics, encode_all
from .data import LABEL_NAMES
from .train import evaluate
from .trainset import TrainingData, split_validation


def label_means(codes: np.ndarray, labels: np.ndarray, n_labels: int) -> dict[str, torch.Tensor]:
    c = codes.astype(np.float64)
    means = np.stack([c[labels == k].mean(0) if (labels == k).any() else np.zeros(c.shape[1]) for k in range(n_labels)])
    return {LABEL_MEAN: torch.from_numpy(means).float()}


def attribute_directions(codes: np.ndarray, attributes: np.ndarray) -> dict[str, torch.Tensor]:
    """Per ±1 attribute column: mean code of the images with it minus the mean of those without."""
    c = codes.astype(np.float64)
    rows = []
    for column in np.asarray(attributes).T:
        on, off = column > 0, column <= 0
        rows.append(c[on].mean(0) - c[off].mean(0) if on.any() and off.any() else np.zeros(c.shape[1]))
    return {ATTRIBUTE_DIRECTION: torch.from_numpy(np.stack(rows)).float()}


def coded_bits(prior: entropy.Prior, codes: np.ndarray) -> float:
    """Actual range-coded bits per code vector, one vector per call (as one 32×32 image)."""
    return float(np.mean([8 * len(entropy.encode(c[None], prior)) for c in codes]))


def default_weights(preset: str, kind: ModelKind = ModelKind.LBAE) -> Path:
    """Where a checkout ships a model of this preset: weights/lbae-PRESET-BITS.safetensors, or
    weights/baseline-KIND-PRESET.safetensors."""
    if kind != ModelKind.LBAE:
        return Path("weights") / f"baseline-{kind}-{preset}.safetensors"
    return Path("weights") / f"lbae-{preset}-{PRESETS[preset].bits}.safetensors"


def export_from_run(
    run: Path,
    preset: str,
    dataset: str,
    data: TrainingData,
    name: str | None = None,
    target: Path | None = None,
    which: str = "best",
    attributes: tuple[list[str], np.ndarray] | None = None,
    realism: Path | None = None,
) -> Path:
    """Export a run's ``which`` checkpoint (an LBAE, or a baseline) measured on ``data``'s test
    split, with the default name and file of its preset and kind unless given."""
    kind = ModelKind(json.loads((run / f"{which}.json").read_text()).get("kind", ModelKind.LBAE))
    target = target or default_weights(preset, kind)
    if kind != ModelKind.LBAE:
        if realism is not None or attributes is not None:
            raise InputError("--realism and --attributes are for LBAE models, not baselines")
        return export_baseline(
            run, name or f"{kind}-{preset}", target, len(data.train), data.test, data.note, command_line(), which
        )
    if attributes is not None:
        attributes = attributes[0], attributes[1][: len(data.train)]
    return export_run(
        run,
        name or preset,
        target,
        data.train,
        data.test,
        data.note,
        command_line(),
        which,
        train_labels=data.labels,
        label_names=LABEL_NAMES.get(dataset),
        attributes=attributes,
        realism_run=realism,
    )


def export_run(
    run: Path,
    name: str,
    path: Path,
    train_images: np.ndarray,
    test_images: np.ndarray,
    data_note: str,
    command: str,
    which: str = "best",
    train_labels: np.ndarray | None = None,
    label_names: list[str] | None = None,
    attributes: tuple[list[str], np.ndarray] | None = None,
    realism_run: Path | None = None,
) -> Path:
    """Export a run's checkpoint with statistics and priors, measured on the test images;
    with ``realism_run``, its decoder ships beside the fidelity one in the same file."""
    ckpt = load_checkpoint(run, which)
    arch, net = ckpt.arch, ckpt.model
    if net.kind != ModelKind.LBAE:
        raise ValueError(f"{run} holds a {net.kind} baseline: use export_baseline")
    realism = realism_decoder(net, realism_run) if realism_run is not None else None
    shipped_net = zoo.as_shipped(net)
    train_codes = encode_all(shipped_net, train_images)
    factorized, context = entropy.fit(train_codes, context=False), entropy.fit(train_codes)
    extras = {**code_statistics(train_codes), **prior_tensors.to_tensors(factorized, context)}
    if train_labels is not None and label_names:
        extras.update(label_means(train_codes, train_labels, len(label_names)))
    if attributes is not None:
        extras.update(attribute_directions(train_codes, attributes[1]))
    exported = zoo.export(net, name, path, extras=extras, realism=realism)
    test_codes = encode_all(shipped_net, test_images)
    card = {
        **_training_card(data_note, len(train_images), test_images, shipped_net, ckpt),
        **(_realism_card(realism_run, exported, test_images) if realism is not None else {}),
        "test_bits_per_tile": {
            "raw": arch.bits,
            "factorized_ideal": round(factorized.cost_bits(test_codes) / len(test_codes), 1),
            "context_ideal": round(context.cost_bits(test_codes) / len(test_codes), 1),
            "context_coded_single_tile": round(coded_bits(context, test_codes), 1),
        },
        "labels": label_names if train_labels is not None else None,
        "attributes": attributes[0] if attributes is not None else None,
        **_shipping(command),
    }
    zoo.write_card(exported, card)
    return exported


def export_baseline(
    run: Path,
    name: str,
    path: Path,
    train_count: int,
    test_images: np.ndarray,
    data_note: str,
    command: str,
    which: str = "best",
) -> Path:
    """Export a VAE/VQ-VAE run (weights and card; no priors or statistics: not a codec)."""
    ckpt = load_checkpoint(run, which)
    exported = zoo.export(ckpt.model, name, path)
    card = {
        "kind": str(ckpt.model.kind),
        **_training_card(data_note, train_count, test_images, zoo.as_shipped(ckpt.model), ckpt),
        "code_bits_per_tile": ckpt.model.code_bits,
        **_shipping(command),
    }
    zoo.write_card(exported, card)
    return exported


def _training_card(
    data_note: str, train_count: int, test_images: np.ndarray, shipped_net: torch.nn.Module, ckpt: Checkpoint
) -> dict:
    """Data, training effort, the epoch chosen on validation, and the test figures of the
    shipped (fp16) weights."""
    progress = ckpt.progress
    figures = evaluate(shipped_net, test_images)
    best = next((h for h in progress.history if h["epoch"] == progress.best_epoch), {})
    return {
        "data": data_note,
        "train_images": progress.train_images or train_count,
        "validation_images": progress.val_images or None,
        "test_images": len(test_images),
        "epochs": progress.total_epochs,
        "best_epoch": progress.init_epochs + progress.best_epoch,
        "selected_on": f"validation split ({progress.best_metric})",
        "cpu_hours": round(progress.total_cpu_hours, 2),
        "gpu_hours": round(progress.gpu_seconds / 3600, 3),
        "trained_on": progress.device,
        "continued_from": progress.init_from or None,
        "recipe": asdict(ckpt.recipe),
        "val_psnr_db_at_best_epoch": round(best["val_psnr"], 3) if "val_psnr" in best else None,
        "test_psnr_db": round(figures["psnr"], 3),
        "test_loss": round(figures["loss"], 6),
    }


def realism_checkpoint(realism_run: Path, epoch: int | None = None) -> Checkpoint:
    """A realism run's best checkpoint, or the weights it kept at ``epoch``."""
    return load_checkpoint(realism_run, "best") if epoch is None else load_epoch(realism_run, epoch)


def realism_decoder(net: LBAE, realism_run: Path, epoch: int | None = None) -> torch.nn.Module:
    """The realism decoder of a run trained on ``net``'s frozen encoder (checked tensor by tensor)."""
    ckpt = realism_checkpoint(realism_run, epoch)
    if ckpt.model.kind != ModelKind.LBAE or ckpt.arch.encoder_arch != net.arch.encoder_arch:
        raise ValueError(f"{realism_run}: not a realism run of this network")
    mine, theirs = net.encoder.state_dict(), ckpt.model.encoder.state_dict()
    if any(not torch.equal(mine[k], theirs[k]) for k in mine):
        raise ValueError(f"{realism_run}: its encoder differs from the exported network's")
    return ckpt.model.decoder


def add_realism(
    base: zoo.Model,
    realism_run: Path,
    name: str,
    path: Path,
    test_images: np.ndarray,
    command: str,
    delta: bool = False,
    epoch: int | None = None,
) -> Path:
    """A new model file: ``base`` (a shipped model: its weights, statistics and priors unchanged)
    plus the realism decoder of a run trained on its frozen encoder (its best checkpoint, or the
    weights kept at ``epoch``). A new name, since the id of the old one names its files
    (``delta``: see ``extend_model``)."""
    realism = realism_decoder(base.net, realism_run, epoch)
    exported, card = extend_model(base, name, path, realism=realism, delta=delta)
    card.update(
        {
            **_realism_card(realism_run, exported, test_images, epoch),
            "measured_on": measured_on(),
            "realism_command": command,
        }
    )
    zoo.write_card(exported, card)
    return exported


def extend_model(
    base: zoo.Model,
    name: str,
    path: Path,
    realism: torch.nn.Module | None = None,
    postfilter: torch.nn.Module | None = None,
    later_stages: list[tuple[torch.nn.Module, dict]] | None = None,
    postfilter_stage: int = 1,
    context_prior: entropy.Prior | None = None,
    delta: bool = False,
) -> tuple[Path, dict]:
    """A new model file: ``base``'s tensors (weights, statistics, priors) stored as they were,
    plus the given realism decoder, seam filter (for canvases decoded with ``postfilter_stage``
    stages), residual stages (network, priors) or (first-stage) context prior in place of any
    ``base`` had. A new name, since the id of the old one names its files. Returns the file and
    the card it starts from: base's card without what names base's file, and ``base_model``.
    ``delta``: the file stores only what differs from base's file, which it names by hash."""
    if name == base.name:
        raise ValueError(f"the new model needs a new name: {name!r} names {base.id}")
    stage_count = base.stage_count if later_stages is None else 1 + len(later_stages)
    if postfilter is not None and not 1 <= postfilter_stage <= stage_count:
        raise ValueError(f"a seam filter after stage {postfilter_stage}, but the model has {stage_count}")
    replaced = (zoo.MODEL_PREFIX,) + (zoo.REALISM_PREFIX,) * (realism is not None)
    replaced += (zoo.postfilter_prefix(postfilter_stage),) * (postfilter is not None)
    extras = {
        k: v
        for k, v in extension.read_tensors(base.path).items()
        if not k.startswith(replaced) and not (later_stages is not None and zoo.STAGE_NAME.match(k))
    }
    if postfilter is not None:
        extras.update(zoo.postfilter_tensors(postfilter, postfilter_stage))
    # a prior's tensor names are fixed: the new prior's replace base's
    if isinstance(context_prior, hidden_prior.HiddenPrior):
        extras.update(prior_tensors.hidden_to_tensors(context_prior))
    elif context_prior is not None:
        extras.update(prior_tensors.to_tensors(base.prior(Coding.FACTORIZED), context_prior))
    exported = zoo.export(
        base.net,
        name,
        path,
        extras=extras,
        realism=realism,
        later_stages=later_stages or (),
        extends=base.path if delta else None,
    )
    card = {k: v for k, v in base.card.items() if k not in ("name", "file", "model_id", "architecture", "extends")}
    if delta:
        card["extends"] = zoo.read_metadata(exported)[zoo.META_BASE]
    return exported, {**card, "base_model": base.id}


def add_context_prior(
    base: zoo.Model,
    kind: str,
    fit_prior: Callable[[np.ndarray], entropy.Prior],
    train_images: np.ndarray,
    test_images: np.ndarray,
    name: str,
    path: Path,
    command: str,
    val_count: int = 5000,
    delta: bool = False,
) -> Path:
    """A new model file: ``base`` with its context prior refitted on its training codes by
    ``fit_prior`` (codes → prior): a ``kind`` of "dense" (a linear prior refitted, as
    ``entropy.fit`` now fits one), "grouped" or "hidden" prior. Network, statistics
    and factorized prior are ``base``'s: it writes the same codes, in other bytes. The card
    gives the rate on a seeded random ``val_count`` of the training images (fitted without them,
    against a dense linear prior fitted the same way) and on the test images (``delta``: see
    ``extend_model``)."""
    if base.stage_count > 1:
        raise ValueError(f"model {base.id} has {base.stage_count} stages; a new context prior is for one-stage models")
    if name == base.name:  # checked before the minutes of fitting (extend_model checks it again)
        raise ValueError(f"the new model needs a new name: {name!r} names {base.id}")
    if len(train_images) <= val_count:
        raise ValueError(f"{len(train_images)} training images: fitting a prior needs more than {val_count}")
    codes, test_codes = encode_all(base.net, train_images), encode_all(base.net, test_images)
    fit_on, _, val = split_validation(codes, None, val_count)
    validation = {"images": len(val), "dense_coded": round(coded_bits(entropy.fit(fit_on), val), 1)}
    if kind != "dense":
        validation[f"{kind}_coded"] = round(coded_bits(fit_prior(fit_on), val), 1)
    prior = fit_prior(codes)
    exported, card = extend_model(base, name, path, context_prior=prior, delta=delta)
    card["test_bits_per_tile"] = {
        **card.get("test_bits_per_tile", {}),
        "context_ideal": round(prior.cost_bits(test_codes) / len(test_codes), 1),
        "context_coded_single_tile": round(coded_bits(prior, test_codes), 1),
    }
    card[f"{kind}_prior"] = {
        **_prior_shape(kind, prior),
        "fitted_on": f"codes of {len(codes)} training images",
        "validation_bits_per_tile": validation,
        "base_test_bits_per_tile": base.card.get("test_bits_per_tile"),
        "command": command,
        "measured_on": measured_on(),
    }
    zoo.write_card(exported, card)
    return exported


def _prior_shape(kind: str, prior: entropy.Prior) -> dict:
    if kind == "grouped":
        return {"groups": len(prior.groups)}
    if kind == "hidden":
        return {"hidden_units": prior.units}
    return {"l2": entropy.FIT_L2}


def _realism_card(realism_run: Path, exported: Path, test_images: np.ndarray, epoch: int | None = None) -> dict:
    ckpt = realism_checkpoint(realism_run, epoch)
    progress = ckpt.progress
    selected_on = progress.best_metric if epoch is None else _epoch_record(realism_run, epoch)
    model = zoo.load_model(exported, "cpu")
    figures = evaluate(model.with_decoder(zoo.REALISM), test_images)
    return {
        "realism": {
            "width": model.realism.width,
            "upsample": model.realism.upsample,
            "epochs": progress.total_epochs,  # with those of a realism decoder it continued
            "best_epoch": progress.init_epochs + progress.best_epoch,
            "selected_on": f"validation split ({selected_on})",
            "cpu_hours": round(progress.total_cpu_hours, 2),
            "gpu_hours": round(progress.gpu_seconds / 3600, 3),
            "trained_on": progress.device,
            "recipe": asdict(ckpt.recipe),
            "test_psnr_db": round(figures["psnr"], 3),
        }
    }


def _epoch_record(run: Path, epoch: int) -> str:
    """How an epoch chosen with ``add-decoder --epoch`` scored on validation, from the run's log."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    scores = next((r for r in reversed(records) if r.get("epoch") == epoch), {})
    shown = ", ".join(f"{k} {scores[k]}" for k in ("val_fid", "val_sample_fid", "val_psnr") if k in scores)
    return f"epoch {epoch} chosen with add-decoder --epoch: {shown}"


def _shipping(command: str) -> dict:
    """What every exported card says of the file: its dtype, the machine, the command."""
    return {"weights_dtype": "float16", "measured_on": measured_on(), "command": command}


def measured_on() -> str:
    return f"{platform.machine()} CPU, torch {torch.__version__}, {date.today()}"


def command_line() -> str:
    return "lbaecodec " + " ".join(sys.argv[1:])
