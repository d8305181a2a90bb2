"""The lab: what makes and measures models — datasets, training, export, baselines, generation
and the bench. The runtime codec (``lbaecodec``) never imports from here; the lab registers its
baseline networks with the runtime's model loader when it is imported."""

from . import baselines  # noqa: F401  (registers the VAE and VQ-VAE model kinds)
