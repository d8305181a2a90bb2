"""Two decoders for one code: the realism stage, its files, and the decoders' choice everywhere."""

import copy
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file
from torch.nn.utils import parametrize

import lbaecodec
from lbaecodec import cli, zoo
from lbaecodec.architecture import PRESETS
from lbaecodec.cli import info
from lbaecodec.errors import InputError, ModelError
from lbaecodec.lab import adversarial, export, generate
from lbaecodec.lab.checkpoint import initial_weights
from lbaecodec.lab.data import spread_subset
from lbaecodec.lab.distributed import World
from lbaecodec.lab.steps import CopulaCodes, RealismStep
from lbaecodec.lab.train import FidProbe, Recipe, load_checkpoint, train
from lbaecodec.lab.trainset import split_validation

from .conftest import save_image

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "v1-cifar10-70x45"  # written and decoded by the code before realism


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def realism_command(images, tmp_path):
    """`train --stage realism` on a tiny local copy of the test images, into tmp_path / "r"."""
    np.savez(tmp_path / "c.npz", x_train=images, x_test=images[:16])
    return ("train", "--data-dir", tmp_path / "c.npz", "--stage", "realism", "--batch", 16, "--out", tmp_path / "r")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return np.repeat(np.repeat(rng.integers(0, 256, (64, 4, 4, 3)).astype(np.uint8), 8, axis=1), 8, axis=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, images):
    """A tiny fidelity run, and a realism run on its encoder (1 epoch, then resumed to 2)."""
    root = tmp_path_factory.mktemp("runs")
    arch = replace(PRESETS["cifar10"], width=4, bits=32)
    train(arch, images, images[:16], root / "fidelity", Recipe(epochs=1, batch=16), show_progress=False)
    base = load_checkpoint(root / "fidelity", "best").model
    realism = Recipe(epochs=1, batch=16, stage="realism", disc_width=8, disc_warmup_steps=2, lr=1e-3, disc_norm="batch")
    train(arch, images, images[:16], root / "realism", realism, init_from=base, show_progress=False)
    train(arch, images, images[:16], root / "realism", replace(realism, epochs=2), resume=True, show_progress=False)
    return root, base


