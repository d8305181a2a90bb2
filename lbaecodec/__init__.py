"""lbaecodec: a tiny-bitrate learned image codec built on the Latent Bernoulli Autoencoder."""
from .codec import decode, encode, info
from .errors import DataError, InputError, LbaeError, LbaeFormatError, ModelError
from .zoo import load_model

__all__ = [
    "encode", "decode", "info", "load_model",
    "LbaeError", "InputError", "LbaeFormatError", "ModelError", "DataError",
]
__version__ = "0.1.0"
