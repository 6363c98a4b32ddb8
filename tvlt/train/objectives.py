"""Pretraining and fine-tuning losses, as pure functions of model outputs (no data, no optimiser).

- `info_nce`: symmetric in-batch contrastive loss between video-only and audio-only embeddings.
- `masked_mse`: transformers' MAE loss (per-patch mean of squared errors, averaged over masked patches;
  raw patch values, no per-patch normalisation, as `TvltForPreTraining.pixel_mae_loss`/`audio_mae_loss`).
- `matching_bce`: vision-audio matching (BCE on the matching head's logit), plus `matching_pairs`, which
  chooses the video paired with each audio from positives, random, timing-twin and embedding-hard negatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


# "Zeroing" a modality feeds what preprocessing makes of its absence, not all-zero tensors (0 would be a
# mid-grey frame and a uniform -40 dB spectrogram, both real-looking signals).
BLANK_PIXEL = -1.0  # a black frame: uint8 0 -> (0 / 255 - 0.5) / 0.5
BLANK_AUDIO = -1.0  # silence: an all-zero waveform's log-mel is the floor, -1 in TVLT's scaling


def blank_modality(
    pixel_values: torch.Tensor, audio_values: torch.Tensor, blank_video: torch.Tensor, blank_audio: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the video of clips where `blank_video` (B,) bool by black frames and the audio where
    `blank_audio` by silence: pixel_values (B, T, C, H, W), audio_values (B, 1, S, F) -> same shapes."""
    pixel_values = torch.where(blank_video[:, None, None, None, None], BLANK_PIXEL, pixel_values)
    audio_values = torch.where(blank_audio[:, None, None, None], BLANK_AUDIO, audio_values)
    return pixel_values, audio_values


class Temperature(nn.Module):
    """Learnable contrastive logit scale, exp(log_scale) clamped to <= 100 (CLIP's recipe); not exported."""

    def __init__(self, initial: float = 1 / 0.07) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(initial)))

    def forward(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(100.0)).exp()


def info_nce(video: torch.Tensor, audio: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE; row i of both is the same clip.

    video, audio: (B, D) L2-normalised embeddings; scale: scalar logit scale.
    Returns (loss, audio->video top-1 accuracy in the batch), both scalars.
    """
    logits = scale * audio.float() @ video.float().T  # (B_audio, B_video)
    target = torch.arange(len(audio), device=audio.device)
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    accuracy = (logits.argmax(dim=1) == target).float().mean()
    return loss, accuracy.detach()


def masked_mse(predictions: torch.Tensor, targets: torch.Tensor, is_masked: torch.Tensor) -> torch.Tensor:
    """transformers' MAE loss. predictions, targets (B, N, P) patch vectors; is_masked (B, N) bool, or float
    per-patch weights (0 = not in the loss) for a weighted mean -> scalar."""
    per_patch = (predictions.float() - targets.float()).pow(2).mean(dim=-1)  # (B, N)
    weight = is_masked.float()
    return (per_patch * weight).sum() / weight.sum().clamp(min=1.0)


def matching_bce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B,) or (B, 1), labels (B,) in {0, 1} -> (BCE loss, pair accuracy)."""
    logits = logits.float().reshape(-1)
    labels = labels.float()
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    accuracy = ((logits > 0).float() == labels).float().mean()
    return loss, accuracy.detach()


@dataclass(frozen=True)
class NegativeMix:
    """How the matching task pairs each audio with a video: fractions of the pairs (the rest are positives)."""

    random: float = 0.2
    twin: float = 0.15  # same objects, other timing (only where a twin exists)
    hard: float = 0.15  # among the `hard_k` most similar videos by the current embeddings

    def __post_init__(self) -> None:
        for name in ("random", "twin", "hard"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"negative fraction {name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.random + self.twin + self.hard > 1.0:
            raise ValueError(f"negative fractions sum to {self.random + self.twin + self.hard:.3f} > 1")


def matching_pairs(
    num_audio: int,
    num_video: int,
    twin_of: torch.Tensor,
    similarity: torch.Tensor,
    mix: NegativeMix,
    hard_k: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the video index paired with each audio index 0..num_audio-1 (audio i's own video is video i).

    twin_of: (num_audio,) long, index of a timing twin's video or -1; similarity: (num_audio, num_video)
    audio->video embedding similarity (no grad). Kinds are assigned at random with `mix`'s fractions; a twin
    pair without a twin and any negative that would hit the clip itself falls back to a random other video.
    Returns (video_index (num_audio,) long, label (num_audio,) float: 1 = the audio's own video).
    """
    device = similarity.device
    own = torch.arange(num_audio, device=device)
    u = torch.rand(num_audio, generator=generator, device=generator.device).to(device)
    is_twin = (u >= mix.random) & (u < mix.random + mix.twin) & (twin_of >= 0)
    is_hard = (u >= mix.random + mix.twin) & (u < mix.random + mix.twin + mix.hard)
    is_positive = u >= mix.random + mix.twin + mix.hard
    # a random other video: shift by 1..num_video-1 so it never equals the clip itself
    shift = torch.randint(1, num_video, (num_audio,), generator=generator, device=generator.device).to(device)
    video = (own + shift) % num_video
    video = torch.where(is_twin, twin_of, video)
    video = torch.where(is_hard, _hard_negative(similarity, hard_k, generator), video)
    video = torch.where(is_positive, own, video)
    return video, (video == own).float()


def _hard_negative(similarity: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """(A, V) similarity -> (A,) one of the k most similar videos other than the audio's own, uniformly."""
    sim = similarity.float().clone()
    own = torch.arange(len(sim), device=sim.device)
    sim[own, own] = -math.inf
    k = min(k, sim.shape[1] - 1)
    top = sim.topk(k, dim=1).indices  # (A, k)
    pick = torch.randint(0, k, (len(sim), 1), generator=generator, device=generator.device).to(sim.device)
    return top.gather(1, pick).squeeze(1)
