"""Talking faces: a drawn face carries one valence, a synthetic voice another; label = their sum.

Face valence f in [-1.5, 1.5] (s_f = f / 1.5): mouth curve (smile depth 0.2 face heights x s_f),
eye openness 0.3 + 0.6 (s_f + 1) / 2, brows raised by 0.1 face heights x s_f and, when s_f < 0,
tilted with the inner ends up (sad). Voice valence v in [-1.5, 1.5] (s_v = v / 1.5): pitch level x (1 + 0.35 s_v)
around a random speaker pitch, contour rising (s_v > 0) or falling by 50 % x s_v over the clip,
syllable rate 3.5 + 1.5 s_v (+-0.25) per second, brightness = harmonic roll-off n^-p with p from
2.5 (s_v = -1) to 0.7 (s_v = 1). The mouth opening in frame k equals the voice envelope at the
frame's time. |f|, |v| ~ U(0.15, 1.5); the signs disagree ("conflict") in CONFLICT_FRACTION of
the clips. label = clip(f + v, -3, 3) (CMU-MOSEI range; the clip never binds at these ranges).
"""
from __future__ import annotations

import functools

import torch

from tvlt.train import synth
from tvlt.train.synth import ClipSpec, lerp, pick

CONFLICT_FRACTION = 0.3
MAX_VALENCE, MIN_MAGNITUDE = 1.5, 0.15
SKIN = ((0.96, 0.8, 0.69), (0.87, 0.65, 0.48), (0.62, 0.45, 0.33), (0.98, 0.86, 0.35),
        (0.55, 0.82, 0.5), (0.55, 0.7, 0.95), (0.78, 0.62, 0.92), (0.95, 0.6, 0.6))
INK, SCLERA, LIPS = (0.06, 0.05, 0.05), (0.97, 0.97, 0.97), (0.32, 0.02, 0.05)
MAX_SYLLABLES = 32
ROLLOFFS, HARMONICS, VOICE_TABLE_LENGTH = 16, 24, 2048
VOICE_GAIN = 0.6
WIDTH = synth.BACKGROUND_WIDTH + 13 + 2 * MAX_SYLLABLES  # uniforms per clip
_F = synth.BACKGROUND_WIDTH  # first face column


def face_params(u: torch.Tensor) -> dict[str, torch.Tensor]:
    """Valences, label and voice parameters (each (B,) unless noted) from uniforms u (B, WIDTH)."""
    f = u[:, _F:]
    face_sign = torch.where(f[:, 0] < 0.5, -1.0, 1.0)
    conflict = f[:, 1] < CONFLICT_FRACTION
    face = face_sign * lerp(f[:, 2], MIN_MAGNITUDE, MAX_VALENCE)
    voice = torch.where(conflict, -face_sign, face_sign) * lerp(f[:, 3], MIN_MAGNITUDE, MAX_VALENCE)
    s = voice / MAX_VALENCE
    return {
        "face_valence": face,
        "voice_valence": voice,
        "conflict": conflict,
        "label": (face + voice).clamp(-3.0, 3.0),
        "pitch": lerp(f[:, 4], 110.0, 190.0) * (1 + 0.35 * s),  # Hz at mid-clip
        "contour": 0.5 * s,  # relative pitch change over the clip
        "syllable_rate": 3.5 + 1.5 * s + lerp(f[:, 5], -0.25, 0.25),
        "syllable_phase": f[:, 6],
        "rolloff": pick((1 - s) / 2, ROLLOFFS),  # 0 = brightest
        "syllable_gain": torch.where(f[:, 13:13 + MAX_SYLLABLES] < 0.2, 0.0, 0.5 + 0.5 * f[:, 13 + MAX_SYLLABLES:]),
    }


