"""TVLT models: `TvltModel`, `TvltForPreTraining`, `TvltForAudioVisualClassification`.

Call signatures, output attribute names and state-dict keys follow transformers 4.40.2; the forward passes are
split into embed / mask / encode / decode / heads. Departures from transformers (each marked "transformers:")
only touch cases where transformers crashes or ignores an input; outputs match wherever parity is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from tvlt.config import TvltConfig
from tvlt.layers import (
    AudioEmbeddings,
    Decoder,
    Encoder,
    MAEHead,
    MatchingHead,
    PixelEmbeddings,
    Pooler,
    Tensors,
    add_grid_embeddings,
    additive_attention_mask,
)
from tvlt.layout import patchify_audio, patchify_video, valid_tokens
from tvlt.weights import PretrainedMixin


@dataclass
class TvltModelOutput:
    last_hidden_state: torch.Tensor  # (B, 1 + Nv' + Na', D), Nv'/Na' = visible tokens
    last_pixel_hidden_state: torch.Tensor  # (B, Nv', D)
    last_audio_hidden_state: torch.Tensor  # (B, Na', D)
    pixel_label_masks: Optional[torch.Tensor] = None  # (B, Nv) float, 1 = masked (and valid)
    audio_label_masks: Optional[torch.Tensor] = None  # (B, Na)
    pixel_ids_restore: Optional[torch.Tensor] = None  # (B, Nv) long, gather index that un-shuffles
    audio_ids_restore: Optional[torch.Tensor] = None  # (B, Na)
    hidden_states: Optional[Tensors] = None  # embeddings + every layer, before the final layernorm
    attentions: Optional[Tensors] = None  # per layer (B, heads, N, N)


@dataclass
class TvltForPreTrainingOutput:
    loss: Optional[torch.Tensor] = None
    matching_logits: Optional[torch.Tensor] = None  # (B, 1)
    pixel_logits: Optional[torch.Tensor] = None  # (B, Nv, p*q*C)
    audio_logits: Optional[torch.Tensor] = None  # (B, Na, pa*qa*Ca)
    hidden_states: Optional[Tensors] = None
    attentions: Optional[Tensors] = None


@dataclass
class TvltClassifierOutput:
    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None  # (B, num_labels)
    hidden_states: Optional[Tensors] = None
    attentions: Optional[Tensors] = None


class MaskedTokens(NamedTuple):
    tokens: torch.Tensor  # (B, N', D) visible tokens
    is_valid: Optional[torch.Tensor]  # (B, N') bool, False = padding
    label_masks: Optional[torch.Tensor]  # (B, N) float, 1 = hidden from the encoder and valid
    ids_restore: Optional[torch.Tensor]  # (B, N) long


def random_ids_shuffle(batch: int, num_tokens: int, group: int, device: torch.device) -> torch.Tensor:
    """Random token order (B, N): groups of `group` consecutive tokens share one noise value, as transformers.

    Draws torch.rand exactly as transformers does, so a seeded run picks the same tokens.
    """
    noise = torch.rand(batch, num_tokens // group, device=device).repeat_interleave(group, dim=1)
    return torch.argsort(noise, dim=1)  # small noise = kept


def explicit_ids_shuffle(is_masked: torch.Tensor) -> tuple[torch.Tensor, int]:
    """bool (B, N) True = hidden -> (order with kept tokens first, each part ascending; number kept)."""
    counts = is_masked.sum(dim=1)
    if not bool((counts == counts[0]).all()):
        raise ValueError(f"every row must hide the same number of tokens, got counts {counts.tolist()}")
    ids_shuffle = torch.argsort(is_masked.to(torch.int8), dim=1, stable=True)
    return ids_shuffle, is_masked.shape[1] - int(counts[0])


def keep_tokens(
    tokens: torch.Tensor, ids_shuffle: torch.Tensor, len_keep: int, is_valid: Optional[torch.Tensor]
) -> MaskedTokens:
    """MAE masking: keep tokens[ids_shuffle[:, :len_keep]] (B, len_keep, D); the rest are hidden."""
    B, N, D = tokens.shape
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    kept = torch.gather(tokens, 1, ids_keep[..., None].expand(-1, -1, D))
    label_masks = (ids_restore >= len_keep).to(tokens.dtype)  # position of each token in the shuffle
    if is_valid is not None:
        label_masks = label_masks * is_valid  # padding is never a reconstruction target
        is_valid = torch.gather(is_valid, 1, ids_keep)
    return MaskedTokens(kept, is_valid, label_masks, ids_restore)


def restore_tokens(
    tokens: torch.Tensor, ids_restore: Optional[torch.Tensor], mask_token: torch.Tensor
) -> torch.Tensor:
    """Inverse of `keep_tokens`: (B, N', D) visible tokens + mask_token (1, 1, D) -> (B, N, D) in input order."""
    if ids_restore is None:
        return tokens
    B, n_keep, D = tokens.shape
    filled = torch.cat([tokens, mask_token.expand(B, ids_restore.shape[1] - n_keep, D)], dim=1)
    return torch.gather(filled, 1, ids_restore[..., None].expand(-1, -1, D))


def _as_mask_token(tokens: torch.Tensor, where: Optional[torch.Tensor], mask_token: torch.Tensor) -> torch.Tensor:
    """tokens (B, N, D) with the mask token (1, 1, D) at `where` (bool (B, N)); unchanged for None."""
    if where is None:
        return tokens
    return torch.where(where.to(tokens.device)[..., None], mask_token.to(tokens.dtype), tokens)


def mae_loss(predictions: torch.Tensor, targets: torch.Tensor, label_masks: torch.Tensor) -> torch.Tensor:
    """Mean squared error over hidden patches: predictions/targets (B, N, P), label_masks (B, N) 1 = hidden."""
    per_patch = ((predictions - targets) ** 2).mean(dim=-1)
    return (per_patch * label_masks).sum() / label_masks.sum()


def _check_token_mask(name: str, mask: Optional[torch.Tensor], tokens: torch.Tensor) -> None:
    if mask is not None and tuple(mask.shape) != tuple(tokens.shape[:2]):
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(tokens.shape[:2])}")


