"""One optimisation step of each training stage: the whole network on its reconstruction loss,
optionally plus the codes' rate (fidelity), or the realism decoder against a patch
discriminator (realism), which may also judge the decoder's images of sampled codes."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..architecture import Architecture, ModelKind
from ..network import LBAE, SignSTE
from . import adversarial, distributed
from .checkpoint import Recipe, discriminator
from .generate import copula_factor, sample_codes
from .perceptual import perceptual_distance
from .rate import RateTerm


def loss_fn(arch: Architecture, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    if arch.loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(torch.sigmoid(logits), target)


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


class FidelityStep:
    """One optimiser step of the whole network on its reconstruction (+ auxiliary) loss; with a
    rate term, also on the codes' cost, then one step of the prior that prices them."""

    def __init__(
        self,
        model: torch.nn.Module,
        recipe: Recipe,
        world: distributed.World,
        rate_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.model, self.recipe, self.world = model, recipe, world
        self.opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        self.rate = None  # with a rate term: the prior that prices the codes (lab/rate.py)
        if recipe.rate > 0:
            if model.kind != ModelKind.LBAE:
                raise ValueError("a rate term prices an LBAE's bits")
            self.rate = RateTerm(model.code_bits).to(device_of(model))
            if rate_state:  # else the loop warm-starts it on the starting network's codes
                self.rate.load_tensors(rate_state)
        if self.rate is not None:  # needs the codes too; averages the ranks' gradients after the backward pass
            self.codes_and_logits = _compiled(model.codes_and_logits) if recipe.compile else model.codes_and_logits
        else:
            if world.size > 1:  # gradients averaged over the ranks during the backward pass
                model = torch.nn.parallel.DistributedDataParallel(model)
            self.forward = _compiled(model) if recipe.compile else model

    def train_mode(self) -> None:
        self.model.train()

    def evaluated(self) -> torch.nn.Module:
        """The network that is evaluated and kept as the best."""
        return self.model

    def __call__(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        if self.rate is not None:
            return self._rated_step(x)
        with _autocast(x.device, self.recipe.bf16):
            logits, aux_loss = self.forward(x)
        loss = loss_fn(self.model.arch, logits, x) + aux_loss.float()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def _rated_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reconstruction loss plus the rate term's weight × the codes' bits per image value;
        then one step of the prior on the same codes."""
        with _autocast(x.device, self.recipe.bf16):
            codes, logits = self.codes_and_logits(x)
        rec = loss_fn(self.model.arch, logits, x)
        bits = self.rate(codes)
        loss = rec + self.recipe.rate * bits / x[0].numel()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.model.parameters(), self.world)
        self.opt.step()
        self.rate.fit_step(codes, self.world)
        return {"loss": rec.detach(), "bits": bits.detach()}


class CopulaCodes:
    """Codes drawn as `sample --method cov` draws them: the Gaussian copula of the training codes'
    means and second moments (``generate.py``)."""

    def __init__(self, mean: np.ndarray, moment: np.ndarray, seed: int) -> None:
        self.factor = copula_factor(mean, moment)
        self.rng = np.random.default_rng(seed)

    def __call__(self, n: int, device: torch.device, rng: np.random.Generator | None = None) -> torch.Tensor:
        return torch.from_numpy(sample_codes(self.factor, n, rng or self.rng)).to(device)


class RealismStep:
    """One step of the realism decoder (frozen encoder) and one of its discriminator."""

    def __init__(
        self,
        model: LBAE,
        recipe: Recipe,
        world: distributed.World,
        disc: adversarial.Discriminator | None = None,
        ema_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if model.kind != ModelKind.LBAE:
            raise ValueError("the realism stage trains an LBAE decoder")
        self.model, self.recipe, self.world = model, recipe, world
        model.encoder.requires_grad_(False)
        self.opt = torch.optim.Adam(model.decoder.parameters(), lr=recipe.lr, betas=(0.5, 0.9))
        self.sampler: CopulaCodes | None = None  # set by the loop when recipe.sample_adv > 0
        self.disc, self.opt_d = None, None  # λ = 0: the decoder learns to reconstruct, no discriminator
        if recipe.adv_weight > 0:
            disc = disc or discriminator(model.arch.channels, recipe)
            self.disc = disc.to(device_of(model)).to(memory_format=torch.channels_last)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=recipe.disc_lr, betas=(0.5, 0.9))
        self.augment = adversarial.augmenter(recipe.disc_augment)
        self.perceptual = perceptual_distance(recipe.perceptual_net).to(device_of(model)) if recipe.perceptual else None
        # not compiled: the adaptive weight differentiates the decoder twice (retain_graph), which
        # compiled backward graphs refuse (donated buffers); the fidelity stage is the long one
        self.decoder = model.decoder
        self.last_layer = model.decoder.pixels[-1].weight
        self.ema = None  # a moving average of the decoder's weights and BatchNorm statistics
        if recipe.ema:
            self.ema = AveragedModel(model.decoder, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema), use_buffers=True)
            if ema_state:  # else it starts from the decoder as it is (e.g. a resume that adds --ema)
                self.ema.load_state_dict(ema_state)

    def evaluated(self) -> LBAE:
        """The network that is evaluated and kept as the best: with a moving average, its decoder."""
        return self.model if self.ema is None else self.model.with_decoder(self.ema.module)

    def train_mode(self) -> None:
        self.model.decoder.train()
        self.model.encoder.eval()
        if self.disc is not None:
            self.disc.train()

    def __call__(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # float32, as the codec encodes: near-zero latents keep their signs
            codes = SignSTE.apply(self.model.encoder(x))
        if self.sampler is not None:  # one decoder pass over the codes and as many sampled ones
            codes = torch.cat([codes, self.sampler(len(x), x.device)])
        with _autocast(x.device, self.recipe.bf16):
            logits = self.decoder(codes)
        decoded = torch.sigmoid(logits.float())
        logits, fake = logits[: len(x)], decoded[: len(x)]
        rec = self._reconstruction_loss(logits, fake, x)
        logged = {"loss": rec.detach()}
        if self.perceptual is not None:  # part of the reconstruction loss that the adaptive weight balances
            distance = self.perceptual(fake, x).mean()
            rec = rec + self.recipe.perceptual * distance
            logged["perceptual"] = distance.detach()
        adversarial_on = self.disc is not None and step >= self.recipe.disc_warmup_steps
        if adversarial_on:
            with _autocast(x.device, self.recipe.bf16):
                verdicts = self.disc(self.augment(decoded)).float()
            g_adv = adversarial.generator_loss(verdicts[: len(x)])
            if self.sampler is not None:
                g_sampled = adversarial.generator_loss(verdicts[len(x) :])
                g_adv = g_adv + self.recipe.sample_adv * g_sampled
                logged["g_sampled"] = g_sampled.detach()
            weight = self.recipe.adv_weight * (
                adversarial.adaptive_weight(rec, g_adv, self.last_layer)
                if self.recipe.adaptive
                else torch.ones((), device=x.device)
            )
            loss = rec + weight * g_adv
            if self.recipe.feature_match:
                with _autocast(x.device, self.recipe.bf16):
                    fm = adversarial.feature_matching_loss(self.disc, x, fake)
                loss = loss + self.recipe.feature_match * fm
                logged["fm"] = fm.detach()
        else:
            weight, loss = torch.zeros((), device=x.device), rec
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.decoder.parameters(), self.world)
        self.opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.decoder)
        logged["adv_weight"] = weight
        if self.disc is not None:  # sampled codes' images are fakes too
            logged.update(self._discriminator_step(x, decoded.detach()))
        return logged

    def _reconstruction_loss(self, logits: torch.Tensor, fake: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        scale = self.recipe.rec_scale
        if scale == 1:
            return loss_fn(self.model.arch, logits, x)
        # only the coarse image is held to the original: finer detail is the adversary's to judge
        return F.mse_loss(F.avg_pool2d(fake, scale), F.avg_pool2d(x, scale))

    def _discriminator_step(self, x: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        logged = {}
        real = self.augment(x)
        with _autocast(x.device, self.recipe.bf16):
            d_loss = adversarial.hinge_d_loss(self.disc(real).float(), self.disc(self.augment(fake)).float())
            logged["d_loss"] = d_loss.detach()
            if self.recipe.r1_gamma:
                r1 = adversarial.r1_penalty(self.disc, real)
                logged["r1"] = r1.detach()
                d_loss = d_loss + self.recipe.r1_gamma / 2 * r1
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        distributed.average_gradients(self.disc.parameters(), self.world)
        self.opt_d.step()
        return logged


def _compiled(module: Callable):
    """``torch.compile(module)`` (a module or a function), falling back to eager mode if compiling
    fails (no compiler)."""
    compiled = torch.compile(module)

    def run(*args):
        nonlocal compiled
        try:
            return compiled(*args)
        except Exception as e:  # compile errors surface on the first call, as any exception type
            if compiled is module:
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); running eagerly")
            compiled = module
            return module(*args)

    return run


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