def voice_envelope(times: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Syllable envelope in [0, 1] at `times` (B, N) or (N,) seconds -> (B, N)."""
    position = params["syllable_rate"][:, None] * times + params["syllable_phase"][:, None]
    syllable = position.long().clamp_(max=MAX_SYLLABLES - 1)
    within = position - position.floor()
    bump = (4 * within * (1 - within)) ** 2
    return params["syllable_gain"].gather(1, syllable) * bump


@functools.lru_cache(maxsize=4)
def voice_tables(device: str) -> torch.Tensor:
    """(ROLLOFFS, N) float32 one-cycle tables with harmonics n^-p, p from 0.7 to 2.5."""
    exponents = torch.linspace(0.7, 2.5, ROLLOFFS).tolist()
    return torch.stack([
        synth.additive_table([(n, n**-p, 0.0) for n in range(1, HARMONICS + 1)], VOICE_TABLE_LENGTH)
        for p in exponents
    ]).to(device)


def render_voice(params: dict[str, torch.Tensor], spec: ClipSpec) -> torch.Tensor:
    """Waveform (B, L) float32 in [-1, 1]: glottal-like harmonic tone shaped into syllables."""
    device = params["pitch"].device
    t = synth.time_axis(spec.num_samples, spec.sampling_rate, str(device))
    # f0(t) = pitch * (1 + contour * (t / D - 1/2)); cycles = its integral
    bend = params["contour"][:, None] * (t * t / (2 * spec.duration) - t / 2)
    cycles = params["pitch"][:, None] * (t + bend)  # (B, L)
    tone = synth.table_lookup(voice_tables(str(device)), params["rolloff"][:, None], cycles)
    envelope = voice_envelope(synth.control_axis(spec, device), params) * VOICE_GAIN  # (B, Lb)
    return synth.mix(tone[:, None], envelope[:, None])


def face_geometry(u: torch.Tensor, spec: ClipSpec) -> dict[str, torch.Tensor]:
    """Face centre, radii (px) and colour (B, 3) from uniforms u (B, WIDTH); each (B,) unless noted."""
    f, size = u[:, _F:], spec.image_size
    radius_x = lerp(f[:, 7], 0.33, 0.39) * size
    colour = torch.tensor(SKIN, device=u.device)[pick(f[:, 8], len(SKIN))]
    return {
        "centre_x": (0.5 + lerp(f[:, 9], -0.04, 0.04)) * size,
        "centre_y": (0.5 + lerp(f[:, 10], -0.03, 0.03)) * size,
        "radius_x": radius_x,
        "radius_y": radius_x * lerp(f[:, 11], 1.05, 1.18),
        "colour": (colour + lerp(f[:, 12], -0.05, 0.05)[:, None]).clamp(0.0, 1.0),
    }


def _ellipse(x: torch.Tensor, y: torch.Tensor, cx, cy, rx, ry) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of an ellipse; parameters broadcast against x (1, W), y (H, 1)."""
    distance = torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return ((1 - distance) * torch.minimum(rx, ry) + 0.5).clamp(0.0, 1.0)


def _band(offset: torch.Tensor, half_width) -> torch.Tensor:
    """Anti-aliased coverage of |offset| <= half_width (pixels)."""
    return (half_width - offset.abs() + 0.5).clamp(0.0, 1.0)


def _paint(canvas: torch.Tensor, coverage: torch.Tensor, colour) -> torch.Tensor:
    """Blend colour (3,) or (B, 1, 1, 3) into canvas (B, ..., 3) with coverage (B, ...)."""
    colour = torch.as_tensor(colour, device=canvas.device)
    return canvas + coverage[..., None] * (colour - canvas)


def render_face(canvas: torch.Tensor, geometry: dict[str, torch.Tensor], valence: torch.Tensor) -> torch.Tensor:
    """Static face (head, eyes, pupils, brows) on canvas (B, H, W, 3); valence (B,) face valence."""
    x, y = synth.pixel_grid(canvas.shape[1], canvas.device)
    g = {name: value[:, None, None] for name, value in geometry.items() if name != "colour"}
    s = (valence / MAX_VALENCE)[:, None, None]
    rx, ry = g["radius_x"], g["radius_y"]
    canvas = _paint(canvas, _ellipse(x, y, g["centre_x"], g["centre_y"], rx, ry), geometry["colour"][:, None, None])
    for side in (-1.0, 1.0):
        eye_x, eye_y = g["centre_x"] + side * 0.36 * rx, g["centre_y"] - 0.2 * ry
        eye = _ellipse(x, y, eye_x, eye_y, 0.2 * rx, 0.2 * rx * (0.6 + 0.3 * s))
        canvas = _paint(canvas, eye, SCLERA)
        canvas = _paint(canvas, eye * _ellipse(x, y, eye_x, eye_y, 0.11 * rx, 0.11 * rx), INK)
        tilt = 0.35 * (-s).clamp_min(0) * side  # sad (s < 0): inner ends up; happy: level, raised
        brow_y = eye_y - 0.22 * ry - 0.1 * ry * s + tilt * (x - eye_x)
        canvas = _paint(canvas, _band(y - brow_y, 0.06 * rx) * _band(x - eye_x, 0.28 * rx), INK)
    return canvas


def render_mouth(frames: torch.Tensor, geometry: dict[str, torch.Tensor], valence: torch.Tensor,
                 opening: torch.Tensor) -> torch.Tensor:
    """Mouth on frames (B, T, H, W, 3): curve from valence (B,), opening (B, T) in [0, 1]."""
    x, y = synth.pixel_grid(frames.shape[2], frames.device)
    g = {name: value[:, None, None, None] for name, value in geometry.items() if name != "colour"}
    s = (valence / MAX_VALENCE)[:, None, None, None]
    half_width, ry = 0.5 * g["radius_x"], g["radius_y"]
    across = ((x - g["centre_x"]) / half_width) ** 2  # (B, 1, 1, W)
    curve = g["centre_y"] + 0.45 * ry + 0.2 * ry * s * (0.5 - across)  # smile: corners above the middle
    thickness = 0.1 * ry
    lower = curve + thickness / 2 + opening[..., None, None] * 0.3 * ry * (1 - across).clamp_min(0)
    upper = curve - thickness / 2
    coverage = (y - upper + 0.5).clamp(0, 1) * (lower - y + 0.5).clamp(0, 1) * _band(x - g["centre_x"], half_width)
    return _paint(frames, coverage, LIPS)
