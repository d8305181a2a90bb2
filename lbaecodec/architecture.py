"""What a model is made of, without torch: the architecture record (checked before anything is
built), the presets, and the names of its decoders. Light to import: the command line's help,
`info` and `models` need it without loading torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import Enum

from .errors import InputError, ModelError

FIDELITY, REALISM, AUTO = "fidelity", "realism", "auto"
# the seam post-filter (deblock.PostFilter): its default size, and the largest a model file may hold
FILTER_WIDTH, FILTER_LAYERS = 16, 3
MAX_FILTER_WIDTH, MAX_FILTER_LAYERS = 256, 16
DECODERS = (FIDELITY, REALISM)  # AUTO: realism where the model has one, else fidelity
SAMPLE_METHODS = ("cov", "prior", "random")  # how `sample` draws codes (lab/generate.py)
SAMPLE_REFINE, MAX_REFINE = 10, 100  # `sample`'s default rounds of decode → encode, and the most it takes
STAGES = DECODERS  # a training stage is named after the decoder it trains
DISC_NORMS = ("batch", "spectral")  # the realism discriminator's normalisation (lab/adversarial.py)
DISC_AUGMENTS = ("color", "translation", "cutout")  # DiffAugment's policy parts, in the order applied
PERCEPTUAL_NETS = ("alex", "vgg")  # trunks of the realism loss's perceptual term (lab/perceptual.py)
# how a decoder doubles its resolution: 4×4 stride-2 transposed convolutions (the paper's), or a
# nearest-neighbour resize then a 3×3 convolution (no checkerboard under adversarial training)
TRANSPOSE, RESIZE = "transpose", "resize"
UPSAMPLES = (TRANSPOSE, RESIZE)


def pick_decoder(decoder: str, available: tuple[str, ...], model_id: str) -> str:
    """The decoder ``decoder`` names among a model's ``available`` ones (in DECODERS order):
    ``auto`` is realism where the model has one. One-line errors for unknown or missing ones."""
    name = available[-1] if decoder == AUTO else decoder
    if name not in DECODERS:
        raise InputError(f"unknown decoder {decoder!r}; choose from {', '.join((*DECODERS, AUTO))}")
    if name not in available:
        raise ModelError(f"model {model_id} has no {name} decoder (it has: {', '.join(available)})")
    return name


class ModelKind(str, Enum):
    """What network a model file holds; the value is stored in its metadata."""

    LBAE = "lbae"  # the codec
    VAE = "vae"  # the paper's baselines, for the bench (built by lbaecodec.lab.baselines)
    VQVAE = "vqvae"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return {"lbae": "LBAE", "vae": "VAE", "vqvae": "VQ-VAE"}[self.value]


BASELINES = (ModelKind.VAE, ModelKind.VQVAE)


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild a network before its weights are loaded."""

    channels: int  # image channels: 1 (gray) or 3 (RGB)
    size: int  # tile side in pixels (a power of two, at least 8)
    bits: int  # latent bits per tile
    width: int = 64  # channels of the first layer; doubles at each down-sampling
    loss: str = "mse"  # "mse" for RGB, "bce" for near-binary data such as MNIST
    # the decoder's width where it differs from the encoder's (a wider realism decoder, trained
    # on a shipped encoder's codes); None: ``width``
    decoder_width: int | None = None
    upsample: str = TRANSPOSE  # the decoder's: UPSAMPLES

    def to_dict(self) -> dict:
        d = asdict(self)
        for name, default in (("decoder_width", None), ("upsample", TRANSPOSE)):
            if d[name] == default:  # as before the field existed: model files' metadata unchanged
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        """From a model file's metadata, checked before anything is allocated."""
        if not isinstance(d, dict):
            raise ValueError("architecture is not a JSON object")
        arch = cls(
            **{k: d[k] for k in ("channels", "size", "bits", "width", "loss")},
            decoder_width=d.get("decoder_width"),
            upsample=d.get("upsample", TRANSPOSE),
        )
        arch.check()
        return arch

    @property
    def decoder_arch(self) -> Architecture:
        """The architecture the decoder is built from: ``width`` is the decoder's."""
        return replace(self, width=self.width if self.decoder_width is None else self.decoder_width, decoder_width=None)

    def with_decoder(self, width: int, upsample: str) -> Architecture:
        """This architecture with a decoder of ``width`` channels (None where that is ``width``)
        that upsamples by ``upsample``."""
        return replace(self, decoder_width=None if width == self.width else width, upsample=upsample)

    @property
    def encoder_arch(self) -> Architecture:
        """This architecture without its decoder's own width and upsampling (what the codes depend on)."""
        return replace(self, decoder_width=None, upsample=TRANSPOSE)

    def check(self) -> None:
        """Types and ranges a file may claim (a width of 400 would allocate gigabytes)."""
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"architecture {name}={value!r} outside {low}..{high}")
        if self.decoder_width is not None:
            self.decoder_arch.check()
        if self.channels not in (1, 3) or self.loss not in ("mse", "bce") or self.upsample not in UPSAMPLES:
            raise ValueError(f"architecture channels={self.channels!r}, loss={self.loss!r}, upsample={self.upsample!r}")
        _levels(self.size)


LIMITS = {"channels": (1, 3), "size": (8, 256), "bits": (1, 16384), "width": (1, 256)}

PRESETS: dict[str, Architecture] = {
    "mnist": Architecture(channels=1, size=32, bits=200, loss="bce"),
    "fashion-mnist": Architecture(channels=1, size=32, bits=200, loss="bce"),
    "cifar10": Architecture(channels=3, size=32, bits=600),
    "celeba": Architecture(channels=3, size=64, bits=1500),
    "photo": Architecture(channels=3, size=32, bits=600),  # tiles of photographs (lab/photos.py)
}

BOTTOM = 4  # spatial side of the innermost feature map
MAX_WIDTH_FACTOR = 8


def _levels(size: int) -> int:
    levels = (size // BOTTOM).bit_length() - 1
    if size < 2 * BOTTOM or BOTTOM << levels != size:
        raise ValueError(f"tile size must be a power of two >= {2 * BOTTOM}, got {size}")
    return levels


def level_width(width: int, level: int) -> int:
    return width * min(2**level, MAX_WIDTH_FACTOR)


DATASETS = tuple(PRESETS)  # the datasets lbaecodec can load, each with its preset
