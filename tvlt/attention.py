"""Encoder attention, captured one layer at a time, and maps over the video and audio patch grids.

Capture uses forward hooks on `encoder.layer[i].attention.attention` that recompute
softmax(q k^T / sqrt(head_dim) + attention_mask) from the module's inputs (lucidrains' recorder
pattern): model code is untouched, the fast SDPA path still runs, and the hooks are removed on exit.
At tvlt-base size one layer at ~2600 tokens is ~0.3 GB fp32 per clip, all twelve ~4 GB, so nothing
here holds more than one layer's weights: `attention_rollout` folds each layer in as it is computed.

Maps are grids, video (B, T, h, w) and audio (B, s, f). A map entry is NaN where the token has no
value: hidden from the encoder (masked) or padding; `AttentionMaps.video_is_visible` /
`audio_is_visible` say which entries are real. Each map is renormalised to sum to 1 over its
visible entries, so padding never takes a share.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Iterator, Optional

import torch
from torch import nn

from tvlt.layers import attention_probs
from tvlt.layout import TokenLayout
from tvlt.masking import EncoderMasks, MaskLike, encoder_masks

OnWeights = Callable[[int, torch.Tensor], None]
SPAN_TOLERANCE_S = 5e-4  # half a millisecond: spans typed or shown to the millisecond hit the patch they name


@dataclass
class AttentionMaps:
    """Attention of one encoder call and where every grid token sits in its sequence."""

    weights: torch.Tensor  # (B, heads, N, N) for one layer, (B, N, N) for a rollout; rows are queries
    layout: TokenLayout
    video_positions: torch.Tensor  # long (B, T, h, w): index in the sequence, -1 = hidden
    audio_positions: torch.Tensor  # long (B, s, f)
    video_is_valid: torch.Tensor  # bool (B, T, h, w), False = padding
    audio_is_valid: torch.Tensor  # bool (B, s, f)

    @property
    def video_is_visible(self) -> torch.Tensor:
        """bool (B, T, h, w): seen by the encoder and not padding."""
        return (self.video_positions >= 0) & self.video_is_valid

    @property
    def audio_is_visible(self) -> torch.Tensor:
        """bool (B, s, f)."""
        return (self.audio_positions >= 0) & self.audio_is_valid


def _encoder_model(model: nn.Module) -> nn.Module:
    """The `TvltModel` inside any of our model classes."""
    return getattr(model, "tvlt", model)


def attention_weights(
    module: nn.Module, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor]
) -> torch.Tensor:
    """Recompute a self-attention module's weights from its inputs.

    hidden_states (B, N, D) as the module received them; attention_mask None or additive (B, 1, 1, N).
    Returns (B, heads, N, N), rows summing to 1.
    """
    B, N, D = hidden_states.shape
    heads = module.num_attention_heads
    q = module.query(hidden_states).view(B, N, heads, D // heads).transpose(1, 2)  # (B, h, N, d)
    k = module.key(hidden_states).view(B, N, heads, D // heads).transpose(1, 2)
    return attention_probs(q, k, attention_mask)


def _hook(layer: int, on_weights: OnWeights, module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
    attention_mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
    on_weights(layer, attention_weights(module, args[0], attention_mask))


@contextmanager
def record_attention(model: nn.Module, layers: Iterable[int], on_weights: OnWeights) -> Iterator[None]:
    """While open, every forward of the encoder calls `on_weights(layer, weights (B, heads, N, N))` for each
    of `layers`, in layer order. Hooks are removed on exit, also after an error."""
    blocks = _encoder_model(model).encoder.layer
    handles = []
    try:
        for layer in layers:
            if not 0 <= layer < len(blocks):
                raise ValueError(f"layer {layer} out of range: the encoder has {len(blocks)} layers")
            module = blocks[layer].attention.attention
            handles.append(module.register_forward_hook(partial(_hook, layer, on_weights), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _sequence_positions(
    is_masked: Optional[torch.Tensor], ids_restore: Optional[torch.Tensor], offset: int, grid: tuple[int, ...]
) -> torch.Tensor:
    """Sequence index of each grid token (grid = (B, ...)), -1 where hidden. ids_restore (B, N) is each token's
    place in the kept-first order, so a visible token sits at `offset + ids_restore`."""
    B = grid[0]
    if ids_restore is None:
        return (offset + torch.arange(math.prod(grid[1:]))).expand(B, -1).reshape(grid)
    positions = offset + ids_restore.cpu()
    return positions.masked_fill(is_masked.flatten(1), -1).reshape(grid)


def _run_encoder(
    model: nn.Module, pixel_values: torch.Tensor, audio_values: torch.Tensor, masks: EncoderMasks
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the encoder once -> (video positions (B, T, h, w), audio positions (B, s, f))."""
    output = _encoder_model(model)(pixel_values, audio_values, **masks.model_inputs(pixel_values.device))
    n_video = output.last_pixel_hidden_state.shape[1]
    video = _sequence_positions(masks.video_is_masked, output.pixel_ids_restore, 1, tuple(masks.video_is_valid.shape))
    audio = _sequence_positions(
        masks.audio_is_masked, output.audio_ids_restore, 1 + n_video, tuple(masks.audio_is_valid.shape)
    )
    return video, audio


