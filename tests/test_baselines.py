import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lbaecodec import cli, zoo
from lbaecodec.architecture import PRESETS, ModelKind
from lbaecodec.errors import ModelError
from lbaecodec.lab import bench, export
from lbaecodec.lab.baselines import baseline_architecture
from lbaecodec.lab.train import Recipe, train
from lbaecodec.network import build_network

from .test_bench import StubFeatures

ARCH = replace(PRESETS["cifar10"], width=4)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return np.repeat(np.repeat(rng.integers(0, 256, (64, 4, 4, 3)).astype(np.uint8), 8, axis=1), 8, axis=2)


@pytest.mark.parametrize("kind, bits", [("vae", 4096), ("vqvae", 5760)])
def test_code_sizes_follow_the_paper(kind, bits):
    net = build_network(ModelKind(kind), ARCH).eval()
    assert net.code_bits == bits
    x = torch.rand(2, 3, 32, 32)
    assert net.reconstruct(x).shape == x.shape
    logits, aux = net.train()(x)
    assert logits.shape == x.shape and aux.dim() == 0 and aux.item() >= 0


@pytest.mark.parametrize("dataset, bits", [("mnist", 512), ("fashion-mnist", 512), ("celeba", 2048), ("cifar10", 4096)])
def test_vae_codes_the_papers_latent_bits(dataset, bits):
    arch = baseline_architecture(replace(PRESETS[dataset], width=4), ModelKind.VAE, dataset)
    net = build_network(ModelKind.VAE, arch).eval()
    assert net.code_bits == bits and net.latents == bits // 32
    x = torch.rand(2, arch.channels, arch.size, arch.size)
    assert net.reconstruct(x).shape == x.shape
    assert baseline_architecture(arch, ModelKind.VQVAE, dataset) == arch


def test_vae_files_from_before_the_paper_sizes_keep_their_128_latents():
    assert ARCH.bits == 600  # what the shipped vae-cifar10 file's architecture says
    assert build_network(ModelKind.VAE, ARCH).latents == 128


def test_vqvae_indexes_grid():
    idx = build_network(ModelKind("vqvae"), ARCH).eval().indexes(torch.rand(3, 3, 32, 32))
    assert idx.shape == (3, 8, 8, 10) and 0 <= idx.min() and idx.max() < 512


def test_baseline_kinds_come_from_the_lab(monkeypatch):
    from lbaecodec import network

    monkeypatch.delitem(network.NETWORKS, ModelKind.VAE)  # as if lbaecodec.lab were never imported
    with pytest.raises(ModelError, match="built by the lab"):
        build_network(ModelKind.VAE, ARCH)
    with pytest.raises(ValueError):
        ModelKind("gan")


@pytest.mark.parametrize("kind", ["vae", "vqvae"])
def test_baseline_trains_exports_and_benches(kind, images, tmp_path):
    run = tmp_path / "run"
    _, progress, _ = train(
        ARCH, images, images[:16], run, Recipe(epochs=3, batch=16, lr=3e-3), show_progress=False, kind=kind
    )
    losses = [h["val_loss"] for h in progress.history]
    assert losses[-1] < losses[0]
    path = export.export_baseline(
        run, f"{kind}-tiny", tmp_path / f"{kind}.safetensors", len(images), images[:16], "synthetic", "pytest"
    )
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["kind"] == kind and card["epochs"] == 3 and card["test_psnr_db"] > 0
    with pytest.raises(ModelError, match=f"holds a {ModelKind(kind).label} network, not LBAE"):
        zoo.load_model(path, device="cpu")
    m = zoo.load_model(path, device="cpu", kinds=(kind,))
    rows = bench.run(
        zoo.load_model("cifar10", device="cpu"),
        "cifar10",
        images[:8],
        tmp_path / "b",
        StubFeatures(),
        None,
        {},
        "synthetic",
        samples=(),
        baselines=[m],
    )
    row = next(r for r in rows if r.method == bench.row_name(m))
    assert row.method.startswith({"vae": "VAE (", "vqvae": "VQ-VAE ("}[kind])
    assert row.code_bits == m.net.code_bits and row.file_bytes == m.net.code_bits / 8
    assert row.ratio_code == round(24576 / m.net.code_bits, 2) and row.psnr > 0
    card = json.loads(bench.record_in_card(m, row, "synthetic", 8).read_text())  # bench --update-card
    assert card["kind"] == kind and card["test_fid"]["fid"] == row.fid


def test_codec_refuses_a_baseline(images, tmp_path):
    path = zoo.export(build_network(ModelKind("vae"), ARCH), "vae-x", tmp_path / "vae.safetensors")
    src = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(images[0]).save(src)
    r = CliRunner().invoke(cli.main, ["encode", str(src), str(tmp_path / "a.lbae"), "-m", str(path)])
    assert r.exit_code == 4 and "holds a VAE network, not LBAE" in r.output