class TvltModel(PretrainedMixin, nn.Module):
    """Encoder over `CLS | video tokens | audio tokens` (order: tvlt.layout)."""

    def __init__(self, config: TvltConfig) -> None:
        super().__init__()
        self.config = config
        self.pixel_embeddings = PixelEmbeddings(config)
        self.audio_embeddings = AudioEmbeddings(config)
        self.encoder = Encoder(config)
        self.cls_embedding = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        # transformers: use_mean_pooling only drops this layernorm; no pooling is implemented anywhere
        D = config.hidden_size
        self.layernorm = None if config.use_mean_pooling else nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        audio_values: torch.Tensor,
        pixel_mask: Optional[torch.Tensor] = None,
        audio_mask: Optional[torch.Tensor] = None,
        mask_pixel: bool = False,
        mask_audio: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: Optional[bool] = None,  # accepted for call compatibility; outputs are always dataclasses
        pixel_is_masked: Optional[torch.Tensor] = None,
        audio_is_masked: Optional[torch.Tensor] = None,
    ) -> TvltModelOutput:
        """pixel_values (B, T, C, H, W), audio_values (B, C, S, F); pixel_mask (B, Nv) / audio_mask (B, Na) float,
        1 = real token, 0 = padding. `mask_pixel`/`mask_audio` hide random tokens (config ratios);
        `pixel_is_masked`/`audio_is_masked` (bool (B, N), True = hidden, same count per row) hide the given
        tokens instead and take precedence. Visible tokens keep ascending order for explicit masks.
        """
        video = self.pixel_embeddings(pixel_values)  # (B, Nv, D)
        audio = self.audio_embeddings(audio_values)  # (B, Na, D)
        _check_token_mask("pixel_mask", pixel_mask, video)
        _check_token_mask("audio_mask", audio_mask, audio)
        _check_token_mask("pixel_is_masked", pixel_is_masked, video)
        _check_token_mask("audio_is_masked", audio_is_masked, audio)
        # transformers: a padding mask is applied only when both are given; here one implies the other is all-valid
        if pixel_mask is not None or audio_mask is not None:
            pixel_mask = torch.ones(video.shape[:2], device=video.device) if pixel_mask is None else pixel_mask
            audio_mask = torch.ones(audio.shape[:2], device=audio.device) if audio_mask is None else audio_mask
        video = self._mask(video, pixel_mask, pixel_is_masked, mask_pixel, self.config.pixel_mask_ratio, 1)
        frame_level = self.config.audio_mask_type == "frame-level"
        group = self.audio_embeddings.num_freq_patches if frame_level else 1
        audio = self._mask(audio, audio_mask, audio_is_masked, mask_audio, self.config.audio_mask_ratio, group)
        return self._encode(video, audio, output_attentions, output_hidden_states)

    @staticmethod
    def _mask(
        tokens: torch.Tensor,
        mask: Optional[torch.Tensor],
        is_masked: Optional[torch.Tensor],
        random: bool,
        ratio: float,
        group: int,
    ) -> MaskedTokens:
        is_valid = valid_tokens(mask)
        B, N, _ = tokens.shape
        if is_masked is not None:
            return keep_tokens(tokens, *explicit_ids_shuffle(is_masked.bool()), is_valid)
        if random:
            ids_shuffle = random_ids_shuffle(B, N, group, tokens.device)
            return keep_tokens(tokens, ids_shuffle, int(N * (1 - ratio)), is_valid)
        return MaskedTokens(tokens, is_valid, None, None)

    def _encode(
        self, video: MaskedTokens, audio: MaskedTokens, output_attentions: bool, output_hidden_states: bool
    ) -> TvltModelOutput:
        B = video.tokens.shape[0]
        x = torch.cat([self.cls_embedding.expand(B, -1, -1), video.tokens, audio.tokens], dim=1)  # (B, N, D)
        is_valid = None
        if video.is_valid is not None:
            # transformers: CLS borrows the first visible pixel token's flag; here CLS is always attended
            cls_valid = torch.ones(B, 1, dtype=torch.bool, device=x.device)
            is_valid = torch.cat([cls_valid, video.is_valid, audio.is_valid], dim=1)
        x, hidden_states, attentions = self.encoder(
            x, additive_attention_mask(is_valid, x.dtype), output_attentions, output_hidden_states
        )
        if self.layernorm is not None:
            x = self.layernorm(x)
        n_video = video.tokens.shape[1]
        return TvltModelOutput(
            last_hidden_state=x,
            last_pixel_hidden_state=x[:, 1 : 1 + n_video],
            last_audio_hidden_state=x[:, 1 + n_video :],
            pixel_label_masks=video.label_masks,
            audio_label_masks=audio.label_masks,
            pixel_ids_restore=video.ids_restore,
            audio_ids_restore=audio.ids_restore,
            hidden_states=hidden_states,
            attentions=attentions,
        )