def _capture(
    model: nn.Module,
    pixel_values: torch.Tensor,
    audio_values: torch.Tensor,
    layers: Iterable[int],
    on_weights: OnWeights,
    result: Callable[[], torch.Tensor],
    mask_args: dict,
) -> AttentionMaps:
    """One encoder pass with `on_weights` hooked on `layers`; `result()` gives the weights to keep afterwards."""
    masks = encoder_masks(_encoder_model(model).config, pixel_values, audio_values, **mask_args)
    with torch.no_grad(), record_attention(model, layers, on_weights):
        video_positions, audio_positions = _run_encoder(model, pixel_values, audio_values, masks)
    return AttentionMaps(
        result(), masks.layout, video_positions, audio_positions, masks.video_is_valid, masks.audio_is_valid
    )


def layer_attention(
    model: nn.Module,
    pixel_values: torch.Tensor,
    audio_values: torch.Tensor,
    layer: int,
    pixel_mask: Optional[torch.Tensor] = None,
    audio_mask: Optional[torch.Tensor] = None,
    video_masking: Optional[MaskLike] = None,
    audio_masking: Optional[MaskLike] = None,
) -> AttentionMaps:
    """Attention weights of one encoder layer, all heads: weights (B, heads, N, N).

    pixel_values (B, T, C, H, W), audio_values (B, 1, S, F); pixel_mask / audio_mask: float padding masks
    (1 = real); video_masking / audio_masking: tokens hidden from the encoder (tvlt.masking forms).
    """
    captured: list[torch.Tensor] = []

    def keep(_: int, weights: torch.Tensor) -> None:
        captured.append(weights)

    mask_args = dict(
        pixel_mask=pixel_mask, audio_mask=audio_mask, video_masking=video_masking, audio_masking=audio_masking
    )
    return _capture(model, pixel_values, audio_values, [layer], keep, lambda: captured[0], mask_args)


def attention_rollout(
    model: nn.Module,
    pixel_values: torch.Tensor,
    audio_values: torch.Tensor,
    pixel_mask: Optional[torch.Tensor] = None,
    audio_mask: Optional[torch.Tensor] = None,
    video_masking: Optional[MaskLike] = None,
    audio_masking: Optional[MaskLike] = None,
) -> AttentionMaps:
    """Attention rollout (Abnar & Zuidema 2020) over all encoder layers: weights (B, N, N).

    Each layer's head-mean attention A becomes 0.5 * I + 0.5 * A (the residual path), rows renormalised,
    and is multiplied onto the running product as soon as that layer has run. Arguments as `layer_attention`.
    """
    product: list[torch.Tensor] = []  # the running rollout: at most one (B, N, N) tensor

    def fold(_: int, weights: torch.Tensor) -> None:
        fused = weights.mean(dim=1)  # (B, N, N)
        step = 0.5 * torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device) + 0.5 * fused
        step = step / step.sum(dim=-1, keepdim=True)
        product[:] = [step @ product[0] if product else step]

    layers = range(len(_encoder_model(model).encoder.layer))
    mask_args = dict(
        pixel_mask=pixel_mask, audio_mask=audio_mask, video_masking=video_masking, audio_masking=audio_masking
    )
    return _capture(model, pixel_values, audio_values, layers, fold, lambda: product[0], mask_args)


# ---- maps ----


def _fuse_heads(weights: torch.Tensor, head: Optional[int]) -> torch.Tensor:
    """(B, heads, N, N) -> one head or the mean of heads (B, N, N); a rollout (B, N, N) passes through."""
    if weights.dim() == 3:
        if head is not None:
            raise ValueError(f"head={head} given, but rollout weights have no heads")
        return weights
    if head is None:
        return weights.mean(dim=1)
    if not 0 <= head < weights.shape[1]:
        raise ValueError(f"head {head} out of range: the layer has {weights.shape[1]} heads")
    return weights[:, head]


def _to_grid(rows: torch.Tensor, positions: torch.Tensor, is_visible: torch.Tensor) -> torch.Tensor:
    """Attention rows over keys (B, N) -> grid (B, *grid) at `positions`, NaN where not visible, sum 1."""
    B = rows.shape[0]
    gathered = torch.gather(rows.float().cpu(), 1, positions.clamp(min=0).reshape(B, -1)).reshape(positions.shape)
    gathered = gathered.masked_fill(~is_visible, 0.0)
    total = gathered.flatten(1).sum(dim=1).reshape(B, *[1] * (positions.dim() - 1))
    return (gathered / total).masked_fill(~is_visible, math.nan)


