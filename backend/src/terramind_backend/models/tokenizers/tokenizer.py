"""TerraMind 1.0 image tokenizers: a ViT-B encoder + FSQ quantizer, and a decoder back to pixels.

- ``DiVAE`` (S2L2A, S1RTC, S1GRD, DEM, NDVI): diffusion decoder, a patched UNet sampled with DDIM.
  Decoded values are standardized and lie in [-1, 1] (thresholding clamps x0).
- ``VQVAE`` (LULC): a ViT-B decoder that outputs class logits ``[B, 10, H, W]``.

Every public method runs in inference mode. Image sides must be multiples of 16 (32 for diffusion decoding);
non-square images and token grids are supported throughout.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .. import step_events
from ..precision import runs_in_bf16
from .ddim import DDIMSampler
from .fsq import FiniteScalarQuantizer
from .unet import PATCH as UNET_PATCH, DOWNSAMPLINGS, PatchedUNet
from .vit import PATCH, ViTDecoder, ViTEncoder

ImageSize = Union[int, Sequence[int], None]


def _pair(size) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {size!r}")
    return size


class ImageTokenizer(nn.Module):
    """Encoder + quantizer shared by both tokenizer kinds (state-dict keys ``encoder.*``, ``quant_proj.*``)."""

    patch_size = PATCH

    def __init__(self, name: str, in_channels: int, levels: str, latent_dim: int = 5, image_size: int = 256):
        super().__init__()
        self.name = name
        self.n_channels = in_channels
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.encoder = ViTEncoder(in_channels, resolution=image_size)
        self.quant_proj = nn.Conv2d(self.encoder.dim, latent_dim, 1)
        self.quantize = FiniteScalarQuantizer(levels)
        # Decoder arithmetic: "fp32" (default; matches TerraTorch to ~1e-6 relative), "bf16" (autocast: several
        # times faster on AMX CPUs and GPUs, outputs deviate, see docs/models.md) or "auto".
        self.precision = "fp32"
        if self.quantize.dim != latent_dim:
            raise ValueError(f"{len(self.quantize.levels)} FSQ levels for a {latent_dim}-d latent")

    @property
    def codebook_size(self) -> int:
        return self.quantize.codebook_size

    @property
    def device(self) -> torch.device:
        return self.quant_proj.weight.device

    # -- input checks -------------------------------------------------------------------------------
    def _check_spatial(self, h: int, w: int) -> None:
        if h <= 0 or w <= 0 or h % PATCH or w % PATCH:
            raise ValueError(f"{self.name}: image height and width must be positive multiples of {PATCH}, "
                             f"got {h}x{w}")

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``[B, C, H, W]`` and return it as float on the model's device."""
        if not torch.is_tensor(x):
            raise TypeError(f"{self.name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.n_channels:
            raise ValueError(f"{self.name} tokenizer expects images shaped [B, {self.n_channels}, H, W], "
                             f"got {tuple(x.shape)}")
        self._check_spatial(x.shape[-2], x.shape[-1])
        return x.to(self.device, torch.float32)

    # -- encoding -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, x: torch.Tensor, *_ignored) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image -> ``(codes [B, 5, H/16, W/16] in [0, 1], loss [1] (0), tokens [B, H/16, W/16] int32)``.

        Extra positional arguments (TerraTorch passes a device) are ignored.
        """
        h = self.encoder(self.prepare_input(x))
        return self.quantize(self.quant_proj(h))

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Image -> tokens ``[B, H/16, W/16]`` (int32)."""
        return self.encode(x)[2]

    @torch.inference_mode()
    def tokens_to_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, h, w]`` -> FSQ codes ``[B, 5, h, w]``."""
        return self.quantize.indices_to_codes(torch.as_tensor(tokens, device=self.device))

    def decode_quant(self, codes: torch.Tensor, **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def _decoder_modules(self) -> List[nn.Module]:
        return [self.decoder]

    def _low_precision(self, precision: Optional[str]) -> bool:
        """Whether this decode runs in bf16. A tokenizer whose own ``precision`` resolves to bf16 converts its
        decoder's matmul weights to bf16 on the first such decode (``bf16_weights``); it refuses fp32 after."""
        return runs_in_bf16(self.precision, precision, self.device, self._decoder_modules(),
                            f"The {self.name} tokenizer")

    def decode_tokens(self, tokens: torch.Tensor, **kwargs) -> torch.Tensor:
        """Tokens ``[B, h, w]`` -> image; see ``decode_quant`` of the subclass for the keyword arguments."""
        return self.decode_quant(self.tokens_to_embedding(tokens), **kwargs)


