"""Any-to-any generation with TerraMind 1.0 (``terramind_v1_{size}_generate``).

Given any raw (S2L2A, S2L1C, RGB, S1GRD, S1RTC, DEM), tokenized (LULC, NDVI) or Coordinates inputs, the
encoder-decoder predicts the tokens of each requested output (S2L2A, S1GRD, S1RTC, DEM, LULC, NDVI,
Coordinates) and that output's tokenizer turns them back into an image: a ViT decoder for LULC (class
logits), DDIM diffusion for the others; Coordinates are decoded left to right and returned as TerraTorch
does, a list of ``[lon, lat]`` per sample (``models.coords``). TerraTorch 1.1.1 semantics (facts §5): inputs standardized with the v1
statistics when ``standardize`` is on, outputs de-standardized to physical units, each output decoded in
one parallel ROAR pass (``decoding_steps=1``) with nucleus sampling (``top_p=0.8``, ``temps=1``), outputs
not chained as conditions, diffusion noise drawn on the CPU. Sampling and seeding: ``models.sampling``.

Where we differ from TerraTorch on purpose (docs/models.md, "Generation: where we differ"):
- non-square inputs decode on the right (rows x cols) token grid and give [B, C, H, W] outputs;
- ``decoding_steps > 1`` works: each step decodes its share of tokens and later steps see the tokens
  decoded so far through the encoder (TerraTorch crashes);
- S2L1C (and RGB) outputs are refused instead of silently becoming S2L2A; an output that is also a
  tokenized input and mismatched input sizes are errors, not warnings (unknown input names are ignored
  with a warning, as TerraTorch does);
- the encoder runs once for all outputs (TerraTorch re-encodes per output; results are the same);
- nothing reseeds torch's global RNG and the caller's input dict is never modified.

``precision`` (ours) picks the arithmetic of the whole generation: ``"fp32"`` (default) is TerraTorch's, down
to its random stream; ``"bf16"`` runs the transformer and the tokenizer decoders in bf16 (autocast) and draws
tokens by inverse CDF (same distribution, other stream, see ``sampling.sample_tokens``); ``"auto"`` is bf16
where bf16 matrix units make it fast (CUDA, AMX CPUs) and fp32 elsewhere.

State-dict keys match TerraTorch's ``TerraMindGeneration``: ``sampler.model.*`` (the encoder-decoder)
and ``tokenizer.<key>.*``. Only the tokenizers that are needed are built: those of tokenized inputs
and of the outputs.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..catalog import BACKBONES
from . import sampling
from .coords import generation_input
from .precision import check_precision, runs_in_bf16
from .roar import (SEQUENCE_TARGET_TOKENS, Sampler, embed_token_grid, encoder_input, generate_image_tokens,
                   generate_sequence_tokens, is_sequence, transformer_arithmetic)
from .encdec import TerraMind, transformer_config
from .modalities import (MODALITY_INFO, PRETRAINING_MEAN, PRETRAINING_STD, UnknownModalityError, known_inputs,
                         resolve_input_modality, resolve_output_modality)

__all__ = ["TerraMindGeneration", "build_generation", "GENERATION_OUTPUTS", "resolve_generation_output"]

GENERATION_OUTPUTS = ("S2L2A", "S1GRD", "S1RTC", "DEM", "LULC", "NDVI", "Coordinates")
DEFAULT_IMAGE_SIZE = (224, 224)  # TerraTorch's grid when no image input gives one


def resolve_generation_output(name: str) -> str:
    """Internal token key of a generation output (``coords`` for Coordinates); S2L1C/RGB are refused with a reason."""
    if not isinstance(name, str):
        raise UnknownModalityError(f"Output modality names must be strings, got {name!r}")
    lowered = name.lower().replace("s2", "sen2")
    if "l1c" in lowered:
        raise UnknownModalityError(
            f"Output {name!r}: TerraMind 1.0 cannot generate S2L1C (there is no S2L1C tokenizer; TerraTorch "
            f"silently returns S2L2A for it). Request 'S2L2A' to get a generated Sentinel-2 L2A image.")
    if "rgb" in lowered:
        raise UnknownModalityError(f"Output {name!r}: RGB is not a generation output; request 'S2L2A' "
                                   f"and take its RED, GREEN, BLUE bands (indices 3, 2, 1).")
    return resolve_output_modality(name)


def _per_output(value, outputs: Sequence[str], what: str) -> list:
    """One value for all outputs, or a list with one value per output (in output order)."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(outputs):
            raise ValueError(f"{what} has {len(value)} values for {len(outputs)} outputs {list(outputs)}; "
                             f"give one value or one per output")
        return list(value)
    return [value] * len(outputs)


