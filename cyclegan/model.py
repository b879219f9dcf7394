"""The CycleGAN: two generators, two discriminators, their optimizers and one training step.

Naming follows the reference: ``G_A`` maps A → B (normal → covid), ``G_B`` maps B → A;
``D_A`` judges ``G_A``'s outputs against real B images, ``D_B`` judges ``G_B``'s against real A.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from runkit import distributed
from runkit.device import adam, autocast, grad_scaler

from .config import GANConfig
from .data import confine
from .losses import LSGANLoss
from .networks import PatchDiscriminator, ResnetGenerator, init_weights
from .pool import ImagePool

CHANNELS = 1
NETWORKS = ("G_A", "G_B", "D_A", "D_B")
LOSS_NAMES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stops without saving the broken state."""


def build_generator(config: GANConfig) -> ResnetGenerator:
    return init_weights(ResnetGenerator(CHANNELS, config.ngf, config.n_blocks, config.upsample))


def build_discriminator(config: GANConfig) -> PatchDiscriminator:
    return init_weights(PatchDiscriminator(CHANNELS, config.ndf))


def lr_factor(iteration: int, iterations: int, decay_iterations: int) -> float:
    """Learning-rate multiplier for the update at 0-based ``iteration``: 1, then linear to ~0."""
    constant = iterations - decay_iterations
    return 1.0 - max(0, iteration - constant + 1) / (decay_iterations + 1)


def load_network(net: nn.Module, state: dict, name: str, source: Path | str) -> None:
    """``net.load_state_dict(state)`` with an error naming ``source`` and what differs."""
    own = net.state_dict()
    problems = [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    problems += [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in own.items() if k in state and state[k].shape != v.shape]
    if problems:
        first_conv = next(v for k, v in state.items() if k.endswith("weight") and v.dim() == 4)
        hint = (f" (the checkpoint's {name} takes {first_conv.shape[1]} input channel(s); "
                f"this project uses {CHANNELS})" if first_conv.shape[1] != CHANNELS else "")
        shown = "; ".join(problems[:4]) + (f"; … {len(problems) - 4} more" if len(problems) > 4 else "")
        raise ValueError(f"{source}: {name} does not fit the configured network{hint}: {shown}")
    net.load_state_dict(state)


class GeneratorPass(nn.Module):
    """Every generator call of a G step in one ``forward``: DistributedDataParallel averages the
    gradients of one call per step, so the two generators are called through this one module."""

    def __init__(self, G_A: nn.Module, G_B: nn.Module):
        super().__init__()
        self.G_A, self.G_B = G_A, G_B

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor, identity: bool,
                mask_A: torch.Tensor | None = None, mask_B: torch.Tensor | None = None):
        # A generator's translation and identity passes run as one batch: instance norm is
        # per image, so the result equals two calls, with fewer and larger matrix products.
        # With masks (the lungs region) every output is black outside its input's lungs.
        fake_B, idt_A = _generate(self.G_A, real_A, real_B if identity else None)
        fake_A, idt_B = _generate(self.G_B, real_B, real_A if identity else None)
        fake_B, idt_B, fake_A, idt_A = (confine(fake_B, mask_A), confine(idt_B, mask_A), confine(fake_A, mask_B),
                                        confine(idt_A, mask_B))
        return fake_B, idt_A, fake_A, idt_B, confine(self.G_B(fake_B), mask_A), confine(self.G_A(fake_A), mask_B)


class DiscriminatorPass(nn.Module):
    """Both discriminators on real and (pooled) fake images in one ``forward`` (see above);
    returns ``(D_A real, D_A fake), (D_B real, D_B fake)`` predictions."""

    def __init__(self, D_A: nn.Module, D_B: nn.Module):
        super().__init__()
        self.D_A, self.D_B = D_A, D_B

    def forward(self, real_A, real_B, fake_A, fake_B):
        # one call per discriminator on real and fake together: instance norm is per image
        return (self.D_A(torch.cat([real_B, fake_B])).chunk(2),
                self.D_B(torch.cat([real_A, fake_A])).chunk(2))