def test_realism_stage_trains_the_decoder_only_and_resumes(runs):
    root, base = runs
    ckpt = load_checkpoint(root / "realism")
    assert ckpt.progress.epoch == 2 and ckpt.progress.step == 8 and ckpt.disc is not None and ckpt.disc_optim
    assert ckpt.recipe.disc_norm == "batch" and any(isinstance(m, torch.nn.BatchNorm2d) for m in ckpt.disc.modules())
    log = [json.loads(line) for line in (root / "realism" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all(r["stage"] == "realism" for r in log)
    assert log[-1]["train_adv_weight"] > 0 and "train_d_loss" in log[-1]
    trained = ckpt.model.state_dict()
    frozen = {k: v for k, v in base.state_dict().items() if k.startswith("encoder.")}
    assert all(torch.equal(trained[k], v) for k, v in frozen.items())  # BatchNorm statistics too
    decoder = [k for k in trained if k.startswith("decoder.") and trained[k].is_floating_point()]
    assert any(not torch.equal(trained[k], base.state_dict()[k]) for k in decoder)
    assert (root / "realism" / "epoch-1.safetensors").is_file()  # no FID probe: every epoch kept


def test_a_realism_run_continues_a_shipped_realism_decoder():
    dual, plain = zoo.load_model("dual", "cpu"), zoo.load_model("cifar10", "cpu")
    net, _, progress = initial_weights("dual", zoo.ModelKind.LBAE, "realism")
    for name, t in dual.realism.state_dict().items():
        assert torch.equal(net.decoder.state_dict()[name], t)
    for name, t in dual.net.encoder.state_dict().items():
        assert torch.equal(net.encoder.state_dict()[name], t)
    assert progress.init_from == dual.id
    net, _, _ = initial_weights("cifar10", zoo.ModelKind.LBAE, "realism")  # no realism decoder: the fidelity one
    for name, t in plain.net.decoder.state_dict().items():
        assert torch.equal(net.decoder.state_dict()[name], t)


@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_patch_discriminator_norms(norm):
    disc = adversarial.PatchDiscriminator(3, 8, norm)
    assert disc(torch.rand(4, 3, 32, 32)).shape == (4, 1, 8, 8)
    has_batch_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules())
    has_spectral = any(parametrize.is_parametrized(m) for m in disc.modules())
    assert (has_batch_norm, has_spectral) == (norm == "batch", norm == "spectral")
    with pytest.raises(ValueError, match="choose from"):
        adversarial.PatchDiscriminator(3, 8, "layer")


@pytest.mark.parametrize(("depth", "grid", "field"), [(2, 16, 26), (3, 8, 54)])
def test_discriminator_depth_sets_the_patch_it_judges(depth, grid, field):
    disc = adversarial.PatchDiscriminator(3, 4, "batch", depth).eval()
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    logits = disc(x)
    logits[0, 0, grid // 2, grid // 2].backward()
    seen = (x.grad.abs().sum(1)[0] > 0).nonzero()
    assert logits.shape == (1, 1, grid, grid) and (seen.max(0).values - seen.min(0).values + 1).tolist() == [field] * 2
    if depth == 2:  # the default builds the discriminator that earlier checkpoints saved
        assert [k for k in disc.state_dict() if k.endswith("weight")] == [
            "layers.0.weight",
            "layers.2.weight",
            "layers.3.weight",
            "layers.5.weight",
            "layers.6.weight",
            "layers.8.weight",
        ]


def test_r1_penalty_is_the_squared_gradient_norm_on_real_images():
    disc = torch.nn.Conv2d(3, 1, 1, bias=False)  # a logit w·pixel per pixel: the score's gradient is w / 1024
    w = disc.weight.detach().flatten()
    penalty = adversarial.r1_penalty(disc, torch.rand(2, 3, 32, 32))
    assert torch.allclose(penalty, w.pow(2).sum() / (32 * 32))


def test_disc_augment_draws_per_image_and_passes_gradients():
    assert isinstance(adversarial.augmenter(()), torch.nn.Identity)
    augment = adversarial.augmenter(("color", "translation", "cutout"))
    x = torch.full((2, 3, 32, 32), 0.5).requires_grad_(True)
    seen = augment(torch.cat([x, x]))
    assert seen.shape == (4, 3, 32, 32)
    assert not torch.equal(seen[0], seen[2])  # the same image, another draw
    seen.sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="choose from"):
        adversarial.augmenter(("flip",))


def test_disc_augment_option_errors_in_one_line(monkeypatch):
    result = run("train", "--stage", "realism", "--init-from", "cifar10", "--disc-augment", "color,flip")
    assert result.exit_code == 2 and "flip: choose from color,translation,cutout" in result.output
    monkeypatch.setitem(sys.modules, "kornia", None)  # as if the train extra were not installed
    result = run("train", "--stage", "realism", "--init-from", "cifar10", "--disc-augment", "cutout")
    assert result.exit_code == 6
    missing = "error: --disc-augment needs the Python package 'kornia': pip install 'lbaecodec[train]'"
    assert result.output.splitlines() == [missing]


def test_upsample_option_errors_in_one_line():
    result = run("train", "--init-from", "cifar10", "--upsample", "resize")
    assert result.exit_code != 0 and result.output.splitlines() == [
        "error: --upsample continues no fidelity run: use it from scratch, or with --stage realism"
    ]
    result = run("train", "--kind", "vae", "--upsample", "resize")
    assert result.exit_code != 0 and result.output.splitlines() == [
        "error: --upsample is for LBAE decoders, not baselines"
    ]
    result = run("train", "--upsample", "bilinear")
    assert result.exit_code == 2 and "'bilinear' is not one of 'transpose', 'resize'" in result.output


def test_realism_with_r1_logs_it_and_keeps_it_on_resume(images, tmp_path):
    arch = replace(PRESETS["cifar10"], width=4, bits=32)
    recipe = Recipe(
        epochs=1,
        batch=16,
        stage="realism",
        disc_width=8,
        disc_warmup_steps=2,
        r1_gamma=10,
        disc_lr=1e-4,
        disc_augment=("translation", "cutout"),
    )
    train(arch, images, images[:16], tmp_path / "fidelity", Recipe(epochs=1, batch=16), show_progress=False)
    base = load_checkpoint(tmp_path / "fidelity", "best").model
    train(arch, images, images[:16], tmp_path / "r1", recipe, init_from=base, show_progress=False)
    resumed = replace(recipe, epochs=2, r1_gamma=0)  # the checkpoint's recipe goes on
    train(arch, images, images[:16], tmp_path / "r1", resumed, resume=True, show_progress=False)
    ckpt = load_checkpoint(tmp_path / "r1")
    assert (ckpt.recipe.r1_gamma, ckpt.recipe.disc_lr, ckpt.progress.epoch) == (10, 1e-4, 2)
    assert ckpt.recipe.disc_augment == ("translation", "cutout")
    log = [json.loads(line) for line in (tmp_path / "r1" / "log.jsonl").read_text().splitlines()]
    assert all(r["train_r1"] > 0 for r in log)


def test_a_resumed_run_takes_new_rates_and_weights_given_with_resume(runs, images, tmp_path):
    root, _ = runs
    common = realism_command(images, tmp_path)
    first = ("--init-from", root / "fidelity", "--disc-width", 8, "--disc-warmup", 0, "--fixed-weight")
    assert run(*common, *first, "--epochs", 1, "--adv-weight", 0.1, "--lr", 1e-4).exit_code == 0
    r = run(*common, "--resume", "--epochs", 2, "--lr", 3e-4, "--adv-weight", 0.2, "--disc-width", 16)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "r")
    assert (ckpt.recipe.lr, ckpt.recipe.adv_weight, ckpt.recipe.disc_width) == (3e-4, 0.2, 8)  # not the width
    assert ckpt.recipe.r1_gamma == 0 and not ckpt.recipe.adaptive
    assert run(*common, "--resume").exit_code == 0  # a finished run stays finished: --epochs' default is no plan
    assert (load_checkpoint(tmp_path / "r").progress.epoch, load_checkpoint(tmp_path / "r").recipe.epochs) == (2, 2)
    assert run(*common, "--resume", "--epochs", 3).exit_code == 0  # nothing else given: the checkpoint's go on
    ckpt = load_checkpoint(tmp_path / "r")
    assert (ckpt.recipe.lr, ckpt.recipe.adv_weight, ckpt.progress.epoch) == (3e-4, 0.2, 3)
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["train_adv_weight"] for r in log] == [0.1, 0.2, 0.2]


