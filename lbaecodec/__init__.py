"""lbaecodec: a tiny-bitrate learned image codec built on the Latent Bernoulli Autoencoder.

``encode``, ``decode``, ``info``, ``load_model`` and ``Search`` are imported on first use, so that importing
the package (and the command line's help, ``info`` and ``models``) does not load torch."""

from importlib import import_module

from .errors import DataError, InputError, LbaeError, LbaeFormatError, ModelError

_LAZY = {"encode": "codec", "decode": "codec", "info": "fileinfo", "load_model": "zoo", "Search": "search"}

__all__ = [
    "encode",
    "decode",
    "info",
    "load_model",
    "Search",
    "LbaeError",
    "InputError",
    "LbaeFormatError",
    "ModelError",
    "DataError",
]
__version__ = "0.14.0"


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