def _generate(net: nn.Module, source: torch.Tensor, same_domain: torch.Tensor | None):
    """``net(source)`` and, when given, ``net(same_domain)`` (the identity pass), in one call."""
    if same_domain is None:
        return net(source), None
    return net(torch.cat([source, same_domain])).chunk(2)


class CycleGAN:
    """Networks, optimizers, LR schedules, image pools and the reference training step.

    With several ranks (``world``), the generator and discriminator passes are wrapped in
    DistributedDataParallel: each rank steps on its own images and gradients are averaged, so
    N ranks at batch b update exactly as one process at batch N·b would (instance norm is per
    image). Each rank keeps its own image pool.
    """

    def __init__(self, config: GANConfig, device: torch.device, world: distributed.World = distributed.World()):
        self.config = config
        self.device = device
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.nets: dict[str, nn.Module] = {
            "G_A": build_generator(config), "G_B": build_generator(config),
            "D_A": build_discriminator(config), "D_B": build_discriminator(config)}
        for net in self.nets.values():
            net.to(device=device, memory_format=self.memory_format)
        betas = (config.beta1, config.beta2)
        self.opt_G = adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr=config.lr, betas=betas)
        self.opt_D = adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=config.lr, betas=betas)
        decay = config.decay_iterations
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(
            opt, lambda it: lr_factor(it, config.iterations, decay)) for opt in (self.opt_G, self.opt_D)]
        self.scaler = grad_scaler(device, config.precision)
        self.gan_loss = LSGANLoss().to(device)
        self.pool_fake_A = ImagePool(config.pool_size)
        self.pool_fake_B = ImagePool(config.pool_size)
        self.generators = distributed.wrap(GeneratorPass(self.G_A, self.G_B), world, device)
        self.discriminators = distributed.wrap(DiscriminatorPass(self.D_A, self.D_B), world, device)

    G_A = property(lambda self: self.nets["G_A"])
    G_B = property(lambda self: self.nets["G_B"])
    D_A = property(lambda self: self.nets["D_A"])
    D_B = property(lambda self: self.nets["D_B"])

    @property
    def lr(self) -> float:
        return self.opt_G.param_groups[0]["lr"]

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def prepare_masks(self, *masks: torch.Tensor | None) -> list[torch.Tensor | None]:
        return [None if m is None else self.prepare(m) for m in masks]

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor, mask_A: torch.Tensor | None = None,
             mask_B: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One iteration: G step with both D frozen, then D step on pooled fakes. Returns the
        detached loss terms (means over all ranks); raises :class:`NonFiniteLossError` before any
        update they would spoil. ``mask_A``, ``mask_B`` (the lungs region): what of each image is
        lung; every generator output is confined to its input's."""
        real_A, real_B = self.prepare(real_A), self.prepare(real_B)
        masks = self.prepare_masks(mask_A, mask_B)
        cfg = self.config
        identity = cfg.lambda_identity > 0
        with autocast(self.device, self.config.precision):
            fake_B, idt_A, fake_A, idt_B, rec_A, rec_B = self.generators(real_A, real_B, identity, *masks)
        self._set_discriminators_trainable(False)
        self.opt_G.zero_grad(set_to_none=True)
        with autocast(self.device, self.config.precision):
            losses = {"G_A": self.gan_loss(self.D_A(fake_B), True),
                      "G_B": self.gan_loss(self.D_B(fake_A), True),
                      "cycle_A": F.l1_loss(rec_A, real_A) * cfg.lambda_cycle,
                      "cycle_B": F.l1_loss(rec_B, real_B) * cfg.lambda_cycle}
            if identity:
                weight = cfg.lambda_cycle * cfg.lambda_identity
                losses["idt_A"] = F.l1_loss(idt_A, real_B) * weight
                losses["idt_B"] = F.l1_loss(idt_B, real_A) * weight
            loss_G = sum(losses.values())
        self._require_finite(losses)
        self.scaler.scale(loss_G).backward()
        self.scaler.step(self.opt_G)

        self._set_discriminators_trainable(True)
        self.opt_D.zero_grad(set_to_none=True)
        with autocast(self.device, self.config.precision):
            pooled_B = self.pool_fake_B.query(fake_B)  # the reference's order of pool draws
            pooled_A = self.pool_fake_A.query(fake_A)
            (real_B_pred, fake_B_pred), (real_A_pred, fake_A_pred) = self.discriminators(
                real_A, real_B, pooled_A.detach(), pooled_B.detach())
            losses["D_A"] = self._discriminator_loss(real_B_pred, fake_B_pred)
            losses["D_B"] = self._discriminator_loss(real_A_pred, fake_A_pred)
        averaged = self._require_finite(losses)
        self.scaler.scale(losses["D_A"] + losses["D_B"]).backward()
        self.scaler.step(self.opt_D)
        self.scaler.update()
        for scheduler in self.schedulers:
            scheduler.step()
        return dict(zip(losses, averaged))

    def _discriminator_loss(self, pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.gan_loss(pred_real, True) + self.gan_loss(pred_fake, False))

    def _set_discriminators_trainable(self, trainable: bool) -> None:
        for net in (self.D_A, self.D_B):
            net.requires_grad_(trainable)

    @staticmethod
    def _require_finite(losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The losses' means over all ranks; raises if one is not finite (on any rank)."""
        values = distributed.mean(torch.stack([loss.detach().float() for loss in losses.values()]))
        if not bool(torch.isfinite(values).all()):
            bad = ", ".join(f"{n}={v:g}" for n, v in zip(losses, values.tolist()) if not math.isfinite(v))
            raise NonFiniteLossError(f"non-finite loss ({bad})")
        return values

    @torch.no_grad()
    def translate(self, real_A: torch.Tensor, real_B: torch.Tensor, mask_A: torch.Tensor | None = None,
                  mask_B: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``real A, fake B, rec A, real B, fake A, rec B`` for image grids (fp32, on CPU)."""
        real_A, real_B = self.prepare(real_A), self.prepare(real_B)
        mask_A, mask_B = self.prepare_masks(mask_A, mask_B)
        with autocast(self.device, self.config.precision):
            fake_B, fake_A = confine(self.G_A(real_A), mask_A), confine(self.G_B(real_B), mask_B)
            rec_A, rec_B = confine(self.G_B(fake_B), mask_A), confine(self.G_A(fake_A), mask_B)
        return tuple(t.float().cpu() for t in (real_A, fake_B, rec_A, real_B, fake_A, rec_B))

    @torch.no_grad()
    def translate_A(self, real_A: torch.Tensor, mask_A: torch.Tensor | None = None, batch: int = 16) -> torch.Tensor:
        """G_A's translations of ``real_A`` (fp32, on CPU), in batches, confined to ``mask_A`` if given."""
        out = []
        for start in range(0, len(real_A), batch):
            part = slice(start, start + batch)
            mask = None if mask_A is None else self.prepare(mask_A[part])
            with autocast(self.device, self.config.precision):
                out.append(confine(self.G_A(self.prepare(real_A[part])), mask).float().cpu())
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {**{name: net.state_dict() for name, net in self.nets.items()},
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "schedulers": [s.state_dict() for s in self.schedulers],
                "scaler": self.scaler.state_dict(),
                "pool_fake_A": self.pool_fake_A.state_dict(), "pool_fake_B": self.pool_fake_B.state_dict()}

    def load_state_dict(self, state: dict, source: Path | str) -> None:
        for name, net in self.nets.items():
            load_network(net, state[name], name, source)
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
            # the next update's learning rate under this run's schedule: the saved one belongs to the
            # old plan when a resumed run extends its iterations
            for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base * factor(scheduler.last_epoch)
        self.scaler.load_state_dict(state["scaler"])
        self.pool_fake_A.load_state_dict(state["pool_fake_A"], self.device)
        self.pool_fake_B.load_state_dict(state["pool_fake_B"], self.device)