class TvltForPreTraining(PretrainedMixin, nn.Module):
    """TVLT with the audio-video matching head and the MAE decoder."""

    def __init__(self, config: TvltConfig) -> None:
        super().__init__()
        if not (config.task_matching or config.task_mae):
            raise ValueError("TvltForPreTraining needs task_matching or task_mae; both are False")
        self.config = config
        self.tvlt = TvltModel(config)
        if config.task_matching:
            self.matching_head = MatchingHead(config.hidden_size)
        if config.task_mae:
            self._build_decoder(config)
        self.post_init()

    def _build_decoder(self, config: TvltConfig) -> None:
        Dd = config.decoder_hidden_size
        self.encoder_to_decoder = nn.Linear(config.hidden_size, Dd)
        self.pixel_mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
        self.audio_mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
        self.decoder = Decoder(config)
        num_time_patches = config.spectrogram_length // config.audio_patch_size[0]
        patches_per_frame = self.tvlt.pixel_embeddings.num_patches_per_image
        self.decoder_pixel_pos_embed = nn.Parameter(torch.zeros(1, patches_per_frame, Dd))
        self.decoder_temporal_embed = nn.Parameter(torch.zeros(1, config.num_frames, Dd))
        self.decoder_pixel_type_embed = nn.Parameter(torch.zeros(1, 1, Dd))
        self.decoder_audio_pos_embed = nn.Parameter(torch.zeros(1, num_time_patches, Dd))
        self.decoder_freq_embed = nn.Parameter(torch.zeros(1, self.tvlt.audio_embeddings.num_freq_patches, Dd))
        self.decoder_audio_type_embed = nn.Parameter(torch.zeros(1, 1, Dd))
        # transformers sizes the pixel head with image_patch_size[0] ** 2; identical for square patches
        (p, q), (pa, qa) = config.image_patch_size, config.audio_patch_size
        self.pixel_mae_head = MAEHead(Dd, p * q * config.num_image_channels)
        self.audio_mae_head = MAEHead(Dd, pa * qa * config.num_audio_channels)

    def decode(
        self,
        output: TvltModelOutput,
        pixel_as_mask_token: Optional[torch.Tensor] = None,
        audio_as_mask_token: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MAE reconstruction from a (masked or unmasked) `self.tvlt(...)` output, in any mode.

        -> pixel logits (B, Nv, p*q*C) and audio logits (B, Na, pa*qa*Ca), in token order (tvlt.layout),
        the values normalised like the inputs. pixel_as_mask_token (B, Nv) / audio_as_mask_token (B, Na): bool,
        tokens the decoder gets as the mask token whatever the encoder made of them. The decoder has no attention
        mask (as transformers), so this keeps padding the encoder was shown (tvlt.masking.equal_visible_counts)
        from reaching the predictions.
        """
        video, audio = self.decoder_states(output, pixel_as_mask_token, audio_as_mask_token)
        return self.pixel_mae_head(video), self.audio_mae_head(audio)

    def decoder_states(
        self,
        output: TvltModelOutput,
        pixel_as_mask_token: Optional[torch.Tensor] = None,
        audio_as_mask_token: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The MAE decoder's final states, video (B, Nv, Dd) and audio (B, Na, Dd), that `decode`'s heads map to
        patches; arguments as `decode`."""
        if not self.config.task_mae:
            raise ValueError("decode needs the MAE decoder, but config.task_mae is False")
        video = self.encoder_to_decoder(output.last_pixel_hidden_state)  # (B, Nv', Dd)
        video = restore_tokens(video, output.pixel_ids_restore, self.pixel_mask_token)  # (B, Nv, Dd)
        video = _as_mask_token(video, pixel_as_mask_token, self.pixel_mask_token)
        video = add_grid_embeddings(
            video, self.decoder_pixel_pos_embed, self.decoder_temporal_embed, self.decoder_pixel_type_embed
        )
        audio = self.encoder_to_decoder(output.last_audio_hidden_state)
        audio = restore_tokens(audio, output.audio_ids_restore, self.audio_mask_token)  # (B, Na, Dd)
        audio = _as_mask_token(audio, audio_as_mask_token, self.audio_mask_token)
        audio = add_grid_embeddings(
            audio, self.decoder_freq_embed, self.decoder_audio_pos_embed, self.decoder_audio_type_embed
        )
        # the two modalities are decoded separately, as transformers does
        return self.decoder(video), self.decoder(audio)

    def forward(
        self,
        pixel_values: torch.Tensor,
        audio_values: torch.Tensor,
        pixel_mask: Optional[torch.Tensor] = None,
        audio_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        pixel_values_mixed: Optional[torch.Tensor] = None,
        pixel_mask_mixed: Optional[torch.Tensor] = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: Optional[bool] = None,  # accepted and ignored
    ) -> TvltForPreTrainingOutput:
        """Matching on (pixel_values_mixed, audio_values) with labels (B,) in {0, 1}, then MAE on random masks.

        As transformers: matching needs labels and pixel_values_mixed; MAE runs in training mode.
        transformers crashes when matching is off and the model is in eval mode; here MAE then runs too.
        hidden_states/attentions come from the last encoder call.
        """
        out = TvltForPreTrainingOutput()
        losses, encoded = [], None
        flags = dict(output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        if self.config.task_matching:
            if labels is None or pixel_values_mixed is None:
                raise ValueError("the matching task needs labels and pixel_values_mixed (got None)")
            encoded = self.tvlt(pixel_values_mixed, audio_values, pixel_mask_mixed, audio_mask, **flags)
            out.matching_logits = self.matching_head(encoded.last_hidden_state)
            losses.append(F.binary_cross_entropy_with_logits(out.matching_logits.view(-1), labels.view(-1).float()))
        if self.config.task_mae and (self.training or not self.config.task_matching):
            encoded = self.tvlt(
                pixel_values, audio_values, pixel_mask, audio_mask, mask_pixel=True, mask_audio=True, **flags
            )
            out.pixel_logits, out.audio_logits = self.decode(encoded)
            video_targets = patchify_video(pixel_values, self.config.image_patch_size)
            audio_targets = patchify_audio(audio_values, self.config.audio_patch_size)
            losses.append(
                mae_loss(out.pixel_logits, video_targets, encoded.pixel_label_masks)
                + mae_loss(out.audio_logits, audio_targets, encoded.audio_label_masks)
            )
        out.loss = sum(losses)
        out.hidden_states, out.attentions = encoded.hidden_states, encoded.attentions
        return out


class TvltForAudioVisualClassification(PretrainedMixin, nn.Module):
    """CLS token -> [dense+tanh pooler if config.classifier_pooler] -> MLP -> (B, num_labels)."""

    def __init__(self, config: TvltConfig) -> None:
        super().__init__()
        self.config = config
        self.tvlt = TvltModel(config)
        D = config.hidden_size
        if config.classifier_pooler:
            self.classifier_pooler = Pooler(D)  # original TVLT repo; not in transformers
        self.classifier = nn.Sequential(
            nn.Linear(D, 2 * D),
            nn.LayerNorm(2 * D, eps=config.layer_norm_eps),
            nn.GELU(),
            nn.Linear(2 * D, config.num_labels),
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        audio_values: torch.Tensor,
        pixel_mask: Optional[torch.Tensor] = None,
        audio_mask: Optional[torch.Tensor] = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: Optional[bool] = None,  # accepted and ignored
        labels: Optional[torch.Tensor] = None,
    ) -> TvltClassifierOutput:
        """labels: class ids (B,) for classification, targets (B,) or (B, num_labels) for regression."""
        encoded = self.tvlt(
            pixel_values, audio_values, pixel_mask, audio_mask,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
        x = encoded.last_hidden_state
        pooled = self.classifier_pooler(x) if self.config.classifier_pooler else x[:, 0]
        logits = self.classifier(pooled)
        loss = None if labels is None else self.loss(logits, labels)
        return TvltClassifierOutput(loss, logits, encoded.hidden_states, encoded.attentions)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # transformers picks the loss by loss_type only, so num_labels=1 "classification" gave a constant 0 loss
        if self.config.loss_type == "regression" or self.config.num_labels == 1:
            predictions = logits.squeeze(-1) if self.config.num_labels == 1 else logits
            return F.mse_loss(predictions, labels.to(logits.dtype).view_as(predictions))
        return F.cross_entropy(logits, labels)
