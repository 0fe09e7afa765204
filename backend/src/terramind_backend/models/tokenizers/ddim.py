"""The DDIM sampler (https://arxiv.org/abs/2010.02502) configured as TerraMind 1.0's DiVAE decoders use it.

Settings (TerraTorch's ``DDIMScheduler`` as the tokenizers build it): 1000 training steps, linear betas
1e-4 -> 0.02 rescaled to **zero terminal SNR** (https://arxiv.org/abs/2305.08891, so ᾱ_999 = 0), "trailing"
inference timesteps, the model predicts the clean sample x0, dynamic thresholding with ratio 0.995 and
``sample_max_value = 1`` (which always reduces to clamping x0 to [-1, 1]), ᾱ_prev = 1 after the last step, and
η = 0 (deterministic: the only randomness is the initial noise). Arithmetic is float32 in the same order as
TerraTorch so the two samplers agree to the last bit for the same model outputs.
"""
from __future__ import annotations

from typing import List

import torch


def linear_betas(num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32, device="cpu")


def zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift √ᾱ so the last step has √ᾱ = 0 and rescale so the first keeps its value; return the new betas."""
    sqrt_abar = torch.cumprod(1 - betas, dim=0).sqrt()
    first, last = sqrt_abar[0].clone(), sqrt_abar[-1].clone()
    sqrt_abar = (sqrt_abar - last) * (first / (first - last))
    abar = sqrt_abar ** 2
    alphas = torch.cat([abar[0:1], abar[1:] / abar[:-1]])
    return 1 - alphas


class DDIMSampler:
    """Timesteps and the η = 0 DDIM update for an x0-predicting model."""

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 rescale_zero_terminal_snr: bool = True, thresholding: bool = True,
                 dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 clip_sample: bool = True, clip_sample_range: float = 1.0):
        betas = linear_betas(num_train_timesteps, beta_start, beta_end)
        if rescale_zero_terminal_snr:
            betas = zero_terminal_snr(betas)
        self.num_train_timesteps = num_train_timesteps
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0, device="cpu")
        self.thresholding = thresholding
        self.dynamic_thresholding_ratio = dynamic_thresholding_ratio
        self.sample_max_value = sample_max_value
        self.clip_sample = clip_sample
        self.clip_sample_range = clip_sample_range

    def timesteps(self, num_steps: int, mode: str = "trailing") -> List[int]:
        """Descending model timesteps for ``num_steps`` inference steps (``trailing``: 999, 999 - 1000//n, ...)."""
        num_steps = int(num_steps)
        if not 1 <= num_steps <= self.num_train_timesteps:
            raise ValueError(f"timesteps must be between 1 and {self.num_train_timesteps}, got {num_steps}")
        ratio = self.num_train_timesteps // num_steps
        if mode == "trailing":
            return [t - 1 for t in range(self.num_train_timesteps, 0, -ratio)]
        if mode == "leading":
            return [i * ratio for i in reversed(range(num_steps))]
        if mode == "linspace":
            points = torch.linspace(self.num_train_timesteps, 1, num_steps, dtype=torch.float64)
            return [int(round(float(p))) - 1 for p in points]
        raise ValueError(f"Unknown timestep spacing {mode!r}: use 'trailing', 'leading' or 'linspace'")

    def _bound_x0(self, x0: torch.Tensor) -> torch.Tensor:
        if self.thresholding:
            if self.sample_max_value <= 1.0:
                # s = clamp(quantile(|x0|), min=1, max=sample_max_value) is exactly 1: plain clipping.
                return x0.clamp(-1.0, 1.0)
            flat = x0.reshape(x0.shape[0], -1)
            s = torch.quantile(flat.abs(), self.dynamic_thresholding_ratio, dim=1)
            s = s.clamp(min=1.0, max=self.sample_max_value)[:, None]
            return (torch.maximum(torch.minimum(flat, s), -s) / s).reshape(x0.shape)
        if self.clip_sample:
            return x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        return x0

    def step(self, x0_pred: torch.Tensor, t: int, sample: torch.Tensor, num_steps: int) -> torch.Tensor:
        """x_t and the model's x0 at timestep ``t`` -> x_{t_prev} (η = 0)."""
        prev_t = t - self.num_train_timesteps // num_steps
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        # ε is derived from the unclipped x0, the update uses the clipped one (diffusers' DDIM order).
        eps = (sample - a_t ** 0.5 * x0_pred) / (1 - a_t) ** 0.5
        x0 = self._bound_x0(x0_pred)
        return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