def test_a_moving_average_of_the_decoder_is_evaluated_kept_and_resumed(runs, images, tmp_path):
    root, base = runs
    recipe = Recipe(epochs=1, batch=16, stage="realism", disc_width=8, disc_warmup_steps=0, lr=1e-3, ema=0.5)
    train(base.arch, images, images[:16], tmp_path / "e", recipe, init_from=base, show_progress=False)
    train(base.arch, images, images[:16], tmp_path / "e", replace(recipe, epochs=2), resume=True, show_progress=False)
    last, best = load_checkpoint(tmp_path / "e"), load_checkpoint(tmp_path / "e", "best")
    average = {k.removeprefix("module."): v for k, v in last.ema.items() if k.startswith("module.")}
    assert int(last.ema["n_averaged"]) == 8  # one per step, across the resume
    assert all(torch.equal(v, average[k]) for k, v in best.model.decoder.state_dict().items())
    trained = last.model.decoder.state_dict()
    assert not all(torch.equal(v, average[k]) for k, v in trained.items())  # the average is not the last step
    log = [json.loads(line) for line in (tmp_path / "e" / "log.jsonl").read_text().splitlines()]
    assert all(r["val_psnr_trained"] != r["val_psnr"] for r in log)


def test_ema_and_disc_depth_on_a_run_and_its_resume_and_ema_refused_without_realism(runs, images, tmp_path):
    root, _ = runs
    common = realism_command(images, tmp_path)
    first = ("--init-from", root / "fidelity", "--disc-width", 8, "--disc-warmup", 0, "--epochs", 1, "--disc-depth", 3)
    assert run(*common, *first).exit_code == 0
    ckpt = load_checkpoint(tmp_path / "r")
    assert not ckpt.ema and ckpt.recipe.disc_depth == 3 and ckpt.disc.layers[-1].in_channels == 64  # 8 · 2³
    assert run(*common, "--resume", "--epochs", 2, "--ema", 0.9).exit_code == 0
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt.recipe.ema == 0.9 and int(ckpt.ema["n_averaged"]) == 4  # the steps of epoch 2
    r = run("train", "--data-dir", tmp_path / "c.npz", "--ema", 0.99)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--stage realism" in r.output


def test_export_ships_both_decoders_in_one_file(runs, images, tmp_path):
    root, _ = runs
    path = export.export_run(
        root / "fidelity",
        "dual2",
        tmp_path / "d.safetensors",
        images,
        images[:16],
        "synthetic",
        "pytest",
        realism_run=root / "realism",
    )
    m = zoo.load_model(path, "cpu")
    assert m.decoders == ("fidelity", "realism")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["realism"]["epochs"] == 2 and card["selected_on"].startswith("validation")
    codes = m.net.encode(torch.rand(4, 3, 32, 32))
    assert not torch.equal(m.with_decoder("realism").decode(codes), m.with_decoder("fidelity").decode(codes))


def test_export_refuses_a_realism_run_of_another_encoder(runs, images, tmp_path):
    root, _ = runs
    other = tmp_path / "other"
    train(
        replace(PRESETS["cifar10"], width=4, bits=32),
        images,
        images[:16],
        other,
        Recipe(epochs=1, batch=32, seed=5),
        show_progress=False,
    )
    with pytest.raises(ValueError, match="encoder differs"):
        export.export_run(
            other, "x", tmp_path / "x.safetensors", images, images[:16], "s", "pytest", realism_run=root / "realism"
        )


