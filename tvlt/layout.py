"""The one place that knows TVLT's token order and patch value order.

Encoder sequence: `CLS | video (T*h*w: frame-major, then row-major) | audio (s*f: time-major, freq fastest)`.
Patch vectors are flattened `(patch_row, patch_col, channel)` with channel fastest, the order of
transformers' `TvltForPreTraining.patchify_pixel` / `patchify_audio`, so MAE logits and targets line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, TypeVar

import torch

from tvlt.config import TvltConfig

Index = TypeVar("Index", int, torch.Tensor)  # python ints or integer tensors (vectorised)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def patchify_video(pixel_values: torch.Tensor, patch_size: int | Sequence[int] = 16) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T*h*w, p*q*C); tokens in encoder order, values (row, col, channel)."""
    p, q = _pair(patch_size)
    B, T, C, H, W = pixel_values.shape
    if H % p or W % q:
        raise ValueError(f"frame size {H}x{W} is not divisible by patch size {p}x{q}")
    x = pixel_values.reshape(B, T, C, H // p, p, W // q, q)
    x = torch.einsum("btchpwq->bthwpqc", x)
    return x.reshape(B, T * (H // p) * (W // q), p * q * C)


def unpatchify_video(
    patches: torch.Tensor, num_frames: int, height: int, width: int, patch_size: int | Sequence[int] = 16
) -> torch.Tensor:
    """Exact inverse of `patchify_video`: (B, T*h*w, p*q*C) -> (B, T, C, H, W)."""
    p, q = _pair(patch_size)
    B, N, D = patches.shape
    h, w = height // p, width // q
    if N != num_frames * h * w or D % (p * q):
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not fit {num_frames}x{height}x{width}")
    C = D // (p * q)
    x = patches.reshape(B, num_frames, h, w, p, q, C)
    x = torch.einsum("bthwpqc->btchpwq", x)
    return x.reshape(B, num_frames, C, h * p, w * q)


def patchify_audio(audio_values: torch.Tensor, patch_size: int | Sequence[int] = 16) -> torch.Tensor:
    """(B, C, S, F) -> (B, s*f, p*q*C); tokens time-major (freq fastest), values (time, freq, channel)."""
    p, q = _pair(patch_size)
    B, C, S, F = audio_values.shape
    if S % p or F % q:
        raise ValueError(f"spectrogram size {S}x{F} is not divisible by patch size {p}x{q}")
    x = audio_values.reshape(B, C, S // p, p, F // q, q)
    x = torch.einsum("bcspfq->bsfpqc", x)
    return x.reshape(B, (S // p) * (F // q), p * q * C)


def unpatchify_audio(
    patches: torch.Tensor, frequency_length: int, patch_size: int | Sequence[int] = 16
) -> torch.Tensor:
    """Exact inverse of `patchify_audio`: (B, s*f, p*q*C) -> (B, C, S, F); S is inferred from the token count."""
    p, q = _pair(patch_size)
    B, N, D = patches.shape
    f = frequency_length // q
    if N % f or D % (p * q):
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not fit frequency_length={frequency_length}")
    s, C = N // f, D // (p * q)
    x = patches.reshape(B, s, f, p, q, C)
    x = torch.einsum("bsfpqc->bcspfq", x)
    return x.reshape(B, C, s * p, f * q)


def valid_tokens(mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """transformers' float `pixel_mask` / `audio_mask` (B, N), 1 = real -> bool `is_valid` (B, N)."""
    return None if mask is None else mask > 0.5


@dataclass(frozen=True)
class TokenLayout:
    """Token grid of one input geometry; index maps accept ints or integer tensors."""

    image_patch_size: tuple[int, int]
    audio_patch_size: tuple[int, int]  # (time, freq)
    num_image_channels: int
    num_audio_channels: int
    num_frames: int  # T
    grid_rows: int  # h
    grid_cols: int  # w
    audio_time_patches: int  # s
    audio_freq_patches: int  # f

    @classmethod
    def from_config(
        cls, config: TvltConfig, num_frames: Optional[int] = None, spectrogram_length: Optional[int] = None
    ) -> "TokenLayout":
        """Layout for `num_frames` frames and `spectrogram_length` time steps (default: the config's maxima)."""
        T = config.num_frames if num_frames is None else num_frames
        S = config.spectrogram_length if spectrogram_length is None else spectrogram_length
        if not 0 < T <= config.num_frames:
            raise ValueError(f"num_frames={T} must be in [1, {config.num_frames}]")
        if not 0 < S <= config.spectrogram_length or S % config.audio_patch_size[0]:
            raise ValueError(
                f"spectrogram_length={S} must be a positive multiple of {config.audio_patch_size[0]}"
                f" up to {config.spectrogram_length}"
            )
        (p, q), (pa, qa) = config.image_patch_size, config.audio_patch_size
        return cls(
            image_patch_size=(p, q),
            audio_patch_size=(pa, qa),
            num_image_channels=config.num_image_channels,
            num_audio_channels=config.num_audio_channels,
            num_frames=T,
            grid_rows=config.image_size // p,
            grid_cols=config.image_size // q,
            audio_time_patches=S // pa,
            audio_freq_patches=config.frequency_length // qa,
        )

    # ---- sizes and slices in the encoder sequence ----
    @property
    def patches_per_frame(self) -> int:
        return self.grid_rows * self.grid_cols

    @property
    def num_video_tokens(self) -> int:
        return self.num_frames * self.patches_per_frame

    @property
    def num_audio_tokens(self) -> int:
        return self.audio_time_patches * self.audio_freq_patches

    @property
    def num_tokens(self) -> int:
        """Full encoder sequence length, CLS included."""
        return 1 + self.num_video_tokens + self.num_audio_tokens

    @property
    def video_slice(self) -> slice:
        return slice(1, 1 + self.num_video_tokens)

    @property
    def audio_slice(self) -> slice:
        return slice(1 + self.num_video_tokens, self.num_tokens)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.grid_rows * self.image_patch_size[0], self.grid_cols * self.image_patch_size[1]

    @property
    def spectrogram_size(self) -> tuple[int, int]:
        return self.audio_time_patches * self.audio_patch_size[0], self.audio_freq_patches * self.audio_patch_size[1]

    @property
    def video_patch_dim(self) -> int:
        return self.image_patch_size[0] * self.image_patch_size[1] * self.num_image_channels

    @property
    def audio_patch_dim(self) -> int:
        return self.audio_patch_size[0] * self.audio_patch_size[1] * self.num_audio_channels

    # ---- index maps (indices count within the video / audio block, not the full sequence) ----
    def video_index(self, t: Index, r: Index, c: Index) -> Index:
        return (t * self.grid_rows + r) * self.grid_cols + c

    def video_position(self, i: Index) -> tuple[Index, Index, Index]:
        """Video token index -> (frame, row, col)."""
        return i // self.patches_per_frame, (i // self.grid_cols) % self.grid_rows, i % self.grid_cols

    def audio_index(self, s: Index, f: Index) -> Index:
        return s * self.audio_freq_patches + f

    def audio_position(self, i: Index) -> tuple[Index, Index]:
        """Audio token index -> (time patch, freq patch)."""
        return i // self.audio_freq_patches, i % self.audio_freq_patches

    # ---- patchify with this layout's patch sizes ----
    def patchify_video(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return patchify_video(pixel_values, self.image_patch_size)

    def unpatchify_video(self, patches: torch.Tensor) -> torch.Tensor:
        return unpatchify_video(patches, self.num_frames, *self.image_size, self.image_patch_size)

    def patchify_audio(self, audio_values: torch.Tensor) -> torch.Tensor:
        return patchify_audio(audio_values, self.audio_patch_size)

    def unpatchify_audio(self, patches: torch.Tensor) -> torch.Tensor:
        return unpatchify_audio(patches, self.spectrogram_size[1], self.audio_patch_size)