class DiVAE(ImageTokenizer):
    """Tokenizer with a diffusion decoder (``decoder.*`` = the patched UNet)."""

    def __init__(self, name: str, in_channels: int, levels: str = "8-8-8-6-5", latent_dim: int = 5,
                 image_size: int = 256):
        super().__init__(name, in_channels, levels, latent_dim, image_size)
        self.decoder = PatchedUNet(in_channels, latent_dim)
        self.sampler = DDIMSampler()  # the DDIM update always runs in fp32, whatever ``precision`` says

    def _decode_size(self, codes: torch.Tensor, image_size: ImageSize) -> Tuple[int, int]:
        h, w = (codes.shape[-2] * PATCH, codes.shape[-1] * PATCH) if image_size is None else _pair(image_size)
        multiple = UNET_PATCH << DOWNSAMPLINGS
        if h <= 0 or w <= 0 or h % multiple or w % multiple:
            raise ValueError(f"{self.name}: diffusion decoding needs an image height and width that are positive "
                             f"multiples of {multiple} (token grid sides must be even), got {h}x{w}")
        return h, w

    def initial_noise(self, batch: int, height: int, width: int,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Standard normal ``[B, C, H, W]`` drawn like TerraTorch: on the CPU (global RNG unless a generator is
        given), then moved to the model's device, so seeding the CPU RNG reproduces TerraTorch's noise."""
        shape = (batch, self.n_channels, height, width)
        if generator is not None and generator.device.type != "cpu":
            return torch.randn(shape, generator=generator, device=generator.device).to(self.device)
        return torch.randn(shape, generator=generator).to(self.device)

    @torch.inference_mode()
    def decode_quant(self, codes: torch.Tensor, timesteps: int = 50, generator: Optional[torch.Generator] = None,
                     image_size: ImageSize = None, verbose: bool = False, scheduler_timesteps_mode: str = "trailing",
                     noise: Optional[torch.Tensor] = None, progress=None, precision: Optional[str] = None,
                     **_ignored) -> torch.Tensor:
        """FSQ codes ``[B, 5, h, w]`` -> standardized image ``[B, C, H, W]`` in [-1, 1] by DDIM sampling.

        Args:
            timesteps: number of DDIM steps (TerraTorch's default 50; generation uses 10).
            generator: CPU (or device) generator for the initial noise; None uses the global CPU RNG.
            image_size: output (H, W) or int; default = token grid x 16. Sides must be multiples of 32.
            scheduler_timesteps_mode: ``trailing`` (default), ``leading`` or ``linspace``.
            noise: explicit initial noise ``[B, C, H, W]`` (overrides ``generator``).
            progress: optional ``callable(done_steps, total_steps)`` called after each step.
            precision: UNet arithmetic, ``fp32``/``bf16``/``auto``; default ``self.precision`` (``fp32``).
            verbose, scheduler, orig_res: accepted for TerraTorch compatibility; ignored.
        """
        if codes.dim() != 4 or codes.shape[1] != self.latent_dim:
            raise ValueError(f"{self.name}: expected codes [B, {self.latent_dim}, h, w], got {tuple(codes.shape)}")
        height, width = self._decode_size(codes, image_size)
        codes = codes.to(self.device, torch.float32).contiguous()
        if noise is None:
            x = self.initial_noise(codes.shape[0], height, width, generator)
        else:
            if tuple(noise.shape) != (codes.shape[0], self.n_channels, height, width):
                raise ValueError(f"{self.name}: noise must be shaped {(codes.shape[0], self.n_channels, height, width)}, "
                                 f"got {tuple(noise.shape)}")
            x = noise.to(self.device, torch.float32)
        steps = self.sampler.timesteps(timesteps, scheduler_timesteps_mode)
        low = self._low_precision(precision)
        for i, t in enumerate(steps):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=low):
                x0 = self.decoder(x, t, codes, channels_last=low)
            x0 = x0.float().contiguous()
            x = self.sampler.step(x0, t, x, timesteps)
            if progress is not None:
                progress(i + 1, len(steps))
            step_events.report(step_events.DIFFUSION, i + 1, len(steps))
        return x

    def forward(self, x: torch.Tensor, timesteps: int = 50, generator: Optional[torch.Generator] = None,
                **kwargs) -> torch.Tensor:
        """Full reconstruction: encode, then diffusion-decode at the input's own H x W (TerraTorch uses W x W)."""
        codes, _, _ = self.encode(x)
        return self.decode_quant(codes, timesteps=timesteps, generator=generator,
                                 image_size=tuple(x.shape[-2:]), **kwargs)


class VQVAE(ImageTokenizer):
    """Tokenizer with a ViT decoder (LULC). Accepts class indices ``[B, H, W]``/``[B, 1, H, W]`` or one-hot
    ``[B, 10, H, W]``; decodes to class logits ``[B, 10, H, W]``."""

    def __init__(self, name: str, in_channels: int, levels: str = "7-5-5-5-5", latent_dim: int = 5,
                 image_size: int = 256):
        super().__init__(name, in_channels, levels, latent_dim, image_size)
        self.decoder = ViTDecoder(in_channels, resolution=image_size)
        self.post_quant_proj = nn.Conv2d(latent_dim, self.decoder.dim, 1)

    def _decoder_modules(self) -> List[nn.Module]:
        return [self.decoder, self.post_quant_proj]

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_tensor(x) and (x.dim() == 3 or (x.dim() == 4 and x.shape[1] == 1 and self.n_channels != 1)):
            classes = x if x.dim() == 3 else x[:, 0]
            if classes.is_floating_point() and not bool(torch.all(classes == classes.round())):
                raise ValueError(f"{self.name}: class-index input must hold whole numbers")
            classes = classes.to(self.device, torch.long)
            if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= self.n_channels):
                raise ValueError(f"{self.name}: class indices must lie in [0, {self.n_channels - 1}], "
                                 f"got [{int(classes.min())}, {int(classes.max())}]")
            self._check_spatial(classes.shape[-2], classes.shape[-1])
            return F.one_hot(classes, self.n_channels).permute(0, 3, 1, 2).to(torch.float32)
        if torch.is_tensor(x) and x.dim() == 4 and x.shape[1] != self.n_channels:
            raise ValueError(f"{self.name} tokenizer expects class indices [B, H, W] or [B, 1, H, W], or one-hot "
                             f"[B, {self.n_channels}, H, W], got {tuple(x.shape)}")
        return super().prepare_input(x)

    @torch.inference_mode()
    def decode_quant(self, codes: torch.Tensor, precision: Optional[str] = None, **_ignored) -> torch.Tensor:
        """FSQ codes ``[B, 5, h, w]`` -> float32 class logits ``[B, 10, 16h, 16w]``. ``precision`` as for
        DiVAE (default ``self.precision``); diffusion arguments are ignored."""
        if codes.dim() != 4 or codes.shape[1] != self.latent_dim:
            raise ValueError(f"{self.name}: expected codes [B, {self.latent_dim}, h, w], got {tuple(codes.shape)}")
        low = self._low_precision(precision)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=low):
            logits = self.decoder(self.post_quant_proj(codes.to(self.device, torch.float32).contiguous()))
        return logits.float()

    def forward(self, x: torch.Tensor, **_ignored) -> Tuple[torch.Tensor, torch.Tensor]:
        """Full reconstruction: ``(logits [B, 10, H, W], code loss [1])`` like TerraTorch."""
        codes, loss, _ = self.encode(x)
        return self.decode_quant(codes), loss