def test_one_file_decodes_with_both_decoders(tmp_path):
    path = save_image(tmp_path, "in.png", np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    data = lbaecodec.encode(path, model="dual")
    fidelity = lbaecodec.decode(data)
    realism = lbaecodec.decode(data, decoder="realism")
    assert fidelity.size == realism.size == (50, 40) and fidelity.mode == realism.mode == "RGB"
    assert np.array_equal(np.asarray(fidelity), np.asarray(lbaecodec.decode(data, decoder="fidelity")))
    assert not np.array_equal(np.asarray(fidelity), np.asarray(realism))
    out = tmp_path / "r.png"
    assert run("decode", _write(tmp_path, data), out, "--decoder", "realism").exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(realism))


def _write(folder: Path, data: bytes) -> Path:
    (folder / "in.lbae").write_bytes(data)
    return folder / "in.lbae"


def test_files_written_before_realism_decode_to_the_same_pixels():
    """A file written (and decoded) by the code before this change, with the shipped model: the
    same pixels in fp32; in bf16 (auto's choice where the CPU has it natively) within 2 levels."""
    shipped = REPO / "weights" / "lbae-cifar10-600.safetensors"
    data = GOLDEN.with_suffix(".lbae").read_bytes()
    golden = np.asarray(Image.open(GOLDEN.with_suffix(".decoded.png")), np.int16)
    img = lbaecodec.decode(data, model=shipped, device="cpu", precision="fp32")
    assert np.array_equal(np.asarray(img), golden)
    img = lbaecodec.decode(data, model=shipped, device="cpu", precision="bf16")
    assert 0 < np.abs(np.asarray(img, np.int16) - golden).max() <= 2


def test_decoder_errors_are_one_line(tmp_path, rgb_image):
    data = _write(tmp_path, lbaecodec.encode(rgb_image))  # the stand-in cifar10 has no realism decoder
    r = run("decode", data, tmp_path / "o.png", "--decoder", "fancy")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "unknown decoder 'fancy'" in r.output
    r = run("decode", data, tmp_path / "o.png", "--decoder", "realism")
    assert r.exit_code == 4 and r.output.count("\n") == 1 and "no realism decoder" in r.output
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(InputError):
        lbaecodec.decode(data.read_bytes(), decoder="")
    with pytest.raises(ModelError):
        lbaecodec.decode(data.read_bytes(), decoder="realism")


def test_generation_takes_the_decoder(tmp_path):
    a, b = (
        run("sample", tmp_path / f"{d}.png", "-m", "dual", "-n", "4", "--method", "random", "--decoder", d)
        for d in ("fidelity", "realism")
    )
    assert a.exit_code == b.exit_code == 0
    assert not np.array_equal(
        np.asarray(Image.open(tmp_path / "fidelity.png")), np.asarray(Image.open(tmp_path / "realism.png"))
    )
    auto = run(
        "sample", tmp_path / "auto.png", "-m", "dual", "-n", "4", "--method", "random"
    )  # auto: realism where present
    assert auto.exit_code == 0
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "auto.png")), np.asarray(Image.open(tmp_path / "realism.png"))
    )
    r = run("sample", tmp_path / "x.png", "-m", "cifar10", "--decoder", "realism")
    assert r.exit_code == 4 and "no realism decoder" in r.output


def test_validation_is_a_seeded_random_part_of_train():
    x = np.arange(100, dtype=np.uint8)[:, None, None, None]
    labels = np.arange(100) // 10  # sorted by class, like the local CIFAR-10 copy
    fit, fit_labels, val = split_validation(x, labels, 20)
    again = split_validation(x, labels, 20)[2]
    assert len(fit) == 80 and len(val) == 20 and np.array_equal(val, again)
    assert not set(fit.ravel()) & set(val.ravel()) and len(set(labels[val.ravel()])) > 3
    assert np.array_equal(fit_labels, labels[fit.ravel()])


