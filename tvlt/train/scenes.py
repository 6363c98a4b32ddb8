"""Sound-making scenes: 1-3 objects whose look sets their sound, visible exactly while they sound.

Look -> sound (one table each, index = code stored in the meta):
    shape   circle / square / triangle / diamond / star / ring -> timbre sine / square / sawtooth / FM bell / noise burst / pluck
    colour  red / yellow / green / cyan / blue / magenta        -> pitch 220 Hz x 1.5^k (k = colour code)
    size    32 / 40 / 48 px at 96 px                           -> loudness -9 / -4.4 / 0 dB
    texture solid / stripes / dots                             -> plain / tremolo 7 Hz / vibrato 5.5 Hz
Timing: each object's on-segments form a pattern of 1-2 runs of whole frame segments (frame k shows
the middle of segment k), so an object is visible in exactly the frames whose segment it sounds in.
Its onsets fall up to 0.3 segment after the run starts and its offsets up to 0.3 segment before the
run ends, so audio timing is finer than the frames but never contradicts them. Objects stay in their
own cell of a 2x2 grid and drift at most 0.05 x image size per frame (<= 5 px at 96 px).
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tvlt.train import synth
from tvlt.train.synth import ClipSpec, pick

MAX_OBJECTS = 3
MAX_EVENTS = 2  # runs per timing pattern
SHAPES = ("circle", "square", "triangle", "diamond", "star", "ring")
TIMBRES = ("sine", "square", "sawtooth", "bell", "noise", "pluck")
DECAY_RATES = (0.0, 0.0, 0.0, 5.0, 10.0, 14.0)  # 1/s per timbre: envelope 1 / (1 + rate * t)^2
COLOURS = ("red", "yellow", "green", "cyan", "blue", "magenta")
PALETTE = ((0.95, 0.15, 0.15), (1.0, 0.85, 0.1), (0.2, 0.9, 0.25), (0.1, 0.9, 0.95), (0.3, 0.45, 1.0), (0.95, 0.3, 0.9))
PITCHES = tuple(220.0 * 1.5**k for k in range(len(COLOURS)))  # Hz, a fifth apart: distinct mel bands
SIZES = (1 / 3, 5 / 12, 1 / 2)  # diameter / image size
GAINS = (0.35, 0.6, 1.0)
TEXTURES = ("solid", "stripes", "dots")
TREMOLO_DEPTH, TREMOLO_HZ = (0.0, 0.7, 0.0), 7.0
VIBRATO_DEPTH, VIBRATO_HZ = (0.0, 0.0, 0.04), 5.5
ATTACK, RELEASE = 0.005, 0.03  # seconds
MASTER_GAIN = 0.3  # three loudest objects together stay within [-1, 1]
TABLE_PERIODS, TABLE_LENGTH = 5, 8192  # wavetables hold 5 cycles so the 7:5 FM bell is periodic
SPRITE_SIZE = 64
DRIFT, CELL_SLACK = 0.05, 0.1  # per-frame speed and wander around the cell centre, x image size
CELL_CENTRES = ((0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7))

BACKGROUND_COLUMNS = slice(1, 1 + synth.BACKGROUND_WIDTH)  # look-row columns of the background
_COLOUR_KEYS = BACKGROUND_COLUMNS.stop
_CELL_KEYS = _COLOUR_KEYS + len(COLOURS)
_OBJECT_COLUMNS = 7  # shape, size, texture, jitter x, jitter y, velocity x, velocity y
_OBJECTS = _CELL_KEYS + len(CELL_CENTRES)
LOOK_WIDTH = _OBJECTS + MAX_OBJECTS * _OBJECT_COLUMNS
TIMING_WIDTH = 3 * MAX_OBJECTS  # pattern, onset jitter, offset jitter


@functools.lru_cache(maxsize=8)
def timing_patterns(num_frames: int) -> torch.Tensor:
    """(P, E, 2) int64 [first, last] segment of each run (-1 padded) of every allowed on-pattern.

    Allowed: 1-2 runs of 1..max(1, 3T/8) segments separated by >= 1 off segment.
    """
    max_run = max(1, 3 * num_frames // 8)
    patterns = []
    for bits in itertools.product((0, 1), repeat=num_frames):
        runs = _runs(bits)
        if 1 <= len(runs) <= MAX_EVENTS and all(last - first < max_run for first, last in runs):
            patterns.append(runs + [(-1, -1)] * (MAX_EVENTS - len(runs)))
    return torch.tensor(patterns, dtype=torch.long)


def _runs(bits: Sequence[int]) -> list[tuple[int, int]]:
    """[first, last] index of every run of ones."""
    runs, start = [], None
    for k, bit in enumerate([*bits, 0]):
        if bit and start is None:
            start = k
        elif not bit and start is not None:
            runs.append((start, k - 1))
            start = None
    return runs


def scene_timing(look: torch.Tensor, timing: torch.Tensor, spec: ClipSpec) -> dict[str, torch.Tensor]:
    """On/off events of every object slot from timing uniforms (B, 9) and look uniforms (B, LOOK_WIDTH).

    Returns pattern (B, O) int64, onsets/offsets (B, O, E) seconds (-1 where no event or slot unused),
    visible (B, O, T) bool.
    """
    patterns = timing_patterns(spec.num_frames).to(timing.device)
    active = active_slots(look)  # (B, O)
    pattern = pick(timing[:, 0::3], len(patterns))  # (B, O)
    runs = patterns[pattern]  # (B, O, E, 2)
    exists = (runs[..., 0] >= 0) & active[..., None]  # (B, O, E)
    on = (runs[..., 0] + 0.3 * timing[:, 1::3, None]) * spec.segment
    off = (runs[..., 1] + 1.0 - 0.3 * timing[:, 2::3, None]) * spec.segment
    segments = torch.arange(spec.num_frames, device=look.device)
    inside = (segments >= runs[..., :1]) & (segments <= runs[..., 1:2]) & exists[..., None]  # (B, O, E, T)
    return {
        "pattern": torch.where(active, pattern, -1),
        "onsets": torch.where(exists, on, -1.0),
        "offsets": torch.where(exists, off, -1.0),
        "visible": inside.any(dim=2),
    }


def active_slots(look: torch.Tensor) -> torch.Tensor:
    """(B, O) bool: the first 1-3 object slots are used."""
    count = pick(look[:, 0], MAX_OBJECTS) + 1
    return torch.arange(MAX_OBJECTS, device=look.device) < count[:, None]


def scene_look(look: torch.Tensor, spec: ClipSpec) -> dict[str, torch.Tensor]:
    """Objects' codes (B, O) int64 (-1 in unused slots), diameter (B, O) px and centres (B, O, T, 2) px."""
    active = active_slots(look)
    columns = look[:, _OBJECTS:].reshape(-1, MAX_OBJECTS, _OBJECT_COLUMNS)  # (B, O, 7)
    colour = look[:, _COLOUR_KEYS:_CELL_KEYS].argsort(dim=1)[:, :MAX_OBJECTS]  # distinct colours
    cell = look[:, _CELL_KEYS:_OBJECTS].argsort(dim=1)[:, :MAX_OBJECTS]  # distinct cells
    codes = {
        "shape": pick(columns[..., 0], len(SHAPES)),
        "colour": colour,
        "size": pick(columns[..., 1], len(SIZES)),
        "texture": pick(columns[..., 2], len(TEXTURES)),
    }
    meta = {name: torch.where(active, code, -1) for name, code in codes.items()}
    meta["num_objects"] = active.sum(dim=1)
    meta["diameter"] = torch.tensor(SIZES, device=look.device)[codes["size"]] * spec.image_size
    meta["centres"] = _trajectories(columns[..., 3:7], cell, spec)
    return meta


