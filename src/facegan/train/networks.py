"""What every kind of two networks (a generator or upscaler, and a discriminator)
shares: their optimisers, and their part of a checkpoint (both networks, both
optimisers, the moving average if kept, a conditional model's attribute distribution:
``facegan.checkpoint.TrainingState``'s entries)."""

from __future__ import annotations

from typing import Any

import torch

from facegan import config as cfg
from facegan import models
from facegan.errors import FaceganError
from facegan.train import distributed, speed
from facegan.train.distributed import World


def optimisers(generator: torch.nn.Module, discriminator: torch.nn.Module, t: cfg.TrainConfig,
               fast: speed.SpeedPlan, world: World) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for each network (train's rates and betas), averaging gradients across
    processes before each step when there are several; the networks start alike on all."""
    for network in (generator, discriminator):
        distributed.same_weights(network, world)
    pair = (speed.adam(generator.parameters(), t.g_lr, (t.beta1, t.beta2), t.adam_eps, fast),
            speed.adam(discriminator.parameters(), t.d_lr, (t.beta1, t.beta2), t.adam_eps, fast))
    for optimizer in pair:
        distributed.average_gradients_before_steps(optimizer, world)
    return pair


def measured_elsewhere(config: cfg.Config, what: str, benchmark: str) -> None:
    """Refuse evaluations during training for a kind that is not a generator (``what``:
    "an upscaler"), naming the ``benchmark`` that measures it."""
    if config.eval.eval_every:
        raise FaceganError(f"evaluations during training (eval.eval_every) measure generators; {what} is "
                           f"measured on held-out photos by {benchmark}")


def seeded_pair(config: cfg.Config, device: torch.device, images_nbytes: int, world: World,
                ) -> tuple[speed.SpeedPlan, torch.nn.Module, torch.nn.Module,
                           tuple[torch.optim.Optimizer, torch.optim.Optimizer]]:
    """The speed plan for the device (applied), then both networks built from the run's
    seed, on the device, and their optimisers: the start every kind without batch norm
    across processes shares."""
    distributed.check_batch(world, config.train.batch_size)
    fast = speed.resolve(config.speed, device, images_nbytes, model=config.model)
    speed.apply_globals(fast)
    torch.manual_seed(config.train.seed)
    generator, discriminator = (network.to(device) for network in models.build(config.model))
    return fast, generator, discriminator, optimisers(generator, discriminator, config.train, fast, world)


class TwoNetworks:
    """Mixin for a kind's training holding ``generator``, ``discriminator``, their
    optimisers, ``average`` (a MovingAverage or None), ``conditions`` and ``steps_taken``."""

    def state(self) -> dict[str, Any]:
        """The networks' and optimisers' part of a checkpoint."""
        return {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                "g_optimizer": self.g_optimizer.state_dict(), "d_optimizer": self.d_optimizer.state_dict(),
                "generator_ema": self.average.module.state_dict() if self.average is not None else None,
                "conditions": self.conditions.state() if self.conditions is not None else None}

    def start_from(self, weights: dict[str, torch.Tensor]) -> None:
        """A new run's generator (and its average) from another run's weights; raises
        RuntimeError naming the first difference if they do not fit."""
        self.generator.load_state_dict(weights)
        if self.average is not None:
            self.average.module.load_state_dict(weights)

    def restore(self, state: Any, steps_taken: int) -> None:
        """Load a checkpoint's networks and optimisers, ``steps_taken`` steps in."""
        self.generator.load_state_dict(state.generator)
        self.discriminator.load_state_dict(state.discriminator)
        self.g_optimizer.load_state_dict(state.g_optimizer)
        self.d_optimizer.load_state_dict(state.d_optimizer)
        self.steps_taken = steps_taken
        if self.average is not None:  # a run that starts averaging on resume starts from its generator
            self.average.module.load_state_dict(state.sampling_generator)