def test_gpu_script_resumes_chunk_by_chunk_on_cpu(tmp_path, images):
    """bench/gpu_train.sh with DEVICE=cpu: each call runs one chunk; calls go on until done."""
    np.savez(tmp_path / "d.npz", x_train=images, x_test=images[:8])
    env = {
        **os.environ,
        "DEVICE": "cpu",
        "CHUNK_MINUTES": "0",
        "LBAECODEC": f"{sys.executable} -m lbaecodec",
        "EXTRA": "--val-size 16 --threads 1",
        "REALISM_BATCH": "16",
        "FIDELITY": "--rate 0.1",
        "PYTHONPATH": str(REPO),
    }
    epochs, outputs = [], []
    for _ in range(5):
        r = subprocess.run(
            [
                "bash",
                str(REPO / "bench" / "gpu_train.sh"),
                "cifar10",
                str(tmp_path / "d.npz"),
                str(tmp_path / "run"),
                "0.001",
                "0.001",
                "4",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        outputs.append(r.stdout)
        stage = "realism" if (tmp_path / "run" / "realism" / "last.json").exists() else "fidelity"
        epochs.append((stage, load_checkpoint(tmp_path / "run" / stage).progress.epoch))
    assert epochs == [("fidelity", 1), ("fidelity", 2), ("realism", 1), ("realism", 2), ("realism", 2)]
    assert "all stages done" in outputs[-1]
    recipe = load_checkpoint(tmp_path / "run" / "realism").recipe  # cifar10-w64-r's, by default
    assert (recipe.adv_weight, recipe.adaptive, recipe.disc_norm, recipe.r1_gamma) == (0.05, False, "batch", 1.0)
    assert (recipe.disc_width, recipe.batch, recipe.rate) == (32, 16, 0)
    assert load_checkpoint(tmp_path / "run" / "fidelity").recipe.rate == 0.1  # FIDELITY: stage 1 only


def test_add_decoder_keeps_the_base_model_and_its_bits(runs, images, tmp_path):
    root, _ = runs
    base_path = export.export_run(
        root / "fidelity", "base", tmp_path / "base.safetensors", images, images[:16], "synthetic", "pytest"
    )
    base = zoo.load_model(base_path, "cpu")
    realism = Recipe(epochs=1, batch=32, stage="realism", disc_width=8, disc_warmup_steps=0)
    train(base.arch, images, images[:16], tmp_path / "realism", realism, init_from=base.net, show_progress=False)
    with pytest.raises(ValueError, match="new name"):
        export.add_realism(base, tmp_path / "realism", "base", tmp_path / "same.safetensors", images[:16], "pytest")
    with pytest.raises(ValueError, match="encoder differs"):  # trained on the fp32 run, not on this file
        export.add_realism(base, root / "realism", "base-r", tmp_path / "r.safetensors", images[:16], "pytest")
    path = export.add_realism(base, tmp_path / "realism", "base-r", tmp_path / "r.safetensors", images[:16], "pytest")
    new = zoo.load_model(path, "cpu")
    assert new.decoders == ("fidelity", "realism") and new.hash != base.hash
    old_tensors, new_tensors = load_file(str(base_path)), load_file(str(path))
    assert all(torch.equal(v, new_tensors[k]) for k, v in old_tensors.items())  # weights, stats, priors as they were
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["base_model"] == base.id and card["realism"]["epochs"] == 1 and card["epochs"] == 1
    x = torch.from_numpy(images[:8]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(new.net.encode(x), base.net.encode(x))


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_a_wider_realism_decoder_learns_to_reconstruct_then_ships_beside_the_narrow_one(
    runs, images, tmp_path, upsample
):
    root, _ = runs
    base_path = export.export_run(
        root / "fidelity", "base", tmp_path / "base.safetensors", images, images[:16], "synthetic", "pytest"
    )
    base = zoo.load_model(base_path, "cpu")
    np.savez(tmp_path / "c.npz", x_train=images, x_test=images[:16])
    common = ("train", "--data-dir", tmp_path / "c.npz", "--stage", "realism", "--batch", 16, "--epochs", 1)
    r = run(
        *common,
        *("--init-from", base_path, "--decoder-width", 8, "--upsample", upsample),
        *("--adv-weight", 0, "--bf16", "--out", tmp_path / "wide"),
    )
    assert r.exit_code == 0, r.output
    wide = load_checkpoint(tmp_path / "wide", "best")
    assert wide.arch.decoder_width == 8 and wide.model.decoder.width == 8 and base.arch.width == 4
    assert wide.arch.upsample == wide.model.decoder.upsample == upsample
    assert wide.disc is None and wide.progress.best_metric == "val_loss"  # λ = 0: no discriminator
    assert wide.recipe.bf16 and np.isfinite(wide.progress.history[-1]["val_loss"])  # bf16 autocast on CPU too
    assert all(torch.equal(v, wide.model.encoder.state_dict()[k]) for k, v in base.net.encoder.state_dict().items())
    more = ("--disc-width", 8, "--disc-warmup", 0, "--adv-weight", 0.1, "--fixed-weight", "--out", tmp_path / "adv")
    r = run(*common, "--init-from", tmp_path / "wide", *more)
    assert r.exit_code == 0, r.output
    adv = load_checkpoint(tmp_path / "adv")
    assert adv.disc is not None and adv.model.decoder.width == 8 and adv.progress.total_epochs == 2
    assert adv.model.decoder.upsample == upsample
    out = tmp_path / "wide.safetensors"
    r = run(
        "add-decoder",
        base_path,
        tmp_path / "adv",
        "--name",
        "base-w",
        "--out",
        out,
        "--dataset",
        "cifar10",
        "--data-dir",
        tmp_path / "c.npz",
    )
    assert r.exit_code == 0, r.output
    m = zoo.load_model(out, "cpu")
    assert m.realism.width == 8 and m.arch == base.arch and m.with_decoder("realism").arch.decoder_width == 8
    assert m.realism.upsample == m.with_decoder("realism").arch.upsample == upsample
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["realism"]["epochs"] == 2 and card["realism"]["width"] == 8 and card["realism"]["upsample"] == upsample
    assert "realism decoder (width 8, " in info._model_line(card)  # `lbaecodec models`
    codes = base.net.encode(torch.from_numpy(images[:4]).permute(0, 3, 1, 2).float() / 255)
    assert torch.equal(m.with_decoder("fidelity").decode(codes), base.net.decode(codes))
    assert m.with_decoder("realism").decode(codes).shape == (4, 3, 32, 32)


def test_a_realism_decoder_of_impossible_width_is_a_one_line_error(tmp_path):
    dual = zoo.load_model("dual", "cpu")
    tensors = {k: v for k, v in load_file(str(dual.path)).items() if not k.startswith(zoo.REALISM_PREFIX)}
    tensors[zoo.REALISM_PREFIX + "pixels.9.weight"] = torch.zeros(3, 512, 3, 3)
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=zoo.read_metadata(dual.path))
    with pytest.raises(ModelError, match="realism decoder: architecture width=512"):
        zoo.load_model(bad, "cpu")


def test_feature_matching_compares_discriminator_activations_of_each_pair():
    torch.manual_seed(0)
    disc = adversarial.PatchDiscriminator(3, width=8, norm="batch", depth=2)
    real = torch.rand(4, 3, 32, 32)
    assert [f.shape[1] for f in disc.features(real)] == [8, 16, 32]  # depth 2: two stride-2 layers, one 3×3
    assert adversarial.feature_matching_loss(disc, real, real).item() == 0
    fake = (real + 0.1 * torch.randn_like(real)).clamp(0, 1).requires_grad_(True)
    real.requires_grad_(True)
    loss = adversarial.feature_matching_loss(disc, real, fake)
    loss.backward()
    assert loss.item() > 0 and fake.grad.abs().sum() > 0 and real.grad is None  # originals are targets


def test_feature_matching_on_a_run_its_log_and_its_resume(runs, images, tmp_path):
    root, _ = runs
    common = realism_command(images, tmp_path)
    first = ("--init-from", root / "fidelity", "--disc-width", 8, "--disc-warmup", 0, "--fixed-weight")
    assert run(*common, *first, "--epochs", 1, "--adv-weight", 0.1, "--feature-match", 0.5).exit_code == 0
    assert load_checkpoint(tmp_path / "r").recipe.feature_match == 0.5
    assert run(*common, "--resume", "--epochs", 2, "--feature-match", 0).exit_code == 0
    assert load_checkpoint(tmp_path / "r").recipe.feature_match == 0
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert log[0]["train_fm"] > 0 and "train_fm" not in log[1]
    r = run(*common[:-2], "--out", tmp_path / "m", *first, "--adv-weight", 0, "--feature-match", 0.5)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--adv-weight > 0" in r.output


def test_perceptual_term_on_a_run_its_log_and_its_resume(runs, images, tmp_path):
    root, _ = runs
    common = realism_command(images, tmp_path)
    first = ("--init-from", root / "fidelity", "--disc-width", 8, "--disc-warmup", 0, "--fixed-weight")
    assert run(*common, *first, "--epochs", 1, "--perceptual", 0.5, "--perceptual-net", "vgg").exit_code == 0
    recipe = load_checkpoint(tmp_path / "r").recipe
    assert (recipe.perceptual, recipe.perceptual_net) == (0.5, "vgg")
    assert run(*common, "--resume", "--epochs", 2, "--perceptual", 0).exit_code == 0
    assert load_checkpoint(tmp_path / "r").recipe.perceptual == 0
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert log[0]["train_perceptual"] > 0 and "train_perceptual" not in log[1]


def test_perceptual_option_errors_in_one_line(monkeypatch):
    result = run("train", "--init-from", "cifar10", "--perceptual", 1)
    assert result.exit_code == 2 and result.output.splitlines() == [
        "error: --perceptual is a realism decoder's loss: use it with --stage realism"
    ]
    monkeypatch.setitem(sys.modules, "stlpips_pytorch", None)  # as if the train extra were not installed
    result = run("train", "--stage", "realism", "--init-from", "cifar10", "--perceptual", 1)
    assert result.exit_code == 6 and result.output.splitlines() == [
        "error: --perceptual needs the Python package 'stlpips_pytorch': pip install 'lbaecodec[train]'"
    ]


def test_a_multi_scale_discriminator_judges_the_halved_image_and_weighs_each_scale_alike():
    torch.manual_seed(0)
    disc = adversarial.MultiScaleDiscriminator(3, 4, "batch", depth=2, scales=2).eval()
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    logits = disc(x)
    coarse = disc.scales[1](torch.nn.functional.avg_pool2d(x, 2))
    assert logits.shape == (2, 2, 16, 16) and coarse.shape == (2, 1, 8, 8)
    assert torch.equal(logits[:, 1], coarse[:, 0].repeat_interleave(2, 1).repeat_interleave(2, 2))
    assert torch.allclose(logits.mean(), (disc.scales[0](x).mean() + coarse.mean()) / 2)
    logits[0, 1, 8, 8].backward()  # a coarse patch: 26 pixels of the halved image, 52 of the image
    seen = (x.grad.abs().sum(1)[0] > 0).nonzero()
    assert (seen.max(0).values - seen.min(0).values + 1).tolist() == [52, 52]
    assert len(disc.features(x)) == 6  # three inner layers per scale


def test_disc_scales_on_a_run_and_its_resume(runs, images, tmp_path):
    root, _ = runs
    common = realism_command(images, tmp_path)
    first = ("--init-from", root / "fidelity", "--disc-width", 8, "--disc-warmup", 0, "--disc-scales", 2)
    assert run(*common, *first, "--epochs", 1).exit_code == 0
    saved = load_checkpoint(tmp_path / "r").disc
    assert isinstance(saved, adversarial.MultiScaleDiscriminator) and len(saved.scales) == 2
    assert run(*common, "--resume", "--epochs", 2).exit_code == 0
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt.progress.epoch == 2 and ckpt.recipe.disc_scales == 2
    assert not torch.equal(ckpt.disc.scales[1].layers[0].weight, saved.scales[1].layers[0].weight)


def test_rec_scale_holds_the_decoder_to_the_pooled_image_only(runs):
    _, base = runs
    step = RealismStep(base, Recipe(stage="realism", adv_weight=0, rec_scale=2), World())
    x = torch.rand(2, 3, 32, 32) * 0.5 + 0.25
    detail = 0.1 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(16, 16)  # sums to 0 in every 2×2 block
    assert step._reconstruction_loss(None, x + detail, x).item() < 1e-12
    shifted = x + 0.1
    assert step._reconstruction_loss(None, shifted, x).item() == pytest.approx(0.01, rel=1e-4)


def test_rec_scale_on_a_run_its_resume_and_its_misuse(runs, images, tmp_path):
    root, _ = runs
    common = realism_command(images, tmp_path)
    first = ("--init-from", root / "fidelity", "--disc-width", 8, "--disc-warmup", 0, "--fixed-weight")
    assert run(*common, *first, "--epochs", 1, "--adv-weight", 0.1, "--rec-scale", 2).exit_code == 0
    assert run(*common, "--resume", "--epochs", 2).exit_code == 0
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt.progress.epoch == 2 and ckpt.recipe.rec_scale == 2
    assert run(*common, "--resume", "--epochs", 3, "--rec-scale", 1).exit_code == 0
    assert load_checkpoint(tmp_path / "r").recipe.rec_scale == 1
    r = run(*common[:-2], "--out", tmp_path / "m", *first, "--adv-weight", 0, "--rec-scale", 2)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--adv-weight > 0" in r.output
    assert run(*common[:-2], "--out", tmp_path / "m", *first, "--rec-scale", 3).exit_code == 2


def test_sampled_codes_are_decoded_beside_the_batch_and_judged_as_fakes(runs):
    _, base = runs
    torch.manual_seed(0)
    model = copy.deepcopy(base)
    recipe = Recipe(stage="realism", disc_width=8, disc_warmup_steps=0, disc_norm="batch", sample_adv=1.0)
    step = RealismStep(model, recipe, World())
    codes = np.where(np.random.default_rng(0).random((200, 32)) < 0.8, 1.0, -1.0)
    step.sampler = CopulaCodes(codes.mean(0), codes.T @ codes / len(codes), seed=0)
    judged = []
    step.disc.register_forward_pre_hook(lambda module, args: judged.append(args[0].detach().clone()))
    x = torch.rand(6, 3, 32, 32)
    logged = step(x, 0)
    assert [len(batch) for batch in judged] == [12, 6, 12]  # decoder's turn; then the real and the fake batch
    assert torch.equal(judged[0], judged[2]) and logged["g_sampled"] != 0
    with torch.no_grad():
        assert not torch.allclose(judged[2][:6], torch.sigmoid(model.decoder(model.encode(x))), atol=1e-3)
    drawn = step.sampler(8, torch.device("cpu"), np.random.default_rng(1)).numpy()  # as `sample --method cov`
    factor = generate.copula_factor(codes.mean(0), codes.T @ codes / len(codes))
    assert np.array_equal(drawn, generate.sample_codes(factor, 8, np.random.default_rng(1)))


def test_sample_adv_logs_the_samples_fid_keeps_every_epoch_and_resumes(runs, images, tmp_path):
    root, base = runs
    scored = []
    probe = FidProbe(images[:16], lambda decoded: scored.append(decoded) or float(decoded.mean()))
    recipe = Recipe(epochs=1, batch=16, stage="realism", disc_width=8, disc_warmup_steps=0, sample_adv=0.5)
    train(base.arch, images, images[:16], tmp_path / "s", recipe, init_from=base, show_progress=False, fid_probe=probe)
    resumed = replace(recipe, epochs=2)
    train(base.arch, images, images[:16], tmp_path / "s", resumed, resume=True, show_progress=False, fid_probe=probe)
    log = [json.loads(line) for line in (tmp_path / "s" / "log.jsonl").read_text().splitlines()]
    assert [r["val_sample_fid"] for r in log] == [float(scored[1].mean()), float(scored[3].mean())]
    assert all(r["train_g_sampled"] != 0 for r in log) and load_checkpoint(tmp_path / "s").recipe.sample_adv == 0.5
    assert scored[1].shape == scored[0].shape == (16, 32, 32, 3) and not np.array_equal(scored[0], scored[1])
    assert all((tmp_path / "s" / f"epoch-{n}.safetensors").is_file() for n in (1, 2))


def test_add_decoder_ships_the_epoch_chosen_from_the_log(runs, images, tmp_path):
    root, _ = runs
    base_path = export.export_run(
        root / "fidelity", "base", tmp_path / "base.safetensors", images, images[:16], "synthetic", "pytest"
    )
    base = zoo.load_model(base_path, "cpu")
    probe = FidProbe(images[:16], lambda decoded: float(decoded.mean()))
    recipe = Recipe(epochs=2, batch=32, stage="realism", disc_width=8, disc_warmup_steps=0, sample_adv=1.0)
    run_dir = tmp_path / "s"
    train(base.arch, images, images[:16], run_dir, recipe, init_from=base.net, show_progress=False, fid_probe=probe)
    path = export.add_realism(base, run_dir, "base-s", tmp_path / "s.safetensors", images[:16], "pytest", epoch=1)
    shipped = zoo.load_model(path, "cpu").realism.state_dict()
    kept = [load_file(str(run_dir / f"epoch-{n}.safetensors")) for n in (1, 2)]
    decoder_of = [{k.split("decoder.", 1)[1]: v.half() for k, v in t.items() if ".decoder." in f".{k}"} for t in kept]
    assert all(torch.equal(v.half(), decoder_of[0][k]) for k, v in shipped.items())
    assert not all(torch.equal(v.half(), decoder_of[1][k]) for k, v in shipped.items())
    card = json.loads(path.with_suffix(".json").read_text())["realism"]
    assert card["best_epoch"] == 1 and "epoch 1 chosen" in card["selected_on"]
    assert "val_sample_fid" in card["selected_on"]


def test_sample_adv_without_a_discriminator_is_a_one_line_error(images, tmp_path):
    common = realism_command(images, tmp_path)
    r = run(*common, "--init-from", "cifar10", "--adv-weight", 0, "--sample-adv", 1)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--adv-weight > 0" in r.output
    r = run("train", "--data-dir", tmp_path / "c.npz", "--sample-adv", 1)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--stage realism" in r.output


def test_validation_fid_images_are_spread_through_a_class_sorted_split():
    labels = np.repeat(np.arange(10), 50)  # sorted by class, as the local CIFAR-10 copy is
    picked = spread_subset(labels, 100)
    assert np.array_equal(np.bincount(picked, minlength=10), np.full(10, 10))
    assert np.array_equal(spread_subset(labels, 1000), labels)  # all of them when asked for more