def _trajectories(motion: torch.Tensor, cell: torch.Tensor, spec: ClipSpec) -> torch.Tensor:
    """Centres (B, O, T, 2) px: start near the cell centre, constant drift, reflected in the cell box."""
    size = spec.image_size
    centre = torch.tensor(CELL_CENTRES, device=motion.device)[cell] * size  # (B, O, 2)
    start = centre + (motion[..., 0:2] - 0.5) * (2 * CELL_SLACK * size)
    velocity = (motion[..., 2:4] - 0.5) * (2 * DRIFT * size)
    steps = torch.arange(spec.num_frames, device=motion.device) - (spec.num_frames - 1) / 2
    raw = start[:, :, None] + velocity[:, :, None] * steps[:, None]  # (B, O, T, 2)
    low, span = centre[:, :, None] - CELL_SLACK * size, 2 * CELL_SLACK * size
    folded = torch.remainder(raw - low, 2 * span)
    return low + span - (folded - span).abs()


# ------------------------------------------------------------------------------------ frames

def _shape_masks(u: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """(6, ...) bool: inside each shape of SHAPES, coordinates in [-1, 1] divided by `scale`."""
    u, v = u / scale, v / scale
    radius = torch.sqrt(u**2 + v**2)
    angle = torch.atan2(v, u)
    star = 0.42 + 0.53 * (0.5 + 0.5 * torch.cos(5 * (angle + math.pi / 2)))
    return torch.stack([
        radius <= 0.95,
        torch.maximum(u.abs(), v.abs()) <= 0.8,
        (v <= 0.72) & (u.abs() <= 0.95 * (v + 0.9) / 1.62),
        u.abs() + v.abs() <= 0.98,
        radius <= star,
        (radius <= 0.95) & (radius >= 0.5),
    ])


@functools.lru_cache(maxsize=4)
def sprites(device: str) -> torch.Tensor:
    """(6 shapes x 3 textures, 2, R, R) float32: channel 0 coverage, channel 1 shading (dark rim, texture)."""
    fine = SPRITE_SIZE * 4
    coords = (torch.arange(fine, dtype=torch.float64) + 0.5) / fine * 2 - 1
    v, u = coords[:, None].expand(fine, fine), coords[None, :].expand(fine, fine)
    inside, interior = _shape_masks(u, v, 1.0).double(), _shape_masks(u, v, 0.86).double()
    stripes = torch.where(torch.remainder((u + v) * 2.5, 1.0) < 0.5, 0.55, 1.0)
    dots = torch.where((torch.remainder(u * 3, 1.0) - 0.5) ** 2 + (torch.remainder(v * 3, 1.0) - 0.5) ** 2 < 0.09, 0.5, 1.0)
    texture = torch.stack([torch.ones_like(u), stripes, dots])  # (3, R4, R4)
    shade = (0.3 + 0.7 * interior)[:, None] * texture[None]  # (6, 3, R4, R4)
    coverage = inside[:, None].expand_as(shade)
    pooled = F.avg_pool2d(torch.stack([coverage, coverage * shade], dim=2).flatten(0, 2)[:, None], 4)
    pooled = pooled.reshape(len(SHAPES) * len(TEXTURES), 2, SPRITE_SIZE, SPRITE_SIZE)
    pooled[:, 1] /= pooled[:, 0].clamp_min(1e-6)
    return pooled.float().to(device)


def render_objects(canvas: torch.Tensor, look: dict[str, torch.Tensor], visible: torch.Tensor) -> torch.Tensor:
    """Objects composited in slot order onto canvas (B, T, H, W, 3) float in [0, 1]; visible (B, O, T) bool.

    Only visible (clip, slot, frame) triples are sampled, each over the whole frame.
    """
    size, device = canvas.shape[2], canvas.device
    canvas = canvas.clone()
    x, y = synth.pixel_grid(size, device)
    palette, bank = torch.tensor(PALETTE, device=device), sprites(str(device))
    for slot in range(MAX_OBJECTS):
        b, t = visible[:, slot].nonzero(as_tuple=True)  # (n,) each
        radius = (look["diameter"][b, slot] / 2)[:, None, None]
        centre = look["centres"][b, slot, t][:, None, None]  # (n, 1, 1, 2)
        grid = torch.stack([((x - centre[..., 0]) / radius).expand(-1, size, size),
                            ((y - centre[..., 1]) / radius).expand(-1, size, size)], dim=-1)  # (n, H, W, 2)
        sprite = bank[look["shape"][b, slot] * len(TEXTURES) + look["texture"][b, slot]]
        drawn = F.grid_sample(sprite, grid, align_corners=False)[..., None]  # (n, 2, H, W, 1)
        paint = drawn[:, 1] * palette[look["colour"][b, slot]][:, None, None]  # (n, H, W, 3)
        region = canvas[b, t]
        canvas[b, t] = region + drawn[:, 0] * (paint - region)
    return canvas


# ------------------------------------------------------------------------------------ sound

@functools.lru_cache(maxsize=1)
def wavetables() -> torch.Tensor:
    """(6, N) float32 wavetables, one per TIMBRES entry, each holding TABLE_PERIODS cycles."""
    p = TABLE_PERIODS
    noise = torch.Generator().manual_seed(0)
    amps, phases = torch.rand(10 * p, generator=noise), torch.rand(10 * p, generator=noise) * 2 * math.pi
    x = torch.arange(TABLE_LENGTH, dtype=torch.float64) / TABLE_LENGTH
    bell = torch.sin(2 * math.pi * p * x + 2.0 * torch.sin(2 * math.pi * 7 * x))  # carrier : modulator = 5 : 7
    tables = [
        synth.additive_table([(p, 1.0, 0.0)], TABLE_LENGTH),
        synth.additive_table([(p * n, 1.0 / n, 0.0) for n in range(1, 10, 2)], TABLE_LENGTH),
        synth.additive_table([(p * n, 1.0 / n, 0.0) for n in range(1, 11)], TABLE_LENGTH),
        (bell / bell.abs().max()).float(),
        synth.additive_table([(m, float(a), float(f)) for m, a, f in zip(range(1, 10 * p + 1), amps, phases)], TABLE_LENGTH),
        synth.additive_table([(p * n, 0.8**n, 0.0) for n in range(1, 11)], TABLE_LENGTH),
    ]
    return torch.stack(tables)


@functools.lru_cache(maxsize=4)
def tone_bank(spec: ClipSpec, device: str) -> torch.Tensor:
    """(timbre x colour x vibrato = 72, L) float32: every object's ungated tone, rendered once.

    Row (shape * 6 + colour) * 2 + (texture has vibrato) is what `render_sound` gates.
    """
    t = torch.arange(spec.num_samples, dtype=torch.float64) / spec.sampling_rate
    vibrato = (1 - torch.cos(2 * math.pi * VIBRATO_HZ * t)) / (2 * math.pi * VIBRATO_HZ)  # phase offset, s
    warped = torch.stack([t, t + max(VIBRATO_DEPTH) * vibrato])  # (2, L)
    pitch = torch.tensor(PITCHES, dtype=torch.float64)[:, None, None] / TABLE_PERIODS
    cycles = torch.remainder(pitch * warped, 1.0).float()  # (colour, vibrato, L)
    tables = wavetables()
    tones = torch.stack([synth.table_lookup(tables, torch.tensor(k), cycles) for k in range(len(TIMBRES))])
    return tones.reshape(-1, spec.num_samples).to(device)


def _bank_row(look: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, O) row of `tone_bank` for every slot (unused slots read row 0 and are silenced by gain 0)."""
    vibrato = (torch.tensor(VIBRATO_DEPTH, device=look["shape"].device)[look["texture"].clamp_min(0)] > 0).long()
    return (look["shape"].clamp_min(0) * len(COLOURS) + look["colour"].clamp_min(0)) * 2 + vibrato


def render_sound(look: dict[str, torch.Tensor], timing: dict[str, torch.Tensor], spec: ClipSpec) -> torch.Tensor:
    """Waveform (B, L) float32 in [-1, 1]: every object's tone gated by its events."""
    device = look["shape"].device
    shape, texture = look["shape"].clamp_min(0), look["texture"].clamp_min(0)
    gain = torch.tensor(GAINS, device=device)[look["size"].clamp_min(0)] * (look["shape"] >= 0)
    tc = synth.control_axis(spec, device)
    on, off = timing["onsets"][..., None], timing["offsets"][..., None]  # (B, O, E, 1) vs tc (Lb,)
    gate = ((tc - on) / ATTACK).clamp(0, 1) * ((off - tc) / RELEASE).clamp(0, 1)
    rate = torch.tensor(DECAY_RATES, device=device)[shape][..., None, None]
    decay = 1 / (1 + (tc - on).clamp_min(0) * rate) ** 2
    depth = torch.tensor(TREMOLO_DEPTH, device=device)[texture][..., None]
    tremolo = 0.5 + 0.5 * torch.sin(tc * (2 * math.pi * TREMOLO_HZ))  # (Lb,), batch-independent
    envelope = (gate * decay).sum(dim=2) * (gain * MASTER_GAIN)[..., None] * (1 - depth * tremolo)  # (B, O, Lb)
    return synth.mix(tone_bank(spec, str(device))[_bank_row(look)], envelope)
