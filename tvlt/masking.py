"""Which patches the encoder may see: explicit (click-to-mask) or generated from a seeded spec.

A mask is a bool tensor in grid shape, `is_masked` (True = hidden from the encoder):
video (B, T, h, w) frame-major / row-major, audio (B, s, f) time-major / frequency fastest,
so `mask.flatten(1)` is in the token order of `tvlt.layout`.

Padding: padded (invalid) tokens are hidden, and random masks are drawn among valid tokens only. In a batch
whose rows have unequal padding, some padding is shown instead so that every row shows the encoder the same
number of tokens (`equal_visible_counts`); shown padding is still ignored by attention. Error metrics and
visible counts must therefore use `is_valid` as well as `is_masked`.

Generated masks hide `n_hide = floor(ratio * U + 0.5)` (round half up) of U *units*, where a unit
is what the mask type hides at once and only units holding at least one valid token count:

| type        | modality | unit                                   | U                        |
| ----------- | -------- | -------------------------------------- | ------------------------ |
| `random`    | video    | one patch                              | valid patches            |
| `tube`      | video    | one spatial position, in every frame   | positions valid in any frame |
| `frame`     | video    | one whole frame                        | frames with a valid patch |
| `patch`     | audio    | one patch                              | valid patches            |
| `time`      | audio    | one time column (all frequency bands)  | columns with a valid patch |
| `frequency` | audio    | one mel band (all time columns)        | bands with a valid patch |

`time` is TVLT's frame-level audio masking. Randomness comes only from `torch.Generator(seed)`.
`encoder_masks` resolves both modalities for one call and turns them into `TvltModel.forward` arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout

VIDEO_MASK_TYPES = ("random", "tube", "frame")
AUDIO_MASK_TYPES = ("patch", "time", "frequency")

# Grid axes (without batch) that index one unit; the other axes are hidden together.
_UNIT_AXES = {
    "random": (0, 1, 2),
    "tube": (1, 2),
    "frame": (0,),
    "patch": (0, 1),
    "time": (0,),
    "frequency": (1,),
}

MaskLike = Union["MaskSpec", torch.Tensor, np.ndarray, list]


@dataclass(frozen=True)
class MaskSpec:
    """A generated mask: hide `ratio` of the units of type `kind`, drawn with `seed`."""

    ratio: float  # fraction hidden, in [0, 1)
    kind: str  # one of VIDEO_MASK_TYPES or AUDIO_MASK_TYPES
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"mask ratio must be in [0, 1), got {self.ratio!r}")
        if self.kind not in _UNIT_AXES:
            known = VIDEO_MASK_TYPES + AUDIO_MASK_TYPES
            raise ValueError(f"unknown mask type {self.kind!r}; expected one of {known}")


def num_hidden(ratio: float, num_units: int) -> int:
    """How many of `num_units` a mask of `ratio` hides: round half up."""
    return int(math.floor(ratio * num_units + 0.5))


def generate_mask(spec: MaskSpec, is_valid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One sample's mask from `spec`.

    is_valid: bool (T, h, w) for video or (s, f) for audio, True = real token.
    Returns bool `is_masked` of the same shape; padded tokens are always True.
    """
    unit_axes = _UNIT_AXES[spec.kind]
    if max(unit_axes) >= is_valid.dim():
        needed = max(unit_axes) + 1
        raise ValueError(f"mask type {spec.kind!r} needs a {needed}-d grid, got shape {tuple(is_valid.shape)}")
    shared_axes = tuple(a for a in range(is_valid.dim()) if a not in unit_axes)
    unit_valid = is_valid.any(dim=shared_axes, keepdim=True) if shared_axes else is_valid  # units, keepdim
    noise = torch.rand(unit_valid.shape, generator=generator)
    noise[~unit_valid] = math.inf  # invalid units sort last and are never drawn
    order = noise.flatten().argsort()
    unit_hidden = torch.zeros(unit_valid.numel(), dtype=torch.bool)
    unit_hidden[order[: num_hidden(spec.ratio, int(unit_valid.sum()))]] = True
    return unit_hidden.view(unit_valid.shape).expand(is_valid.shape) | ~is_valid


def generate_batch_mask(spec: MaskSpec, is_valid: torch.Tensor) -> torch.Tensor:
    """Masks for a batch, rows drawn one after another from one generator seeded with `spec.seed`.

    is_valid: bool (B, T, h, w) or (B, s, f). Returns bool `is_masked`, same shape.
    """
    generator = torch.Generator().manual_seed(spec.seed)
    return torch.stack([generate_mask(spec, row, generator) for row in is_valid])


def explicit_mask(mask: Union[torch.Tensor, np.ndarray, list], grid: tuple[int, ...], batch_size: int) -> torch.Tensor:
    """A user-given mask as bool (B, *grid).

    mask: bool or 0/1 values shaped `grid`, flat (N,), (B, *grid) or (B, N); one mask is shared by
    the whole batch.
    """
    tensor = torch.as_tensor(np.asarray(mask) if isinstance(mask, list) else mask).cpu()
    if tensor.dtype != torch.bool:
        if not bool(((tensor == 0) | (tensor == 1)).all()):
            raise ValueError(f"explicit mask must be boolean or 0/1, got values {tensor.unique().tolist()[:5]}")
        tensor = tensor.bool()
    num_tokens = math.prod(grid)
    shapes = {tuple(grid): 1, (num_tokens,): 1, (batch_size, *grid): batch_size, (batch_size, num_tokens): batch_size}
    if tuple(tensor.shape) not in shapes:
        raise ValueError(
            f"explicit mask shape {tuple(tensor.shape)} fits neither grid {tuple(grid)} nor {num_tokens} tokens"
        )
    return tensor.reshape(-1, *grid).expand(batch_size, *grid).clone()


