"""Audio -> video retrieval: rank candidate videos for an audio query.

Two stages. The cheap one embeds each modality alone (the other modality's tokens all hidden from
the encoder) as the mean of its final-layer-normed tokens, L2-normalised, and ranks by cosine; the
bundled model is trained with a contrastive loss on exactly these embeddings. The expensive one runs
the joint encoder on every (audio, video) pair and scores it with the matching head.
`rank_videos(..., first_stage_k=K)` re-ranks only the cosine top K with the matching head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from tvlt.modeling import TvltForPreTraining


@dataclass
class Ranking:
    """Candidates for one query, best first."""

    indices: torch.Tensor  # long (N,): candidate indices, best first
    logits: torch.Tensor  # (N,) matching logit per candidate (input order), NaN if not re-ranked
    probabilities: torch.Tensor  # (N,) sigmoid(logits)
    cosine: Optional[torch.Tensor] = None  # (N,) first-stage similarity (input order), None without a first stage


def _chunks(n: int, batch_size: int) -> list[slice]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def _mean_pool(tokens: torch.Tensor, is_valid: Optional[torch.Tensor]) -> torch.Tensor:
    """(B, N, D) tokens, optional float (B, N) 1 = real -> L2-normalised mean over real tokens (B, D)."""
    weights = torch.ones(tokens.shape[:2], device=tokens.device) if is_valid is None else is_valid.to(tokens.dtype)
    pooled = (tokens * weights[..., None]).sum(dim=1) / weights.sum(dim=1, keepdim=True)
    return F.normalize(pooled, dim=-1)


def embed_video(
    model: nn.Module, pixel_values: torch.Tensor, pixel_mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Video-only embedding: pixel_values (B, T, C, H, W), pixel_mask float (B, Nv) 1 = real -> (B, D), unit norm.

    The encoder sees CLS and the video tokens; a one-patch silent spectrogram stands in for the audio input
    and is hidden entirely. Gradients flow (training uses this); wrap in torch.no_grad() for inference.
    """
    encoder = getattr(model, "tvlt", model)
    config = encoder.config
    B = pixel_values.shape[0]
    audio = pixel_values.new_zeros(B, config.num_audio_channels, config.audio_patch_size[0], config.frequency_length)
    hidden = torch.ones(B, config.frequency_length // config.audio_patch_size[1], dtype=torch.bool, device=audio.device)
    output = encoder(pixel_values, audio, pixel_mask=pixel_mask, audio_is_masked=hidden)
    return _mean_pool(output.last_pixel_hidden_state, pixel_mask)


def embed_audio(
    model: nn.Module, audio_values: torch.Tensor, audio_mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Audio-only embedding: audio_values (B, 1, S, F), audio_mask float (B, Na) 1 = real -> (B, D), unit norm.

    A one-frame black video stands in for the pixel input and is hidden entirely. Gradients flow.
    """
    encoder = getattr(model, "tvlt", model)
    config = encoder.config
    B = audio_values.shape[0]
    size = config.image_size
    pixels = audio_values.new_zeros(B, 1, config.num_image_channels, size, size)
    per_frame = (size // config.image_patch_size[0]) * (size // config.image_patch_size[1])
    hidden = torch.ones(B, per_frame, dtype=torch.bool, device=pixels.device)
    output = encoder(pixels, audio_values, audio_mask=audio_mask, pixel_is_masked=hidden)
    return _mean_pool(output.last_audio_hidden_state, audio_mask)


def embed_videos(
    model: nn.Module, pixel_values: torch.Tensor, pixel_mask: Optional[torch.Tensor] = None, batch_size: int = 16
) -> torch.Tensor:
    """`embed_video` over N candidates in batches, without gradients: (N, T, C, H, W) -> (N, D)."""
    with torch.no_grad():
        return torch.cat([
            embed_video(model, pixel_values[s], None if pixel_mask is None else pixel_mask[s])
            for s in _chunks(pixel_values.shape[0], batch_size)
        ])


def matching_logits(
    model: TvltForPreTraining,
    audio_values: torch.Tensor,
    pixel_values: torch.Tensor,
    batch_size: int = 16,
    audio_mask: Optional[torch.Tensor] = None,
    pixel_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Matching-head logit of one audio query against each video: audio_values (1, 1, S, F),
    pixel_values (N, T, C, H, W), audio_mask (1, Na), pixel_mask (N, Nv) -> (N,). The audio is repeated
    against `batch_size` videos per encoder call."""
    if getattr(model, "matching_head", None) is None:
        raise ValueError(f"{type(model).__name__} has no matching head (config.task_matching is False)")
    if audio_values.shape[0] != 1:
        raise ValueError(f"one audio query expected, got a batch of {audio_values.shape[0]}")
    logits = []
    with torch.no_grad():
        for s in _chunks(pixel_values.shape[0], batch_size):
            n = s.stop - s.start
            audio = audio_values.expand(n, -1, -1, -1)
            mask = None if audio_mask is None else audio_mask.expand(n, -1)
            video_mask = None if pixel_mask is None else pixel_mask[s]
            output = model.tvlt(pixel_values[s], audio, pixel_mask=video_mask, audio_mask=mask)
            logits.append(model.matching_head(output.last_hidden_state)[:, 0])
    return torch.cat(logits)


def _descending(scores: torch.Tensor) -> torch.Tensor:
    """Indices sorting scores high to low; ties keep input order."""
    return torch.argsort(-scores, stable=True)


def rank_candidates(
    cosine: Optional[torch.Tensor],
    score: Callable[[Optional[torch.Tensor]], torch.Tensor],
    first_stage_k: Optional[int],
) -> Ranking:
    """Rank N candidates: by `score(all indices)` when cosine is None, else the cosine top K re-ranked by
    `score(those indices)` followed by the rest in cosine order. cosine (N,); score: long (n,) or None (all)
    -> logits (n,)."""
    if cosine is None:
        logits = score(None)
        return Ranking(_descending(logits), logits, logits.sigmoid())
    if first_stage_k is None or first_stage_k < 1:
        raise ValueError(f"first_stage_k must be a positive int, got {first_stage_k!r}")
    by_cosine = _descending(cosine)
    top, rest = by_cosine[:first_stage_k], by_cosine[first_stage_k:]
    top_logits = score(top)
    logits = torch.full_like(cosine, float("nan")).scatter(0, top, top_logits.to(cosine.dtype))
    indices = torch.cat([top[_descending(top_logits)], rest])
    return Ranking(indices, logits, logits.sigmoid(), cosine)


def rank_videos(
    model: TvltForPreTraining,
    audio_values: torch.Tensor,
    pixel_values: torch.Tensor,
    batch_size: int = 16,
    first_stage_k: Optional[int] = None,
    audio_mask: Optional[torch.Tensor] = None,
    pixel_mask: Optional[torch.Tensor] = None,
    video_embeddings: Optional[torch.Tensor] = None,
) -> Ranking:
    """Rank N candidate videos (N, T, C, H, W) for one audio query (1, 1, S, F).

    first_stage_k None: the matching head scores every candidate. Otherwise cosine of `embed_audio` /
    `embed_video` picks the top K for the matching head. video_embeddings (N, D): precomputed `embed_videos`.
    """
    def score(indices: Optional[torch.Tensor]) -> torch.Tensor:
        chosen = slice(None) if indices is None else indices
        video_mask = None if pixel_mask is None else pixel_mask[chosen]
        return matching_logits(model, audio_values, pixel_values[chosen], batch_size, audio_mask, video_mask).cpu()

    if first_stage_k is None:
        return rank_candidates(None, score, None)
    if video_embeddings is None:
        video_embeddings = embed_videos(model, pixel_values, pixel_mask, batch_size)
    with torch.no_grad():
        query = embed_audio(model, audio_values, audio_mask)  # (1, D)
    cosine = (video_embeddings @ query[0]).cpu()  # (N,)
    return rank_candidates(cosine, score, min(first_stage_k, pixel_values.shape[0]))


# ---- evaluation ----


def target_ranks(rankings: list[Ranking], targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each query's true candidate: targets long (Q,) -> (Q,)."""
    return torch.stack([
        (ranking.indices == target).nonzero()[0, 0] + 1 for ranking, target in zip(rankings, targets.tolist())
    ])


def recall_at_k(ranks: torch.Tensor, k: int) -> float:
    """Fraction of queries whose true candidate is within the top k: ranks (Q,) 1-based."""
    return (ranks <= k).float().mean().item()


def median_rank(ranks: torch.Tensor) -> float:
    """Median of 1-based ranks (Q,); the mean of the two middle ranks when Q is even."""
    return ranks.float().quantile(0.5).item()


def first_stage_recall(
    model: TvltForPreTraining,
    audio_values: torch.Tensor,
    pixel_values: torch.Tensor,
    k: int,
    batch_size: int = 16,
    audio_mask: Optional[torch.Tensor] = None,
    pixel_mask: Optional[torch.Tensor] = None,
) -> float:
    """How often the cosine top k keeps the candidate that full matching-head scoring ranks first.

    audio_values (Q, 1, S, F) queries, pixel_values (N, T, C, H, W) candidates shared by all queries.
    Costs Q * N matching passes.
    """
    video_embeddings = embed_videos(model, pixel_values, pixel_mask, batch_size)  # (N, D)
    with torch.no_grad():
        queries = embed_audio(model, audio_values, audio_mask)  # (Q, D)
    shortlists = torch.stack([_descending(row)[:k] for row in (queries @ video_embeddings.T).cpu()])  # (Q, k)
    hits = 0
    for q in range(audio_values.shape[0]):
        query_mask = None if audio_mask is None else audio_mask[q : q + 1]
        best = rank_videos(model, audio_values[q : q + 1], pixel_values, batch_size, None, query_mask, pixel_mask)
        hits += int(bool((shortlists[q] == best.indices[0]).any()))
    return hits / audio_values.shape[0]
