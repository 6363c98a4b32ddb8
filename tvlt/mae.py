"""Inference-time masked autoencoding: hide patches, let the model fill them in, measure the error.

TVLT's MAE targets are the raw input patches (no per-patch normalisation: transformers'
`pixel_mae_loss`/`audio_mae_loss` and the original `compute_mae_joint` compare predictions with
`patchify(values)` directly), so predictions are already in the input's value space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch

from tvlt.config import TvltConfig
from tvlt.masking import MaskLike, MaskSpec, encoder_masks
from tvlt.modeling import TvltForPreTraining

# transformers' audio_mask_type -> ours
_AUDIO_MASK_KIND = {"frame-level": "time", "patch-level": "patch"}


@dataclass
class MaeResult:
    """One MAE pass. Grids: video (B, T, h, w), audio (B, s, f); patch values (row, col, channel) as tvlt.layout."""

    video_is_masked: torch.Tensor  # bool (B, T, h, w), True = hidden from the encoder (padding included)
    audio_is_masked: torch.Tensor  # bool (B, s, f)
    video_is_valid: torch.Tensor  # bool (B, T, h, w), False = padding
    audio_is_valid: torch.Tensor  # bool (B, s, f)
    num_visible_video: torch.Tensor  # long (B,): real tokens the encoder saw, per clip
    num_visible_audio: torch.Tensor  # long (B,)
    num_encoder_tokens: int  # sequence length: 1 (CLS) + video + audio (padding topping rows up included)
    pixel_predictions: torch.Tensor  # (B, Nv, p*q*C)
    audio_predictions: torch.Tensor  # (B, Na, pa*qa)
    video_reconstruction: torch.Tensor  # (B, T, C, H, W), every patch predicted
    video_composite: torch.Tensor  # (B, T, C, H, W), predictions only where hidden, the input elsewhere
    audio_reconstruction: torch.Tensor  # (B, 1, S, F)
    audio_composite: torch.Tensor  # (B, 1, S, F)
    video_patch_error: torch.Tensor  # (B, T, h, w) mean squared error per patch, NaN on padding
    audio_patch_error: torch.Tensor  # (B, s, f)
    video_masked_error: torch.Tensor  # (B,) mean patch error over hidden real patches, NaN if none
    audio_masked_error: torch.Tensor  # (B,)


def default_masking(config: TvltConfig, seed: int = 0) -> tuple[MaskSpec, MaskSpec]:
    """The config's pretraining masks: random video at `pixel_mask_ratio`, audio at `audio_mask_ratio` in time
    columns (frame-level) or patches."""
    return (
        MaskSpec(config.pixel_mask_ratio, "random", seed),
        MaskSpec(config.audio_mask_ratio, _AUDIO_MASK_KIND[config.audio_mask_type], seed),
    )


class _Outcome(NamedTuple):
    reconstruction: torch.Tensor  # (B, T, C, H, W) or (B, 1, S, F)
    composite: torch.Tensor  # same shape, input values where the encoder saw the patch
    patch_error: torch.Tensor  # (B, *grid), NaN on padding
    masked_error: torch.Tensor  # (B,)


def _outcome(
    predictions: torch.Tensor,
    patches: torch.Tensor,
    is_masked: torch.Tensor,
    is_valid: torch.Tensor,
    unpatchify: Callable[[torch.Tensor], torch.Tensor],
) -> _Outcome:
    """One modality: predictions and input patches (B, N, P), bool grids (B, *grid) -> images and errors."""
    is_valid = is_valid.to(predictions.device)
    is_target = is_masked.to(predictions.device) & is_valid  # hidden real patches
    error = ((predictions - patches) ** 2).mean(dim=-1).reshape(is_valid.shape).masked_fill(~is_valid, float("nan"))
    error_sum = error.nan_to_num().mul(is_target).flatten(1).sum(dim=1)
    masked_error = error_sum / is_target.flatten(1).sum(dim=1)  # 0 / 0 = NaN when nothing is hidden
    composite = torch.where(is_target.flatten(1)[..., None], predictions, patches)
    return _Outcome(unpatchify(predictions), unpatchify(composite), error, masked_error)


def reconstruct(
    model: TvltForPreTraining,
    pixel_values: torch.Tensor,
    audio_values: torch.Tensor,
    video_masking: Optional[MaskLike] = None,
    audio_masking: Optional[MaskLike] = None,
    pixel_mask: Optional[torch.Tensor] = None,
    audio_mask: Optional[torch.Tensor] = None,
) -> MaeResult:
    """Hide patches, encode the rest, decode every patch.

    pixel_values (B, T, C, H, W) and audio_values (B, 1, S, F), normalised as the model's inputs.
    video_masking / audio_masking: a `MaskSpec`, an explicit bool mask (grid or flat), or None (hide nothing);
    `default_masking(config)` gives the pretraining masks. pixel_mask (B, Nv) / audio_mask (B, Na): float
    padding masks, 1 = real. Runs without gradients and leaves the model's train/eval mode alone.
    """
    masks = encoder_masks(
        model.config, pixel_values, audio_values, pixel_mask, audio_mask, video_masking, audio_masking
    )
    with torch.no_grad():
        output = model.tvlt(pixel_values, audio_values, **masks.model_inputs(pixel_values.device))
        padding = [None if bool(v.all()) else ~v.flatten(1) for v in (masks.video_is_valid, masks.audio_is_valid)]
        pixel_predictions, audio_predictions = model.decode(output, *padding)  # padding never informs the decoder
    layout = masks.layout
    video_is_masked = ~masks.video_is_valid if masks.video_is_masked is None else masks.video_is_masked
    audio_is_masked = ~masks.audio_is_valid if masks.audio_is_masked is None else masks.audio_is_masked
    video = _outcome(pixel_predictions, layout.patchify_video(pixel_values), video_is_masked, masks.video_is_valid,
                     layout.unpatchify_video)
    audio = _outcome(audio_predictions, layout.patchify_audio(audio_values), audio_is_masked, masks.audio_is_valid,
                     layout.unpatchify_audio)
    return MaeResult(
        video_is_masked=video_is_masked,
        audio_is_masked=audio_is_masked,
        video_is_valid=masks.video_is_valid,
        audio_is_valid=masks.audio_is_valid,
        num_visible_video=(~video_is_masked & masks.video_is_valid).flatten(1).sum(dim=1),
        num_visible_audio=(~audio_is_masked & masks.audio_is_valid).flatten(1).sum(dim=1),
        num_encoder_tokens=output.last_hidden_state.shape[1],
        pixel_predictions=pixel_predictions,
        audio_predictions=audio_predictions,
        video_reconstruction=video.reconstruction,
        video_composite=video.composite,
        audio_reconstruction=audio.reconstruction,
        audio_composite=audio.composite,
        video_patch_error=video.patch_error,
        audio_patch_error=audio.patch_error,
        video_masked_error=video.masked_error,
        audio_masked_error=audio.masked_error,
    )