def _query_rows(
    weights: torch.Tensor, select: torch.Tensor, positions: torch.Tensor, is_visible: torch.Tensor
) -> torch.Tensor:
    """Mean attention row of the selected visible query tokens: (B, N, N) -> (B, N)."""
    chosen = select & is_visible  # (B, *grid)
    counts = chosen.flatten(1).sum(dim=1)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"no visible query token in the selection for batch rows {empty}")
    B, N = weights.shape[0], weights.shape[-1]
    query_weights = torch.zeros(B, N)
    query_weights.scatter_add_(1, positions.clamp(min=0).reshape(B, -1), chosen.reshape(B, -1).float())
    query_weights = query_weights / counts[:, None]
    return torch.einsum("bq,bqk->bk", query_weights.to(weights.device, weights.dtype), weights)


def cls_attention(maps: AttentionMaps, head: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CLS -> patch attention: (video (B, T, h, w), audio (B, s, f)), each summing to 1 over visible patches.

    head: one head's map, or None for the mean of heads (rollout weights have no heads).
    """
    rows = _fuse_heads(maps.weights, head)[:, 0]  # (B, N)
    return (
        _to_grid(rows, maps.video_positions, maps.video_is_visible),
        _to_grid(rows, maps.audio_positions, maps.audio_is_visible),
    )


def audio_to_video_attention(
    maps: AttentionMaps, time_patches: tuple[int, int], head: Optional[int] = None
) -> torch.Tensor:
    """Where an audio span looks in the video: mean attention of the visible audio tokens in time patches
    [start, stop) (all frequency bands) over video patches -> (B, T, h, w), summing to 1."""
    start, stop = time_patches
    if not 0 <= start < stop <= maps.layout.audio_time_patches:
        raise ValueError(f"time patch range {time_patches} not within [0, {maps.layout.audio_time_patches})")
    select = torch.zeros_like(maps.audio_is_valid)
    select[:, start:stop] = True
    rows = _query_rows(_fuse_heads(maps.weights, head), select, maps.audio_positions, maps.audio_is_visible)
    return _to_grid(rows, maps.video_positions, maps.video_is_visible)


def video_to_audio_attention(
    maps: AttentionMaps, frame: int, patch_box: tuple[int, int, int, int], head: Optional[int] = None
) -> torch.Tensor:
    """Where a frame region listens in the spectrogram: mean attention of the visible video tokens of `frame`
    inside patch_box (row0, col0, row1, col1), half-open, over audio patches -> (B, s, f), summing to 1."""
    row0, col0, row1, col1 = patch_box
    lay = maps.layout
    if not 0 <= frame < lay.num_frames:
        raise ValueError(f"frame {frame} out of range [0, {lay.num_frames})")
    if not (0 <= row0 < row1 <= lay.grid_rows and 0 <= col0 < col1 <= lay.grid_cols):
        raise ValueError(f"patch box {patch_box} not within the {lay.grid_rows}x{lay.grid_cols} patch grid")
    select = torch.zeros_like(maps.video_is_valid)
    select[:, frame, row0:row1, col0:col1] = True
    rows = _query_rows(_fuse_heads(maps.weights, head), select, maps.video_positions, maps.video_is_visible)
    return _to_grid(rows, maps.audio_positions, maps.audio_is_visible)


def seconds_to_time_patches(
    start_s: float, end_s: float, frames_per_second: float, patch_frames: int, num_time_patches: int
) -> tuple[int, int]:
    """Audio span in seconds -> time patches [start, stop) covering it, clipped to the spectrogram.

    frames_per_second: spectrogram frames per second (TVLT: 44100 / 512); patch_frames: frames per patch.
    A boundary given to the millisecond counts as that boundary (patches last 185.8 ms: 0.186 s ends patch 0).
    """
    if not 0 <= start_s < end_s:
        raise ValueError(f"audio span ({start_s}, {end_s}) s must satisfy 0 <= start < end")
    seconds_per_patch = patch_frames / frames_per_second
    start = math.floor((start_s + SPAN_TOLERANCE_S) / seconds_per_patch)
    stop = min(math.ceil((end_s - SPAN_TOLERANCE_S) / seconds_per_patch), num_time_patches)
    if start >= stop:
        raise ValueError(f"audio span ({start_s}, {end_s}) s covers none of the spectrogram's {num_time_patches}"
                         f" time patches ({seconds_per_patch:.3f} s each)")
    return start, stop


def pixel_box_to_patch_box(
    pixel_box: tuple[int, int, int, int], patch_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Pixel box (top, left, bottom, right), half-open -> patch box (row0, col0, row1, col1) of every patch it
    touches."""
    top, left, bottom, right = pixel_box
    if not (0 <= top < bottom and 0 <= left < right):
        raise ValueError(f"pixel box {pixel_box} must satisfy 0 <= top < bottom and 0 <= left < right")
    p, q = patch_size
    return top // p, left // q, math.ceil(bottom / p), math.ceil(right / q)


def upsample_grid(grid: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """Patch grid (..., h, w) -> pixel / spectrogram resolution (..., h*p, w*q), each patch repeated (NaN kept)."""
    p, q = patch_size
    return grid.repeat_interleave(p, dim=-2).repeat_interleave(q, dim=-1)
