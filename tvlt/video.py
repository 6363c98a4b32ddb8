"""Pure video maths for TVLT: frames -> pixel values (transformers' recipe) and back, frame sampling, patch edges.

Only numpy + torch. Recipe of transformers 4.40.2 `TvltImageProcessor`: resize so the shorter side is 224
(longer side `int(224 * long / short)`, bilinear with antialiasing as PIL does, result kept as uint8),
centre crop 224 x 224 (zero padding when the image is smaller), x / 255, (x - 0.5) / 0.5.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

IMAGE_SIZE = 224
PATCH_SIZE = 16
NUM_FRAMES = 8
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
RESCALE_FACTOR = 1 / 255


def shortest_edge_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """Output (height, width) when the shorter side becomes `shortest_edge` (transformers' rounding down)."""
    short, long = min(height, width), max(height, width)
    new_long = int(shortest_edge * long / short)
    return (shortest_edge, new_long) if height <= width else (new_long, shortest_edge)


def resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize with PIL-style antialiasing. (T, C, H, W) float -> (T, C, height, width) float."""
    if frames.shape[-2:] == (height, width):
        return frames
    return torch.nn.functional.interpolate(
        frames, size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )


def center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre crop (T, C, H, W) -> (T, C, height, width); pads with zeros where the frame is smaller."""
    pad_h, pad_w = max(height - frames.shape[-2], 0), max(width - frames.shape[-1], 0)
    if pad_h or pad_w:  # transformers centres the frame in a zero canvas first
        frames = torch.nn.functional.pad(frames, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    top, left = (frames.shape[-2] - height) // 2, (frames.shape[-1] - width) // 2
    return frames[..., top : top + height, left : left + width]


def frames_to_pixel_values(
    frames: np.ndarray | torch.Tensor,
    shortest_edge: int | None = IMAGE_SIZE,
    crop_size: tuple[int, int] | None = (IMAGE_SIZE, IMAGE_SIZE),
    rescale_factor: float | None = RESCALE_FACTOR,
    mean: Sequence[float] | None = IMAGE_MEAN,
    std: Sequence[float] | None = IMAGE_STD,
) -> torch.Tensor:
    """Video frames -> TVLT pixel values (one video).

    frames: (T, H, W, 3) channels-last, uint8 or float on the 0..255 scale.
    shortest_edge / crop_size / rescale_factor / mean+std: None skips that step.
    returns: (T, 3, h, w) float32 on the input's device, in [-1, 1] with the defaults.
    """
    tensor = torch.as_tensor(frames)
    quantise = tensor.dtype == torch.uint8  # PIL resizes uint8 images to uint8
    x = tensor.permute(0, 3, 1, 2).to(torch.float32)  # (T, 3, H, W)
    if shortest_edge is not None:
        x = resize(x, *shortest_edge_size(x.shape[-2], x.shape[-1], shortest_edge))
        x = x.round().clamp(0, 255) if quantise else x
    if crop_size is not None:
        x = center_crop(x, *crop_size)
    if rescale_factor is not None:
        x = x * rescale_factor
    if mean is not None and std is not None:
        x = (x - _channel_vector(mean, x)) / _channel_vector(std, x)
    return x


def _channel_vector(values: Sequence[float] | float, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)


def pixel_values_to_images(
    pixel_values: np.ndarray | torch.Tensor,
    mean: Sequence[float] = IMAGE_MEAN,
    std: Sequence[float] = IMAGE_STD,
    rescale_factor: float = RESCALE_FACTOR,
) -> np.ndarray:
    """Inverse of the normalisation: (..., 3, H, W) float pixel values -> (..., H, W, 3) uint8 images."""
    x = torch.as_tensor(pixel_values, dtype=torch.float32).detach().cpu()
    x = (x * _channel_vector(std, x) + _channel_vector(mean, x)) / rescale_factor
    return x.round().clamp(0, 255).to(torch.uint8).movedim(-3, -1).numpy()


def sample_indices(num_available: int, num_wanted: int) -> np.ndarray:
    """Evenly spread indices: the centre of each of `num_wanted` equal segments; all indices if fewer exist.

    returns: (min(num_available, num_wanted),) int64, strictly increasing.
    """
    if num_available <= num_wanted:
        return np.arange(num_available)
    return ((np.arange(num_wanted) + 0.5) * num_available / num_wanted).astype(np.int64)


def patch_pixel_edges(size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE) -> np.ndarray:
    """Pixel boundaries of the patches along one image axis: (size // patch_size + 1,) int64."""
    return np.arange(0, size // patch_size + 1) * patch_size
