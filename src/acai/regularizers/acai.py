"""ACAI (reference `acai.py`): a critic learns to recover alpha from decoded interpolants; the
autoencoder learns to make it answer 0.

    alpha   ~ 0.5 - |U(0,1) - 0.5|            one per example, uniform on [0, 0.5]
    x_mix   = g(alpha z + (1 - alpha) z[::-1])
    L_d     = mean((d(x_mix) - alpha)^2) + mean(d(x_rec + gamma (x - x_rec))^2)
    L_ae   += lambda mean(d(x_mix)^2)
"""

from __future__ import annotations

from dataclasses import dataclass

from keras import ops

from acai.networks.inference import predict
from acai.regularizers.base import AdversaryLosses, Regularizer, Step, reverse_pairs
from acai.regularizers.draws import BatchRandom


def mixing_alpha(batch: int, rank: int, random: BatchRandom):
    """One alpha per example, uniform on [0, 0.5], shaped to broadcast over a latent of this rank."""
    u = random.uniform((batch,) + (1,) * (rank - 1))
    return 0.5 - ops.abs(u - 0.5)


@dataclass
class Acai(Regularizer):
    """`advweight` is the paper's lambda, `reg` its gamma; `advdepth` 0 means the model's depth."""

    name: str = "acai"
    advweight: float = 0.5
    reg: float = 0.2
    advdepth: int = 0
    lr: float = 1e-4

    def build(self, arch, image_shape, latent_shape, optimizer):
        super().build(arch, image_shape, latent_shape, optimizer)
        self.adversary = arch.critic(image_shape, depth=self.advdepth or None)
        self.adversary_optimizer = optimizer(self.lr)

    def judge_interpolations(self, frames):
        return predict(self.adversary, frames)

    def adversary_losses(self, step: Step) -> AdversaryLosses:
        z = step.latent
        alpha = mixing_alpha(ops.shape(z)[0], len(z.shape), step.random)
        x_mix = step.decode(alpha * z + (1.0 - alpha) * reverse_pairs(z))
        critic_mix = self.adversary(x_mix, training=True)
        blend = step.reconstruction + self.reg * (step.x - step.reconstruction)
        critic_real = self.adversary(blend, training=True)
        alpha_loss = ops.mean(ops.square(critic_mix - ops.reshape(alpha, (-1,))))
        real_loss = ops.mean(ops.square(critic_real))
        adversarial = self.advweight * ops.mean(ops.square(critic_mix))
        critic = alpha_loss + real_loss
        return AdversaryLosses(loss=critic, autoencoder_terms={"adversarial": adversarial},
                               diagnostics={"adversarial": adversarial, "critic": critic,
                                            "critic_alpha": alpha_loss, "critic_real": real_loss})
