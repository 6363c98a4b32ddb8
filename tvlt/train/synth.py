"""Shared primitives of the procedural corpus: clip geometry, seeding, backgrounds, oscillators.

Determinism contract: every random number of clip i of a split comes from one CPU `torch.Generator`
seeded from (split, stream, i), drawn as a fixed-length row of uniforms. Rendering maps those rows
to pixels and samples with arithmetic, table look-ups, `grid_sample` and `interpolate` only (no
per-element transcendental functions on batch-shaped tensors, whose vectorised and scalar CPU
paths may differ in the last bit), so a clip is bit-identical whatever batch it is rendered in
(on a given device).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SAMPLING_RATE = 44100
HOP_LENGTH = 512  # TVLT's hop: a waveform of S * 512 samples gives exactly S log-mel frames
SPECTROGRAM_FRAMES = 256  # TvltConfig.small()
DEFAULT_DURATION = SPECTROGRAM_FRAMES * HOP_LENGTH / SAMPLING_RATE  # ≈ 2.972 s
CONTROL_HOP = 32  # samples per envelope step (0.73 ms)

# Clip i of split s in stream r is drawn from the 32-bit seed (SPLIT_SEEDS[s] * 64 + r) * 2**24 + i
# (torch's CPU generator keeps only the low 32 bits of a seed, so the fields are packed, not hashed).
SPLIT_SEEDS = {"train": 1, "val": 2, "test": 3}
MAX_CLIPS = 2**24  # per split and stream
SCENE_STREAM, FACE_STREAM, TWIN_STREAM = 0, 1, 1  # twin j >= 1 of a scene uses stream TWIN_STREAM + j
MAX_STREAM = 63


@dataclass(frozen=True)
class ClipSpec:
    """Geometry of one clip: T frames of H = W = image_size pixels and L audio samples."""

    image_size: int = 96
    num_frames: int = 8
    duration: float = DEFAULT_DURATION  # seconds
    sampling_rate: int = SAMPLING_RATE

    def __post_init__(self) -> None:
        if self.image_size < 16 or self.num_frames < 1 or self.duration <= 0 or self.sampling_rate < 8000:
            raise ValueError(f"invalid clip geometry {self}")

    @property
    def num_samples(self) -> int:
        """L, rounded so that the default duration gives exactly 256 * 512 samples."""
        return round(self.duration * self.sampling_rate)

    @property
    def segment(self) -> float:
        """Seconds per frame segment; frame k shows the middle of segment k."""
        return self.duration / self.num_frames

    def frame_times(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(T,) float32 seconds at which the frames are sampled (segment centres)."""
        return (torch.arange(self.num_frames, device=device, dtype=torch.float32) + 0.5) * self.segment


def clip_seed(split: str, stream: int, index: int) -> int:
    """32-bit seed of clip `index` of `split` in `stream`; raises ValueError on unknown split/index."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_SEEDS)}")
    if not 0 <= index < MAX_CLIPS:
        raise ValueError(f"clip index {index} outside [0, {MAX_CLIPS})")
    if not 0 <= stream <= MAX_STREAM:
        raise ValueError(f"stream {stream} outside [0, {MAX_STREAM}]")
    return ((SPLIT_SEEDS[split] * (MAX_STREAM + 1) + stream) << 24) + index


def as_index_list(indices: Sequence[int] | torch.Tensor) -> list[int]:
    """Clip indices as a non-empty list of Python ints."""
    values = indices.tolist() if isinstance(indices, torch.Tensor) else [int(i) for i in indices]
    if not values:
        raise ValueError("indices is empty")
    return values


def uniform_rows(split: str, stream: int, indices: Sequence[int], width: int) -> torch.Tensor:
    """(B, width) float32 uniforms on CPU; row b depends only on (split, stream, indices[b])."""
    generator = torch.Generator()
    rows = []
    for index in indices:
        generator.manual_seed(clip_seed(split, stream, index))
        rows.append(torch.rand(width, generator=generator))
    return torch.stack(rows)


def pick(u: torch.Tensor, count: int) -> torch.Tensor:
    """Uniform(0, 1) -> int64 category in [0, count)."""
    return (u * count).long().clamp_(max=count - 1)


def lerp(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Uniform(0, 1) -> uniform(low, high)."""
    return low + (high - low) * u


