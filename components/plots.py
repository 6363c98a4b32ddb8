"""Figures and images built from arrays; nothing here calls the model.

Figures are `matplotlib.figure.Figure` (never pyplot, never global rcParams). Clickable views are
RGB uint8 arrays laid out on an exact pixel grid (`PanelGrid`), so a click's pixel coordinates map
back to a patch.

Array conventions: frames uint8 (T, H, W, 3); spectrograms float (S, F) in [-1, 1], time first,
drawn with time left-to-right and low frequencies at the bottom; patch grids bool/float (T, h, w)
for video and (s, f) for audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

HEADER_PX = 22  # height of the column-title strip of a panel grid
GAP_PX = 4  # gap between cells
MASK_GREY = 96
GRID_COLOUR = (255, 255, 255)
VIDEO_MAE_COLUMNS = ("original", "masked input", "reconstruction", "recon. + visible", "per-patch error")
AUDIO_MAE_ROWS = VIDEO_MAE_COLUMNS


def _cmap(name: str):
    return matplotlib.colormaps[name]


def colourise(values: np.ndarray, cmap: str = "magma", vmin: Optional[float] = None, vmax: Optional[float] = None) -> np.ndarray:
    """float (...) -> uint8 (..., 3) through a matplotlib colormap."""
    values = np.asarray(values, dtype=np.float32)
    lo = float(np.nanmin(values)) if vmin is None else vmin
    hi = float(np.nanmax(values)) if vmax is None else vmax
    scaled = np.clip((values - lo) / max(hi - lo, 1e-8), 0.0, 1.0)
    return (_cmap(cmap)(scaled)[..., :3] * 255).astype(np.uint8)


def spectrogram_rgb(spec: np.ndarray, cmap: str = "magma") -> np.ndarray:
    """(S, F) in [-1, 1] -> uint8 (F, S, 3) image, time left-to-right, low frequencies at the bottom."""
    return colourise(np.asarray(spec).T[::-1], cmap, vmin=-1.0, vmax=1.0)


def upsample_grid(grid: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
    """(h, w, ...) -> (h*cell[0], w*cell[1], ...) by repetition (one value per patch)."""
    return np.repeat(np.repeat(grid, cell[0], axis=0), cell[1], axis=1)


def draw_patch_grid(image: np.ndarray, patch: tuple[int, int], colour=GRID_COLOUR, alpha: float = 0.5) -> np.ndarray:
    """Blend 1-px lines every `patch` pixels into a uint8 (H, W, 3) image (a copy)."""
    out = image.astype(np.float32).copy()
    colour = np.asarray(colour, dtype=np.float32)
    out[:: patch[0], :] = (1 - alpha) * out[:: patch[0], :] + alpha * colour
    out[:, :: patch[1]] = (1 - alpha) * out[:, :: patch[1]] + alpha * colour
    return out.astype(np.uint8)


def hatch(height: int, width: int) -> np.ndarray:
    """uint8 (H, W, 3) diagonal grey stripes: the look of a hidden patch (unlike any real content)."""
    y, x = np.mgrid[0:height, 0:width]
    stripes = np.where(((x + y) // 4) % 2 == 0, MASK_GREY, MASK_GREY + 70).astype(np.uint8)
    return np.repeat(stripes[..., None], 3, axis=-1)


def grey_out(image: np.ndarray, hidden: np.ndarray, patch: tuple[int, int]) -> np.ndarray:
    """Paint the patches where `hidden` (h, w) is True with grey stripes; image uint8 (H, W, 3)."""
    out = image.copy()
    where = upsample_grid(hidden, patch)[: image.shape[0], : image.shape[1]]
    out[where] = hatch(*image.shape[:2])[where]
    return out


def overlay_heat(image: np.ndarray, heat: np.ndarray, alpha: float = 0.55, cmap: str = "inferno",
                 vmin: Optional[float] = None, vmax: Optional[float] = None) -> np.ndarray:
    """Blend a patch-level heat map (h, w) over a uint8 (H, W, 3) image (colour scale vmin..vmax, default the map's range)."""
    H, W = image.shape[:2]
    h, w = heat.shape
    colours = colourise(heat, cmap, vmin=vmin, vmax=vmax)
    colours = upsample_grid(colours, (H // h, W // w))
    return ((1 - alpha) * image + alpha * colours).astype(np.uint8)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> (size[0], size[1], 3) with nearest-neighbour (patch edges stay sharp)."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.NEAREST))


@dataclass(frozen=True)
class PanelGrid:
    """Pixel geometry of a rows x cols grid of equal cells under a title strip; maps clicks to cells."""

    rows: int
    cols: int
    cell_h: int
    cell_w: int
    header: int = HEADER_PX
    gap: int = GAP_PX

    @property
    def size(self) -> tuple[int, int]:
        return (self.header + self.rows * (self.cell_h + self.gap), self.cols * (self.cell_w + self.gap) - self.gap)

    def origin(self, row: int, col: int) -> tuple[int, int]:
        return self.header + row * (self.cell_h + self.gap), col * (self.cell_w + self.gap)

    def locate(self, x: float, y: float) -> Optional[tuple[int, int, float, float]]:
        """Pixel (x right, y down) -> (row, col, u, v) with u, v in [0, 1) inside the cell; None off-cell."""
        y0 = y - self.header
        if x < 0 or y0 < 0:
            return None
        row, ry = divmod(y0, self.cell_h + self.gap)
        col, rx = divmod(x, self.cell_w + self.gap)
        if row >= self.rows or col >= self.cols or ry >= self.cell_h or rx >= self.cell_w:
            return None
        return int(row), int(col), ry / self.cell_h, rx / self.cell_w

    def compose(self, cells: Sequence[Sequence[np.ndarray]], titles: Sequence[str] = (), row_titles: Sequence[str] = ()) -> np.ndarray:
        """cells[row][col] uint8 (cell_h, cell_w, 3) -> one uint8 image with column and row titles."""
        canvas = np.full((*self.size, 3), 255, dtype=np.uint8)
        for r, row in enumerate(cells):
            for c, cell in enumerate(row):
                y, x = self.origin(r, c)
                canvas[y : y + self.cell_h, x : x + self.cell_w] = resize(cell, (self.cell_h, self.cell_w))
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=13)
        for c, title in enumerate(titles):
            draw.text((self.origin(0, c)[1] + 2, 4), title, fill=(20, 20, 20), font=font)
        for r, title in enumerate(row_titles):
            y, x = self.origin(r, 0)
            draw.text((x + 3, y + 2), title, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
        return np.asarray(image)


def frame_cell_size(height: int, width: int, target: int = 192) -> tuple[int, int]:
    """Cell size for one frame: an integer multiple (>= 1) of the frame size near `target` px."""
    scale = max(1, round(target / max(height, width)))
    return height * scale, width * scale


# ---------------------------------------------------------------- figures
def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    fig.set_layout_engine("constrained")
    return fig


def frames_figure(frames: np.ndarray, patch: tuple[int, int], timestamps: Optional[Sequence[float]] = None,
                  title: str = "") -> Figure:
    """The sampled frames (T, H, W, 3) side by side, each with its patch grid and time stamp."""
    T = len(frames)
    cols = min(T, 4)
    rows = int(np.ceil(T / cols))
    fig = _new_figure(2.6 * cols, 2.7 * rows)
    for t, frame in enumerate(frames):
        ax = fig.add_subplot(rows, cols, t + 1)
        ax.imshow(draw_patch_grid(frame, patch))
        stamp = f" · {timestamps[t]:.2f} s" if timestamps is not None and t < len(timestamps) else ""
        ax.set_title(f"frame {t}{stamp}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def spectrogram_figure(spec: np.ndarray, seconds: np.ndarray, hz: np.ndarray, patch: tuple[int, int],
                       title: str = "log-mel spectrogram", valid_frames: Optional[int] = None) -> Figure:
    """(S, F) log-mel in [-1, 1] with seconds / Hz axes and lines at patch boundaries.

    seconds: (S,) start time of each spectrogram frame; hz: (F,) centre frequency of each mel bin.
    valid_frames: frames holding real audio (the rest is padding, shaded).
    """
    S, F = spec.shape
    fig = _new_figure(9, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(np.asarray(spec).T, origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1,
              extent=(-0.5, S - 0.5, -0.5, F - 0.5), interpolation="nearest")
    for s in range(patch[0], S, patch[0]):
        ax.axvline(s - 0.5, color="white", lw=0.4, alpha=0.6)
    for f in range(patch[1], F, patch[1]):
        ax.axhline(f - 0.5, color="white", lw=0.4, alpha=0.6)
    if valid_frames is not None and valid_frames < S:
        ax.axvspan(valid_frames - 0.5, S - 0.5, color="grey", alpha=0.6, label="padding")
        ax.legend(loc="upper right", fontsize=8)
    xt = np.linspace(0, S - 1, 6).round().astype(int)
    ax.set_xticks(xt, [f"{seconds[i]:.2f}" for i in xt])
    yt = np.linspace(0, F - 1, 6).round().astype(int)
    ax.set_yticks(yt, [f"{hz[i]:.0f}" for i in yt])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, mel-spaced)")
    ax.set_title(f"{title} · {S} time steps × {F} mel bins · patches {patch[0]}×{patch[1]}", fontsize=10)
    return fig


def token_layout_figure(num_frames: int, patches_per_frame: int, audio_time: int, audio_freq: int,
                        audio_valid_time: Optional[int] = None) -> Figure:
    """The encoder sequence CLS | video (frame by frame) | audio (time-major), widths to scale."""
    video = num_frames * patches_per_frame
    audio = audio_time * audio_freq
    total = 1 + video + audio
    fig = _new_figure(9, 1.9)
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(0, 1, left=0, color="black", height=0.6)
    frame_colours = _cmap("Blues")(np.linspace(0.35, 0.85, num_frames))
    for t in range(num_frames):
        ax.barh(0, patches_per_frame, left=1 + t * patches_per_frame, color=frame_colours[t], height=0.6, edgecolor="white", lw=0.3)
    time_colours = _cmap("Oranges")(np.linspace(0.35, 0.85, audio_time))
    for s in range(audio_time):
        valid = audio_valid_time is None or s < audio_valid_time
        ax.barh(0, audio_freq, left=1 + video + s * audio_freq, color=time_colours[s] if valid else "lightgrey",
                height=0.6, edgecolor="white", lw=0.2)
    ax.text(0, 0.42, "CLS", fontsize=8, ha="left", va="bottom")
    ax.text(1 + video / 2, 0.42, f"video: {num_frames} frames × {patches_per_frame} patches = {video}", fontsize=8, ha="center", va="bottom")
    ax.text(1 + video + audio / 2, 0.42, f"audio: {audio_time} time × {audio_freq} freq = {audio}", fontsize=8, ha="center", va="bottom")
    ax.set_xlim(0, total)
    ax.set_ylim(-0.5, 0.9)
    ax.set_yticks([])
    ax.set_xlabel(f"token position (total {total} = 1 + {video} + {audio})")
    return fig


def sentiment_figure(conditions: Sequence[str], scores: Sequence[float]) -> Figure:
    """Scores on [-3, 3] for each input condition (both present, video hidden, audio hidden)."""
    fig = _new_figure(6, 2.4)
    ax = fig.add_subplot(1, 1, 1)
    colours = ["tab:green" if s >= 0 else "tab:red" for s in scores]
    ax.barh(range(len(scores)), scores, color=colours)
    ax.set_yticks(range(len(scores)), conditions)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-3, 3)
    ax.invert_yaxis()
    for i, s in enumerate(scores):
        ax.text(s + (0.08 if s >= 0 else -0.08), i, f"{s:+.2f}", va="center", ha="left" if s >= 0 else "right", fontsize=8)
    ax.set_xlabel("sentiment score (−3 very negative … +3 very positive)")
    return fig
