"""A Pillow plugin: ``Image.open("x.lbae")`` decodes and ``img.save("x.lbae", model=...)`` encodes.

Importing this module registers the plugin with its defaults; :func:`register_lbae_opener`
registers it again with other decode options (as pillow-heif's ``register_heif_opener`` does)::

    import lbaecodec.pillow
    from PIL import Image

    Image.open("photo.lbae").save("photo.png")
    Image.open("photo.png").save("photo.lbae", model="cifar10", coding="auto")

Opening reads and checks the header only (size and mode are known at once, as Pillow expects);
the network runs on the first access to the pixels. Files that are not .lbae files go to
Pillow's other plugins untouched; a corrupted .lbae file raises our ``LbaeFormatError``.
"""

from __future__ import annotations

from typing import IO, Any

from PIL import Image, ImageFile

from . import container, quality
from .architecture import FIDELITY
from .errors import LbaeFormatError
from .fileinfo import PILLOW_LIMIT, check_header, pixel_limit, with_installed_model

FORMAT = "LBAE"
EXTENSION = ".lbae"
MIME = "image/x-lbae"
_options: dict[str, Any] = {"decoder": FIDELITY, "device": "cpu", "max_pixels": PILLOW_LIMIT}


def _accept(prefix: bytes) -> bool:
    return prefix[: len(container.MAGIC)] == container.MAGIC


class LbaeImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "lbaecodec learned image codec"

    def _open(self) -> None:
        data = self.fp.read()
        header, payload = container.read(data)  # LbaeFormatError for a corrupted file of ours
        check_header(header, payload, pixel_limit(_options["max_pixels"]))
        self._size = (header.width, header.height)
        self._mode = container.MODES[header.mode]
        self.info.update(lbae_model=with_installed_model(header).model_id, lbae_coding=header.coding.label)
        self._lbae_data: bytes | None = data
        self.tile = []  # no Pillow decoder: load() runs the network

    def load(self):
        if self._lbae_data is not None:
            from . import codec

            decoded = codec.decode(
                self._lbae_data, decoder=_options["decoder"], device=_options["device"], max_pixels=None
            )
            self.im = decoded.im
            self._lbae_data = None
        return super().load()


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """``img.save(path, model=..., coding=..., quality=..., device=...)``: the options of
    ``lbaecodec encode`` (``quality`` 1–5, as ``--quality``)."""
    from . import codec

    options = im.encoderinfo
    unknown = set(options) - {"model", "coding", "quality", "device", "max_pixels"}
    if unknown:
        raise ValueError(f"unknown .lbae save options: {', '.join(sorted(unknown))}")
    fp.write(
        codec.encode(
            im,
            model=options.get("model"),
            coding=options.get("coding", "auto"),
            device=options.get("device", _options["device"]),
            max_pixels=options.get("max_pixels", _options["max_pixels"]),
            quality_level=options.get("quality", quality.NATIVE),
        )
    )


def register_lbae_opener(decoder: str = FIDELITY, device: str = "cpu", max_pixels: int | None = PILLOW_LIMIT) -> None:
    """Let Pillow open and save .lbae files. ``decoder``: fidelity, realism or auto (as
    ``lbaecodec decode --decoder``); ``device``: where the network runs; ``max_pixels``:
    headers claiming more pixels are refused before any work (None: no limit of ours)."""
    _options.update(decoder=decoder, device=device, max_pixels=max_pixels)
    Image.register_open(FORMAT, LbaeImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register_lbae_opener()

__all__ = ["LbaeImageFile", "LbaeFormatError", "register_lbae_opener"]