def pixel_grid(image_size: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates x (1, W) and y (H, 1) in pixels."""
    coords = torch.arange(image_size, device=device, dtype=torch.float32) + 0.5
    return coords[None, :], coords[:, None]


# ------------------------------------------------------------------------------------ backgrounds

BACKGROUND_KINDS = ("flat", "gradient", "stripes", "checker", "blotches")
BLOTCH_GRID = 6
BACKGROUND_WIDTH = 11 + BLOTCH_GRID**2  # uniforms per clip consumed by `background`
_DIRECTIONS = torch.tensor([[math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)] for k in range(8)])


def _background_patterns(u: torch.Tensor, image_size: int) -> torch.Tensor:
    """(B, 5, H, W) pattern in [0, 1] for every kind in BACKGROUND_KINDS from uniforms u (B, 47)."""
    x, y = pixel_grid(image_size, u.device)
    x, y = x / image_size - 0.5, y / image_size - 0.5  # [-0.5, 0.5]
    direction = _DIRECTIONS.to(u.device)[pick(u[:, 0], 8)]  # (B, 2)
    along = x * direction[:, 0, None, None] + y * direction[:, 1, None, None]  # (B, H, W)
    period = lerp(u[:, 1], 0.1, 0.25)[:, None, None]  # fraction of the frame
    wave = torch.frac(along / period + u[:, 2, None, None] + 8.0)
    stripes = (2.0 * (2.0 * wave - 1.0).abs() - 1.0).mul(3.0).clamp(-1.0, 1.0) * 0.5 + 0.5
    cell = lerp(u[:, 3], 0.12, 0.33)[:, None, None]
    checker = torch.remainder(torch.floor(x / cell + u[:, 4, None, None]) + torch.floor(y / cell), 2.0)
    grid = u[:, 11:].reshape(-1, 1, BLOTCH_GRID, BLOTCH_GRID)
    blotches = F.interpolate(grid, size=(image_size, image_size), mode="bilinear", align_corners=True)[:, 0]
    flat = torch.full_like(along, 0.5)
    return torch.stack([flat, (along + 0.5).clamp(0.0, 1.0), stripes, checker, blotches], dim=1)


def background(u: torch.Tensor, image_size: int, value_range: tuple[float, float]) -> torch.Tensor:
    """Low-contrast procedural background (B, H, W, 3) float in [0, 1] from uniforms u (B, 47).

    Two close colours (greyish, value in `value_range`, per-channel difference <= 0.15) blended
    by one of BACKGROUND_KINDS.
    """
    patterns = _background_patterns(u, image_size)
    kind = pick(u[:, 5], len(BACKGROUND_KINDS))
    pattern = patterns[torch.arange(len(u), device=u.device), kind]  # (B, H, W)
    grey = lerp(u[:, 6], *value_range)[:, None]
    tint = (u[:, 7:10] - 0.5) * 0.12  # (B, 3)
    first = (grey + tint).clamp(0.0, 1.0)
    contrast = lerp(u[:, 10], 0.06, 0.15)[:, None]
    second = (first + contrast * (2.0 * tint / 0.12).sign()).clamp(0.0, 1.0)
    return first[:, None, None] + (second - first)[:, None, None] * pattern[..., None]


# ------------------------------------------------------------------------------------ oscillators

def additive_table(partials: Sequence[tuple[float, float, float]], length: int) -> torch.Tensor:
    """(length,) float32 one-cycle wavetable, sum of amp * sin(2π k x + phase), peak-normalised."""
    x = torch.arange(length, dtype=torch.float64) / length
    table = sum(amp * torch.sin(2.0 * math.pi * k * x + phase) for k, amp, phase in partials)
    return (table / table.abs().max()).float()


def table_lookup(tables: torch.Tensor, table_id: torch.Tensor, cycles: torch.Tensor) -> torch.Tensor:
    """Read wavetables (K, N), N a power of two, at phase `cycles` (...,) of table `table_id` (...,).

    `table_id` broadcasts against `cycles`; returns float32 like `cycles`.
    """
    length = tables.shape[-1]
    index = (cycles * length).long().bitwise_and_(length - 1)  # truncating: <= 1/N cycle of jitter
    return tables.reshape(-1)[index + table_id * length]


@functools.lru_cache(maxsize=8)
def time_axis(num_samples: int, sampling_rate: int, device: str) -> torch.Tensor:
    """(L,) float32 seconds of each sample."""
    return torch.arange(num_samples, dtype=torch.float64).div(sampling_rate).float().to(device)


def control_axis(spec: ClipSpec, device: torch.device | str) -> torch.Tensor:
    """(Lb,) float32 seconds at the centre of each CONTROL_HOP-sample block, Lb = ceil(L / CONTROL_HOP)."""
    count = -(-spec.num_samples // CONTROL_HOP)
    return (torch.arange(count, device=device, dtype=torch.float32) + 0.5) * (CONTROL_HOP / spec.sampling_rate)


def mix(tones: torch.Tensor, envelopes: torch.Tensor) -> torch.Tensor:
    """Sum over sources of tones (B, O, L) times envelopes (B, O, Lb), held for CONTROL_HOP samples -> (B, L).

    A block-constant envelope costs one multiply-add per sample; its 0.73 ms steps are far below
    the spectrogram's 11.6 ms hop.
    """
    length, blocks = tones.shape[-1], envelopes.shape[-1]
    blocked = F.pad(tones, (0, blocks * CONTROL_HOP - length)).unflatten(-1, (blocks, CONTROL_HOP))
    return (blocked * envelopes[..., None]).sum(dim=1).flatten(-2)[..., :length]


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Float frames in [0, 1] -> uint8 (same shape)."""
    return frames.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
