import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from lbaecodec import prior_tensors, zoo
from lbaecodec.architecture import PRESETS
from lbaecodec.container import Coding
from lbaecodec.lab import export, schedule
from lbaecodec.lab.train import Recipe, load_checkpoint, train
from lbaecodec.network import LBAE


@pytest.fixture(scope="module")
def images():
    """Smooth random images: learnable structure, unlike pure noise."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (96, 4, 4, 3)).astype(np.uint8)
    return np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory, images):
    out = tmp_path_factory.mktemp("run")
    arch = replace(PRESETS["cifar10"], width=4, bits=64)
    model, progress, _ = train(arch, images, images[:32], out, Recipe(epochs=3, batch=16, lr=3e-3), show_progress=False)
    return out, model, progress


def test_training_reduces_the_loss(run):
    _, _, progress = run
    losses = [h["val_loss"] for h in progress.history]
    assert losses[-1] < losses[0]
    assert progress.step == 3 * 6 and progress.cpu_seconds > 0


def test_checkpoint_and_log(run):
    out, _, progress = run
    assert (out / "last.safetensors").exists() and (out / "best.safetensors").exists()
    lines = (out / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    ckpt = load_checkpoint(out)
    assert ckpt.progress.epoch == 3 and ckpt.optim and ckpt.arch.bits == 64


def test_resume_continues_to_more_epochs(tmp_path, images):
    arch = replace(PRESETS["cifar10"], width=4, bits=32)
    recipe = Recipe(epochs=1, batch=32)
    train(arch, images, images[:16], tmp_path, recipe, show_progress=False)
    _, progress, _ = train(
        arch, images, images[:16], tmp_path, Recipe(epochs=2, batch=32), resume=True, show_progress=False
    )
    assert [h["epoch"] for h in progress.history] == [1, 2] and progress.step == 6


def test_export_and_load_round_trip(run, images, tmp_path):
    out, model, _ = run
    attributes = np.where(np.arange(len(images))[:, None] % 2 == 0, 1, -1) * np.array([1, -1])
    path = export.export_run(
        out,
        "tiny",
        tmp_path / "tiny.safetensors",
        images,
        images[:32],
        "synthetic",
        "pytest",
        attributes=(["Even", "Odd"], attributes),
    )
    loaded = zoo.load_model(path, device="cpu")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["epochs"] == 3 and card["model_id"] == loaded.id and card["command"] == "pytest"
    x = torch.from_numpy(images[:8]).permute(0, 3, 1, 2).float() / 255
    ref = load_checkpoint(out, "best").model.eval()
    assert (loaded.net.encode(x) == ref.encode(x)).float().mean() > 0.99  # fp16 weights
    assert torch.allclose(loaded.net.decode(ref.encode(x)), ref.decode(ref.encode(x)), atol=2e-3)
    assert loaded.extras[zoo.STATS_MOMENT].shape == (64, 64)
    assert card["attributes"] == ["Even", "Odd"]
    shipped = zoo.as_shipped(ref).state_dict()  # what export measures = what loading gives
    assert all(torch.equal(shipped[k], v.cpu()) for k, v in loaded.net.state_dict().items())
    directions = loaded.extras[zoo.ATTRIBUTE_DIRECTION]
    assert directions.shape == (2, 64) and torch.allclose(directions[0], -directions[1])
    assert prior_tensors.from_tensors(loaded.extras, Coding.CONTEXT) is not None


def test_code_statistics():
    codes = np.array([[1, 1], [1, -1], [-1, -1], [1, 1]], np.int8)
    s = export.code_statistics(codes)
    assert s[zoo.STATS_MEAN].tolist() == [0.5, 0.0]
    assert s[zoo.STATS_MOMENT].tolist() == [[1.0, 0.5], [0.5, 1.0]]


def test_model_files_never_unpickle(tmp_path):
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(b"\x80\x04\x95" + b"\0" * 64)  # a pickle header, not safetensors
    with pytest.raises(zoo.ModelError):
        zoo.load_model(bad, device="cpu")
    net = LBAE(replace(PRESETS["mnist"], width=4))
    path = zoo.export(net, "m", tmp_path / "m.safetensors")
    assert zoo.read_metadata(path)[zoo.META_NAME] == "m"


def test_continuing_from_shipped_weights_counts_their_epochs(run, images, tmp_path):
    from click.testing import CliRunner

    from lbaecodec import cli

    out, _, _ = run
    shipped = export.export_run(
        out, "cifar10", tmp_path / "w" / "c.safetensors", images, images[:32], "synthetic", "pytest"
    )
    np.savez(tmp_path / "c.npz", x_train=images, x_test=images[:16])
    r = CliRunner().invoke(
        cli.main,
        [
            "train",
            "--data-dir",
            str(tmp_path / "c.npz"),
            "--init-from",
            str(shipped),
            "--epochs",
            "1",
            "--batch",
            "32",
            "--out",
            str(tmp_path / "more"),
            "--export",
            str(tmp_path / "w2" / "c.safetensors"),
        ],
    )
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "w2" / "c.json").read_text())
    assert card["epochs"] == 4 and card["continued_from"] == zoo.load_model(shipped, "cpu").id
    assert card["architecture"]["bits"] == 64


def test_attributes_are_only_for_celeba(run):
    from click.testing import CliRunner

    from lbaecodec import cli

    r = CliRunner().invoke(cli.main, ["export", str(run[0]), "--preset", "cifar10", "--attributes", "a.txt"])
    assert r.exit_code == 2 and "--dataset celeba" in r.output


def test_the_cosine_schedule_falls_from_the_peak_to_its_floor():
    assert [schedule.cosine(2.0, t) for t in (0, 0.5, 1, 1.5)] == pytest.approx([2.0, 1.01, 0.02, 0.02])
    assert schedule.cosine(2.0, 1, floor=0) == 0 and schedule.cosine(2.0, 0.25) > schedule.cosine(2.0, 0.3)


def test_shift_moves_each_image_on_its_own_by_at_most_n_pixels():
    from lbaecodec.lab.train import shifter

    x = torch.rand(16, 3, 8, 8)
    torch.manual_seed(0)
    moved = shifter(2, (8, 8))(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    offsets = [
        next((dy, dx) for dy in range(5) for dx in range(5) if torch.equal(padded[i, :, dy : dy + 8, dx : dx + 8], m))
        for i, m in enumerate(moved)
    ]
    assert len(set(offsets)) > 1 and moved.shape == x.shape
    assert shifter(0, (8, 8))(x) is x


def whole_and_resumed(tmp_path, images, recipe: Recipe):
    """The last checkpoints of a 2-epoch run made in one go and of the same run cut after epoch 1
    and resumed."""
    arch = replace(PRESETS["cifar10"], width=4, bits=32)
    train(arch, images, images[:16], tmp_path / "whole", recipe, show_progress=False)
    train(arch, images, images[:16], tmp_path / "cut", recipe, show_progress=False, max_minutes=0)  # 1 epoch
    train(arch, images, images[:16], tmp_path / "cut", recipe, resume=True, show_progress=False)
    return load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "cut")


def test_a_resumed_shifted_run_repeats_an_uninterrupted_one(tmp_path, images):
    whole, cut = whole_and_resumed(tmp_path, images, Recipe(epochs=2, batch=32, shift=2))
    a, b = whole.model.state_dict(), cut.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_shift_is_kept_in_the_run_recipe(images, tmp_path):
    from click.testing import CliRunner

    from lbaecodec import cli

    np.savez(tmp_path / "c.npz", x_train=images, x_test=images[:16])
    args = ["train", "--data-dir", str(tmp_path / "c.npz"), "--width", "4", "--epochs", "1", "--batch", "32"]
    r = CliRunner().invoke(cli.main, [*args, "--shift", "2", "--out", str(tmp_path / "run"), "--no-export"])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "run").recipe.shift == 2
    r = CliRunner().invoke(cli.main, [*args, "--shift", "17"])
    assert r.exit_code == 2 and "at most half the 32-pixel tile" in r.output


def test_a_run_cut_by_the_clock_says_so_and_exports_nothing_even_when_resumed(images, tmp_path):
    from click.testing import CliRunner

    from lbaecodec import cli

    np.savez(tmp_path / "c.npz", x_train=images, x_test=images[:16])
    args = ["train", "--data-dir", str(tmp_path / "c.npz"), "--width", "4", "--batch", "32", "--max-minutes", "0"]
    args += ["--out", str(tmp_path / "run"), "--export", str(tmp_path / "m.safetensors")]
    first = CliRunner().invoke(cli.main, [*args, "--epochs", "3"])
    resumed = CliRunner().invoke(cli.main, [*args, "--resume"])  # the plan from the checkpoint
    assert first.exit_code == 0 and resumed.exit_code == 0, first.output + resumed.output
    assert "stopped after epoch 1 of 3" in first.output
    assert "stopped after epoch 2 of 3" in resumed.output
    assert not (tmp_path / "m.safetensors").exists()