def resolve_mask(mask: Optional[MaskLike], modality: str, is_valid: torch.Tensor) -> torch.Tensor:
    """Any accepted mask form -> bool `is_masked` (B, *grid): padding hidden, or shown to even rows out.

    mask: a MaskSpec, an explicit mask (see `explicit_mask`), or None (hide only padding).
    modality: "video" or "audio" (checks the spec's type). is_valid: bool (B, *grid).
    """
    allowed = {"video": VIDEO_MASK_TYPES, "audio": AUDIO_MASK_TYPES}
    if modality not in allowed:
        raise ValueError(f"modality must be 'video' or 'audio', got {modality!r}")
    if isinstance(mask, MaskSpec):
        if mask.kind not in allowed[modality]:
            raise ValueError(f"{modality} mask type must be one of {allowed[modality]}, got {mask.kind!r}")
        return equal_visible_counts(generate_batch_mask(mask, is_valid), is_valid)
    if mask is None:
        return ~is_valid
    return equal_visible_counts(explicit_mask(mask, tuple(is_valid.shape[1:]), is_valid.shape[0]) | ~is_valid, is_valid)


def equal_visible_counts(is_masked: torch.Tensor, is_valid: torch.Tensor) -> torch.Tensor:
    """Reveal padding tokens so that every row shows the encoder as many tokens as the row showing the most.

    The encoder takes one rectangular batch, so rows with more padding (fewer real tokens, hence fewer visible ones)
    are topped up with padding, which stays invalid: the attention mask ignores it and it is never scored.
    is_masked, is_valid: bool (B, *grid). A row that cannot be topped up (not enough padding) is left as is, and
    the model then refuses the batch naming the counts.
    """
    masked, valid = is_masked.flatten(1).clone(), is_valid.flatten(1)
    shown = (~masked).sum(dim=1)
    for row, missing in enumerate((shown.max() - shown).tolist()):
        padding = (masked[row] & ~valid[row]).nonzero().flatten()
        if 0 < missing <= len(padding):
            masked[row, padding[:missing]] = False
    return masked.view_as(is_masked)


def validity_grid(float_mask: Optional[torch.Tensor], grid: tuple[int, ...], batch_size: int) -> torch.Tensor:
    """transformers' float `pixel_mask` / `audio_mask` (B, N), 1 = real token, -> bool `is_valid` (B, *grid).

    None means every token is real.
    """
    if float_mask is None:
        return torch.ones(batch_size, *grid, dtype=torch.bool)
    if tuple(float_mask.shape) != (batch_size, math.prod(grid)):
        raise ValueError(f"padding mask shape {tuple(float_mask.shape)} != {(batch_size, math.prod(grid))}")
    return (float_mask > 0.5).cpu().view(batch_size, *grid)


@dataclass(frozen=True)
class EncoderMasks:
    """Validity and hiding of every token of one encoder call, in grid shape (bool, on the CPU)."""

    layout: TokenLayout
    video_is_valid: torch.Tensor  # (B, T, h, w)
    audio_is_valid: torch.Tensor  # (B, s, f)
    video_is_masked: Optional[torch.Tensor]  # (B, T, h, w); None = nothing hidden, padding left to attention
    audio_is_masked: Optional[torch.Tensor]  # (B, s, f)

    def model_inputs(self, device: torch.device) -> dict[str, Optional[torch.Tensor]]:
        """Keyword arguments for `TvltModel.forward`: float padding masks and flat `*_is_masked`."""
        def flat(mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if mask is None else mask.flatten(1).to(device)

        def padding(is_valid: torch.Tensor) -> Optional[torch.Tensor]:
            return None if bool(is_valid.all()) else is_valid.flatten(1).float().to(device)

        return dict(
            pixel_mask=padding(self.video_is_valid),
            audio_mask=padding(self.audio_is_valid),
            pixel_is_masked=flat(self.video_is_masked),
            audio_is_masked=flat(self.audio_is_masked),
        )


def encoder_masks(
    config: TvltConfig,
    pixel_values: torch.Tensor,
    audio_values: torch.Tensor,
    pixel_mask: Optional[torch.Tensor] = None,
    audio_mask: Optional[torch.Tensor] = None,
    video_masking: Optional[MaskLike] = None,
    audio_masking: Optional[MaskLike] = None,
) -> EncoderMasks:
    """Resolve padding and hiding for inputs pixel_values (B, T, C, H, W) and audio_values (B, 1, S, F).

    pixel_mask (B, Nv) / audio_mask (B, Na): transformers' float padding masks, 1 = real.
    video_masking / audio_masking: a MaskSpec or an explicit mask (see `resolve_mask`); None hides nothing.
    """
    layout = TokenLayout.from_config(config, num_frames=pixel_values.shape[1], spectrogram_length=audio_values.shape[2])
    B = pixel_values.shape[0]
    video_grid = (layout.num_frames, layout.grid_rows, layout.grid_cols)
    audio_grid = (layout.audio_time_patches, layout.audio_freq_patches)
    video_is_valid = validity_grid(pixel_mask, video_grid, B)
    audio_is_valid = validity_grid(audio_mask, audio_grid, B)
    return EncoderMasks(
        layout=layout,
        video_is_valid=video_is_valid,
        audio_is_valid=audio_is_valid,
        video_is_masked=None if video_masking is None else resolve_mask(video_masking, "video", video_is_valid),
        audio_is_masked=None if audio_masking is None else resolve_mask(audio_masking, "audio", audio_is_valid),
    )