class TerraMindGeneration(nn.Module):
    """Generate output modalities from input modalities (see module docstring).

    Args:
        modalities: input modality names (``"S2L2A"``, ``"S1GRD"``, ``"LULC"`` ...; TerraTorch's name rules).
        output_modalities: outputs, generated in this order (S2L2A, S1GRD, S1RTC, DEM, LULC, NDVI).
        tokenizers: ``{token key: tokenizer}`` for every tokenized input and every output.
        size: tiny, small, base or large.
        decoding_steps: ROAR steps per output (int, or one per output). 1 = TerraTorch's single pass.
        temps: sampling temperature (one, or one per output); 0 = greedy argmax.
        top_p, top_k: nucleus / top-k filtering (0 disables).
        timesteps: DDIM steps of the diffusion decoders (``forward(timesteps=)`` overrides).
        standardize: standardize inputs / de-standardize outputs with the v1 statistics.
        offset: ``{modality name: value}`` added to that modality's mean (inputs and outputs).
        pretraining_mean, pretraining_std: override the statistics (``{internal key: [per channel]}``).
        seed: default sampling seed; None draws one from Python's ``random`` per call (as TerraTorch).
        img_size: size of the stored position grids (224).
        precision: "fp32" (default: TerraTorch's arithmetic and random stream), "bf16" (transformer and
            tokenizer decoders under bf16 autocast, ~2-3x faster on AMX CPUs and GPUs, diffusion x0 off by
            ~1e-3 and LULC logits by ~1e-2 relative; tokens drawn by inverse CDF) or "auto" (bf16 where it is
            fast, else fp32). Filtering and sampling always compute in fp32. ``forward(precision=)`` and
            ``generate_tokens``/``decode_outputs(precision=)`` override it.
    """

    def __init__(self, modalities: Sequence[str], output_modalities: Sequence[str],
                 tokenizers: Mapping[str, nn.Module], *, size: str = "tiny",
                 decoding_steps: Union[int, Sequence[int]] = 1, temps: Union[float, Sequence[float]] = 1.0,
                 top_p: float = 0.8, top_k=0, timesteps: int = 50, standardize: bool = False,
                 offset: Optional[Mapping[str, float]] = None, pretraining_mean: Optional[Mapping] = None,
                 pretraining_std: Optional[Mapping] = None, seed: Optional[int] = None, img_size: int = 224,
                 precision: str = "fp32"):
        super().__init__()
        settings = _settings(modalities, output_modalities, decoding_steps=decoding_steps, temps=temps,
                             top_p=top_p, top_k=top_k, timesteps=timesteps, offset=offset,
                             pretraining_mean=pretraining_mean, pretraining_std=pretraining_std)
        self.input_keys = settings["input_keys"]     # user name -> internal key
        self.output_keys = settings["output_keys"]   # user name -> token key
        self.decoding_steps, self.temps = settings["decoding_steps"], settings["temps"]
        self.top_p, self.top_k, self.timesteps = settings["top_p"], top_k, settings["timesteps"]
        self.mean, self.std = settings["mean"], settings["std"]
        self.standardize = bool(standardize)
        self.seed = seed
        self.size = size
        self.precision = check_precision(precision)
        outputs = list(self.output_keys)

        # Multi-step decoding feeds decoded tokens back through the encoder: it needs the outputs'
        # token encoder embeddings (present in the official checkpoints). Single-pass keeps TerraTorch's keys.
        encoder_keys = list(dict.fromkeys(self.input_keys.values()))
        if max(self.decoding_steps) > 1:
            encoder_keys += [k for n, k in self.output_keys.items()
                             if self.decoding_steps[outputs.index(n)] > 1 and k not in encoder_keys
                             and not is_sequence(k)]
        self.sampler = Sampler(TerraMind(encoder_keys, list(dict.fromkeys(self.output_keys.values())),
                                          image_size=img_size, **transformer_config(size)))
        needed = _needed_tokenizers(self.input_keys, self.output_keys)
        missing = [k for k in needed if k not in tokenizers]
        if missing:
            raise ValueError(f"Tokenizers missing for {missing}")
        self.tokenizer = nn.ModuleDict({k: tokenizers[k] for k in needed})
        for key in self.output_keys.values():  # the decoders follow the model's precision (and keep bf16 weights)
            if not is_sequence(key):
                self.tokenizer[key].precision = self.precision

    def _low_precision(self, precision: Optional[str], device: torch.device) -> bool:
        """Whether token generation runs in bf16; a model configured for bf16 converts the transformer's matmul
        weights once (``bf16_weights``) and refuses fp32 after."""
        model = self.sampler.model
        # only what runs under autocast: the input embeddings run in fp32 before it
        return runs_in_bf16(self.precision, precision, device, [model.encoder, model.decoder_proj_context,
                                                                model.decoder, model.decoder_embeddings],
                            "This generation model")

    @property
    def output_modalities(self) -> List[str]:
        return list(self.output_keys)

    @property
    def modalities(self) -> List[str]:
        return list(self.input_keys)

    # ------------------------------------------------------------------ inputs
    def _collect_inputs(self, d, kwargs) -> Dict[str, torch.Tensor]:
        if d is None:
            d = {}
        elif not isinstance(d, Mapping):
            d = {self.modalities[0]: d}  # a bare tensor is the first configured modality
        d = known_inputs({**d, **kwargs}, self.input_keys)
        if not d:
            raise ValueError(f"No valid inputs given; expected some of {self.modalities}")
        for name, value in d.items():
            if not torch.is_tensor(value):
                raise TypeError(f"Input {name!r} must be a torch.Tensor, got {type(value).__name__}")
        sizes = {len(v) for v in d.values()}
        if len(sizes) != 1:
            raise ValueError(f"All inputs need the same batch size, got {{{', '.join(f'{k}: {len(v)}' for k, v in d.items())}}}")
        return d

    def _image_size(self, d: Mapping[str, torch.Tensor]) -> Tuple[int, int]:
        shapes = {name: tuple(v.shape[-2:]) for name, v in d.items() if MODALITY_INFO[self.input_keys[name]].is_image}
        if not shapes:
            return DEFAULT_IMAGE_SIZE
        if len(set(shapes.values())) != 1:
            raise ValueError(f"All image inputs must have the same height and width, got {shapes}")
        (h, w), = set(shapes.values())
        if h % 16 or w % 16 or h <= 0 or w <= 0:
            raise ValueError(f"Input height and width must be positive multiples of 16 (the patch size), got {h}x{w}")
        diffusion = [n for n, k in self.output_keys.items() if hasattr(self.tokenizer[k], "sampler")]
        if diffusion and (h % 32 or w % 32):
            raise ValueError(f"Outputs {diffusion} are decoded by diffusion, which needs height and width that "
                             f"are multiples of 32, got {h}x{w}; pad or crop the input.")
        return h, w

    def _standardize_input(self, name: str, value: torch.Tensor) -> torch.Tensor:
        key = self.input_keys[name]
        if key == "tok_lulc@224" or (name, key) not in self.mean:
            return value  # LULC statistics are the identity (and class maps must stay integers)
        mean = torch.as_tensor(self.mean[(name, key)], dtype=torch.float32, device=value.device)
        std = torch.as_tensor(self.std[(name, key)], dtype=torch.float32, device=value.device)
        if value.ndim != 4 or value.shape[1] != mean.numel():
            raise ValueError(f"Input {name!r} must be shaped [B, {mean.numel()}, H, W], got {tuple(value.shape)}")
        return (value - mean[None, :, None, None]) / std[None, :, None, None]

    def _encoder_parts(self, d, grid, standardize: bool) -> List[Tuple[str, torch.Tensor, torch.Tensor]]:
        """(key, x, emb) for every input, in input order."""
        model = self.sampler.model
        device = model.mask_token.device
        parts = []
        for name, value in d.items():
            key = self.input_keys[name]
            value = value.to(device)
            if standardize:
                value = self._standardize_input(name, value)
            if is_sequence(key):
                ids = self.tokenizer[key].tokenize(value) if torch.is_floating_point(value) else value
                x, emb = model.encoder_embeddings[key](generation_input(ids))
            elif key in self.tokenizer:
                ids = self.tokenizer[key].encode(value)[-1]
                x, emb = embed_token_grid(model.encoder_embeddings[key], ids, *ids.shape[-2:])
            else:
                x, emb = model.encoder_embeddings[key](value.to(torch.float32))
            parts.append((key, x, emb.expand(x.shape[0], -1, -1)))
        return parts

    # ------------------------------------------------------------------ generation
    def _decode(self, key: str, tokens: torch.Tensor, grid, image_size, timesteps: int,
                generator: torch.Generator, precision: str):
        tokenizer = self.tokenizer[key]
        if is_sequence(key):  # Coordinates: [[lon, lat], ...] as TerraTorch returns them
            return tokenizer.decode(tokens)
        tokens = tokens.view(tokens.shape[0], *grid)
        if hasattr(tokenizer, "sampler"):  # diffusion decoder
            return tokenizer.decode_tokens(tokens, image_size=image_size, timesteps=timesteps, generator=generator,
                                           precision=precision)
        # the tokenizer owns its arithmetic: an autocast around it would be switched off inside in fp32 mode
        return tokenizer.decode_tokens(tokens, image_size=image_size, precision=precision).float()

    def _destandardize(self, name: str, value: torch.Tensor) -> torch.Tensor:
        key = self.output_keys[name]
        stats = (name, key)
        if stats not in self.mean:
            return value
        mean = torch.as_tensor(self.mean[stats], dtype=value.dtype, device=value.device)[None, :, None, None]
        std = torch.as_tensor(self.std[stats], dtype=value.dtype, device=value.device)[None, :, None, None]
        return value * std + mean

    def step_count(self, timesteps: Optional[int] = None) -> int:
        """How many ``step_events`` one call reports: each image output's token-generation steps, plus the
        diffusion steps of those decoded by a diffusion tokenizer (sequence outputs report none)."""
        timesteps = self.timesteps if timesteps is None else int(timesteps)
        count = 0
        for i, key in enumerate(self.output_keys.values()):
            if not is_sequence(key):
                sampler = getattr(self.tokenizer[key], "sampler", None)  # a diffusion decoder
                count += self.decoding_steps[i] + (len(sampler.timesteps(timesteps)) if sampler else 0)
        return count

    @torch.inference_mode()
    def generate_tokens(self, d=None, *, standardize: Optional[bool] = None, seed: Optional[int] = None,
                        precision: Optional[str] = None, **kwargs) -> Tuple[Dict[str, torch.Tensor], dict]:
        """Token ids ``{output name: [B, rows, cols]}`` plus decoding info (grid, image size, noise generator)."""
        d = self._collect_inputs(d, kwargs)
        standardize = self.standardize if standardize is None else bool(standardize)
        height, width = self._image_size(d)
        grid = (height // 16, width // 16)
        seed = seed if seed is not None else (self.seed if self.seed is not None else sampling.draw_seed())
        parts = self._encoder_parts(d, grid, standardize)
        model = self.sampler.model
        low = self._low_precision(precision, model.mask_token.device)
        with transformer_arithmetic(model.mask_token.device, low):
            ctx = model.encode(encoder_input(parts))
        tokens, step, result = {}, 0, None
        for i, (name, key) in enumerate(self.output_keys.items()):
            if is_sequence(key):
                result = generate_sequence_tokens(
                    model, key, ctx, self.tokenizer[key], target_tokens=SEQUENCE_TARGET_TOKENS["generate"],
                    temperature=self.temps[i], top_k=self.top_k, top_p=self.top_p, seed=int(seed) + step,
                    low_precision=low)
                step += result.steps
                tokens[name] = result.tokens
                continue
            result = generate_image_tokens(model, key, parts, ctx, grid, steps=self.decoding_steps[i],
                                           temperature=self.temps[i], top_k=self.top_k, top_p=self.top_p,
                                           seed=int(seed), first_step=step, low_precision=low)
            step += result.steps
            tokens[name] = result.tokens.view(-1, *grid)
        info = {"grid": grid, "image_size": (height, width), "standardize": standardize,
                "noise_generator": result.noise_generator}
        return tokens, info

    @torch.inference_mode()
    def forward(self, d: Union[Mapping[str, torch.Tensor], torch.Tensor, None] = None,
                standardize: Optional[bool] = None, timesteps: Optional[int] = None, verbose: bool = False,
                seed: Optional[int] = None, precision: Optional[str] = None,
                **kwargs) -> Dict[str, torch.Tensor]:
        """Generate every output. ``d``: ``{input name: tensor}`` (or one tensor for the first input, or
        keyword arguments). Returns ``{output name: [B, C, H, W]}`` (LULC: class logits [B, 10, H, W]) in
        physical units when standardizing."""
        tokens, info = self.generate_tokens(d, standardize=standardize, seed=seed, precision=precision, **kwargs)
        return self.decode_outputs(tokens, info, timesteps, precision)

    @torch.inference_mode()
    def decode_outputs(self, tokens: Mapping[str, torch.Tensor], info: dict, timesteps: Optional[int] = None,
                       precision: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """Decode ``generate_tokens`` results to images (de-standardized when the tokens were made so)."""
        timesteps = self.timesteps if timesteps is None else _check_timesteps(timesteps)
        precision = self.precision if precision is None else check_precision(precision)
        out = {}
        for name, key in self.output_keys.items():
            value = self._decode(key, tokens[name], info["grid"], info["image_size"], timesteps,
                                 info["noise_generator"], precision)
            if info["standardize"] and not is_sequence(key):
                value = self._destandardize(name, value)
            out[name] = value
        return out


# ---------------------------------------------------------------------- construction helpers
def _settings(modalities, output_modalities, *, decoding_steps, temps, top_p, top_k, timesteps, offset,
              pretraining_mean, pretraining_std) -> dict:
    """Validated generation settings (cheap: runs before any tokenizer is built)."""
    input_keys = _resolve_inputs(modalities)
    output_keys = _resolve_outputs(output_modalities)
    clash = [n for n, k in output_keys.items() if k in input_keys.values()]
    if clash:
        raise ValueError(f"{clash} are both tokenized inputs and outputs; TerraMind would only copy them "
                         f"(TerraTorch raises NotImplementedError for images and returns the input Coordinates). Drop them from output_modalities.")
    outputs = list(output_keys)
    steps = [int(s) for s in _per_output(decoding_steps, outputs, "decoding_steps")]
    if any(s < 1 for s in steps):
        raise ValueError(f"decoding_steps must be >= 1, got {decoding_steps}")
    temps = [float(t) for t in _per_output(temps, outputs, "temps")]
    if any(not math.isfinite(t) or t < 0 for t in temps):
        raise ValueError(f"temps must be finite and >= 0 (0 = greedy), got {temps}")
    if not 0.0 <= float(top_p) <= 1.0:
        raise ValueError(f"top_p must lie in [0, 1] (0 disables nucleus filtering), got {top_p}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, float)) or top_k < 0:
        raise ValueError(f"top_k must be a count (int >= 0) or a vocabulary fraction (float), got {top_k!r}")
    mean, std = _statistics(pretraining_mean, pretraining_std, offset,
                            list(input_keys.items()) + list(output_keys.items()))
    return dict(input_keys=input_keys, output_keys=output_keys, decoding_steps=steps, temps=temps,
                top_p=float(top_p), timesteps=_check_timesteps(timesteps), mean=mean, std=std)


def _check_timesteps(timesteps) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or not 1 <= timesteps <= 1000:
        raise ValueError(f"timesteps (diffusion steps) must be an integer between 1 and 1000, got {timesteps!r}")
    return timesteps


def _resolve_inputs(modalities) -> Dict[str, str]:
    if isinstance(modalities, str):
        modalities = [modalities]
    if not modalities:
        raise ValueError("Input modalities not provided (modalities=[...], e.g. ['S2L2A']).")
    keys = {}
    for name in modalities:
        if isinstance(name, Mapping):
            raise ValueError(f"Generation needs pretrained input modalities; new modalities like {name} have no "
                             f"trained embedding. Known inputs: S2L2A, S2L1C, RGB, S1GRD, S1RTC, DEM, LULC, NDVI.")
        key = resolve_input_modality(name)
        if key in keys.values():
            raise ValueError(f"Inputs {[n for n, k in keys.items() if k == key] + [name]} both map to {key}")
        keys[name] = key
    return keys


def _resolve_outputs(output_modalities) -> Dict[str, str]:
    if isinstance(output_modalities, str):
        output_modalities = [output_modalities]
    if not output_modalities:
        raise ValueError(f"Output modalities not provided (output_modalities=[...] from {', '.join(GENERATION_OUTPUTS)}).")
    keys = {}
    for name in output_modalities:
        key = resolve_generation_output(name)
        if key in keys.values():
            raise ValueError(f"Outputs {[n for n, k in keys.items() if k == key] + [name]} both map to {key}")
        keys[name] = key
    return keys


def _needed_tokenizers(input_keys: Mapping[str, str], output_keys: Mapping[str, str]) -> List[str]:
    keys = [k for k in input_keys.values() if MODALITY_INFO[k].tokenizer] + list(output_keys.values())
    return list(dict.fromkeys(keys))


def _statistics(mean_override, std_override, offset, pairs: Sequence[Tuple[str, str]]):
    """Mean/std lists per (user name, key), with offsets added to the named modality's mean (TerraTorch
    adds them to its module-level table, so they pile up across models; we keep them per model)."""
    means = {**PRETRAINING_MEAN, **(mean_override or {})}
    stds = {**PRETRAINING_STD, **(std_override or {})}
    offset = dict(offset or {})
    names = [name for name, _ in pairs]
    unknown = [m for m in offset if m not in names]
    if unknown:
        raise ValueError(f"offset names {unknown} are neither inputs nor outputs ({names})")
    mean, std = {}, {}
    for name, key in pairs:
        if key in means and key in stds:
            mean[(name, key)] = [float(v) + float(offset.get(name, 0.0)) for v in means[key]]
            std[(name, key)] = [float(v) for v in stds[key]]
    return mean, std


# TerraTorch keyword arguments that are fixed in TerraMind 1.0 (accepted only with their fixed value)
_FIXED_KWARGS = {"patch_size": 16, "qk_norm": False, "num_register_tokens": 0}


def build_generation(size: str, *, modalities=None, output_modalities=None, pretrained: bool = False,
                     ckpt_path: Optional[str] = None, download_progress=None, img_size: int = 224,
                     **kwargs) -> TerraMindGeneration:
    """``terramind_v1_{size}_generate``: TerraTorch's keyword arguments, our modules.

    ``pretrained`` loads ``sampler.model`` from the same official file as the backbone (the generate
    filter: checkpoint key ``k`` -> ``sampler.model.k``) and each needed tokenizer from its own file.
    ``ckpt_path`` loads a file in this model's own key layout (``sampler.model.*``, ``tokenizer.*``).
    """
    for key, fixed in _FIXED_KWARGS.items():
        if key in kwargs and kwargs.pop(key) != fixed:
            raise ValueError(f"{key} is fixed to {fixed!r} in TerraMind 1.0")
    allowed = {"decoding_steps", "temps", "top_p", "top_k", "timesteps", "standardize", "offset",
               "pretraining_mean", "pretraining_std", "seed", "precision"}
    extra = sorted(set(kwargs) - allowed)
    if extra:
        raise TypeError(f"terramind_v1_{size}_generate got unexpected keyword arguments {extra}; "
                        f"accepted: modalities, output_modalities, {', '.join(sorted(allowed))}, pretrained, "
                        f"ckpt_path, img_size")
    transformer_config(size)  # validates the size early
    defaults = dict(decoding_steps=1, temps=1.0, top_p=0.8, top_k=0, timesteps=50, offset=None,
                    pretraining_mean=None, pretraining_std=None)
    checked = _settings(modalities, output_modalities,
                        **{k: kwargs.get(k, v) for k, v in defaults.items()})
    input_keys, output_keys = checked["input_keys"], checked["output_keys"]

    from .tokenizers import build_tokenizer

    tokenizers = {}
    for key in _needed_tokenizers(input_keys, output_keys):
        tokenizers[key] = build_tokenizer(MODALITY_INFO[key].tokenizer, pretrained=pretrained,
                                          download_progress=download_progress)
    model = TerraMindGeneration(list(input_keys), list(output_keys), tokenizers, size=size, img_size=img_size,
                                **kwargs)
    if ckpt_path is not None:
        _load_own_checkpoint(model, ckpt_path, tokenizers_loaded=pretrained)
    elif pretrained:
        from .loading import filter_generate_state, load_official

        report = load_official(model, BACKBONES[size].registry_name, filter_generate_state, progress=download_progress)
        _check_feedback_embeddings(model, report.missing + report.skipped)
    return model.eval()


def _check_feedback_embeddings(model: TerraMindGeneration, not_loaded: Sequence[str]) -> None:
    """Multi-step decoding reads decoded tokens through the outputs' token encoder embeddings; random ones
    would silently corrupt the result, so they must come from the checkpoint."""
    outputs = set(model.output_keys.values()) - set(model.input_keys.values())
    lacking = sorted({k.split(".")[3] for k in not_loaded
                      if k.startswith("sampler.model.encoder_embeddings.") and k.split(".")[3] in outputs})
    if lacking:
        raise ValueError(f"decoding_steps > 1 feeds decoded tokens back through the encoder, but the checkpoint "
                         f"has no encoder embedding for {lacking}; use decoding_steps=1 for those outputs.")


def _load_own_checkpoint(model: TerraMindGeneration, path, tokenizers_loaded: bool) -> None:
    """A file saved from this model or TerraTorch's TerraMindGeneration (same keys). Tokenizer weights may be
    absent when they were loaded with ``pretrained=True``; any other missing weight is an error."""
    from .. import hub

    result = model.load_state_dict(hub.load_checkpoint(path), strict=False)
    _check_feedback_embeddings(model, result.missing_keys)
    missing = [k for k in result.missing_keys if not (tokenizers_loaded and k.startswith("tokenizer."))]
    if missing:
        raise RuntimeError(f"{path} lacks {len(missing)} weights of this generation model, e.g. {missing[:5]}; "
                           f"it must hold sampler.model.* (and tokenizer.* unless pretrained=True) keys")
