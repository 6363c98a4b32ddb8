"""Pure audio maths for TVLT: log-mel spectrogram (transformers' recipe), its inverse, resampling, axes.

Nothing here opens files (that is `tvlt.media`), and only numpy + torch are imported at module load;
librosa is imported inside `mel_to_waveform` (Griffin-Lim) only.

Recipe of transformers 4.40.2 `TvltFeatureExtractor` (what the checkpoints were trained on):
power STFT (n_fft 2048, hop 44100 // 86 = 512, periodic Hann, centred with reflect padding)
-> 128 slaney-normalised slaney-scale mel filters (0 .. 22050 Hz) -> 10·log10, floored at 1e-10
and at (max - 80 dB) over the whole clip -> drop the last frame -> (dB - 20) / 40 clipped to
[-2, 0] -> + 1, so values lie in [-1, 1] (-1 is silence, 1 is 60 dB or more above unit power).
"""

from __future__ import annotations

from functools import lru_cache
from math import ceil, gcd, pi

import numpy as np
import torch

SAMPLING_RATE = 44100
N_FFT = 2048
HOP_LENGTH = SAMPLING_RATE // 86  # 512, transformers' `hop_length_to_sampling_rate`
N_MELS = 128
F_MIN = 0.0
F_MAX = 22050.0
POWER_FLOOR = 1e-10  # transformers' mel_floor and min_value
TOP_DB = 80.0  # dynamic range kept below the loudest bin of a clip
DB_OFFSET = 20.0  # dB subtracted before scaling
DB_SCALE = 40.0  # dB per unit of model input
MAX_SPECTROGRAM_FRAMES = 2048  # TVLT's spectrogram_length
PATCH_SIZE = (16, 16)  # audio patch (time frames, mel bins)
MAX_AUDIO_SECONDS = MAX_SPECTROGRAM_FRAMES * HOP_LENGTH / SAMPLING_RATE  # ≈ 23.78 s
GRIFFIN_LIM_ITERATIONS = 32

# Slaney mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
_SLANEY_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_LINEAR_HZ_PER_MEL  # 15
_SLANEY_LOG_STEP = np.log(6.4) / 27.0  # log-Hz per mel above the break


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequencies in Hz -> slaney mels (librosa's `htk=False`)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_LINEAR_HZ_PER_MEL
    log = _SLANEY_BREAK_MEL + np.log(np.maximum(hz, 1e-12) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_BREAK_HZ, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Slaney mels -> Hz; exact inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_LINEAR_HZ_PER_MEL
    log = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return np.where(mel >= _SLANEY_BREAK_MEL, log, linear)


def mel_filter_bank(
    n_fft: int = N_FFT, n_mels: int = N_MELS, sampling_rate: int = SAMPLING_RATE,
    f_min: float = F_MIN, f_max: float = F_MAX,
) -> np.ndarray:
    """Triangular slaney-normalised filters, (n_mels, n_fft // 2 + 1) float64; equals librosa.filters.mel."""
    fft_hz = np.linspace(0.0, sampling_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # (n_mels + 2,)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz - lower) / (centre - lower)
    falling = (upper - fft_hz) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, n_fft // 2 + 1)
    return triangles * (2.0 / (upper - lower))  # slaney norm: every filter has unit area in Hz


FRAME_CHUNK = 128  # STFT frames per CPU step: the (chunk, 2048) intermediates stay in cache (~2x faster)
_FILTERS_PER_BAND = 16  # mel filters per dense block of the banded filter-bank product


@lru_cache(maxsize=8)
def _mel_bands(device: torch.device, dtype: torch.dtype) -> tuple[tuple[int, int, int, torch.Tensor], ...]:
    """The filter bank as blocks of 16 filters x the FFT bins they touch: (first filter, bin lo, bin hi, weights).

    weights: (hi - lo, 16). The filters are narrow triangles, so the blocks hold ~13% of the dense
    (128, 1025) matrix and the mel projection is ~4x cheaper; the values are those of the dense product.
    """
    filters = mel_filter_bank()
    bands = []
    for first in range(0, N_MELS, _FILTERS_PER_BAND):
        block = filters[first : first + _FILTERS_PER_BAND]
        touched = np.flatnonzero(block.any(axis=0))
        lo, hi = int(touched[0]), int(touched[-1]) + 1
        weights = torch.from_numpy(np.ascontiguousarray(block[:, lo:hi].T)).to(device=device, dtype=dtype)
        bands.append((first, lo, hi, weights))
    return tuple(bands)


@lru_cache(maxsize=8)
def _torch_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(N_FFT, periodic=True, device=device, dtype=dtype)


def reflect_pad(waveform: torch.Tensor, pad: int) -> torch.Tensor:
    """numpy `mode="reflect"` padding of the last axis, also when `pad` exceeds the length.

    (..., L) -> (..., L + 2 * pad). torch's reflect pad refuses pad >= L; numpy keeps reflecting.
    """
    length = waveform.shape[-1]
    if pad < length:  # fast path; cat of the mirrored edges is ~3x faster than F.pad(mode="reflect") on CPU
        left, right = waveform[..., 1 : pad + 1].flip(-1), waveform[..., length - pad - 1 : length - 1].flip(-1)
        return torch.cat([left, waveform, right], dim=-1)
    positions = torch.arange(-pad, length + pad, device=waveform.device)
    if length == 1:
        return waveform[..., positions.clamp(0, 0)]
    period = 2 * (length - 1)
    folded = positions.remainder(period)
    return waveform[..., torch.where(folded < length, folded, period - folded)]


def _frames_to_mel(frames: torch.Tensor, out: torch.Tensor) -> None:
    """(B, n, N_FFT) signal frames -> mel power written into out (B, n, N_MELS)."""
    window = _torch_window(frames.device, frames.dtype)
    spectrum = torch.view_as_real(torch.fft.rfft(frames * window, dim=-1)).square_()  # (B, n, 1025, 2)
    power = spectrum[..., 0] + spectrum[..., 1]  # (B, n, 1025) |X|^2
    for first, lo, hi, weights in _mel_bands(frames.device, frames.dtype):
        out[..., first : first + weights.shape[1]] = power[..., lo:hi] @ weights


def power_mel_spectrogram(waveform: torch.Tensor) -> torch.Tensor:
    """(..., L) float -> mel power (..., L // HOP_LENGTH + 1, N_MELS), centred frames, not trimmed.

    Same values as `torch.stft(center=True, pad_mode="reflect")` -> |X|^2 -> dense filter bank, computed
    chunk by chunk of frames on CPU (one chunk on accelerators) with the banded filter product.
    """
    batch_shape, length = waveform.shape[:-1], waveform.shape[-1]
    padded = reflect_pad(waveform.reshape(-1, length), N_FFT // 2)
    frames = padded.unfold(-1, N_FFT, HOP_LENGTH)  # (B, S + 1, N_FFT) view, no copy
    batch, count = frames.shape[:2]
    mel = padded.new_empty(batch, count, N_MELS)
    step = max(8, FRAME_CHUNK // max(batch, 1)) if waveform.device.type == "cpu" else count
    for start in range(0, count, step):
        _frames_to_mel(frames[:, start : start + step], mel[:, start : start + step])
    return mel.reshape(*batch_shape, count, N_MELS)


def log_mel_spectrogram(waveform: torch.Tensor) -> torch.Tensor:
    """TVLT model audio input from 44.1 kHz mono audio, on any device, batched over leading axes.

    waveform: (..., L) float, [-1, 1] full scale, 44100 Hz.
    returns: (..., S, F) same dtype, S = L // 512 frames (not truncated to 2048), F = 128 mel bins,
    values in [-1, 1]; time frame s is centred at s * 512 / 44100 s.
    """
    if waveform.shape[-1] < 1:
        raise ValueError(f"waveform has no samples (shape {tuple(waveform.shape)})")
    db = 10.0 * torch.log10(power_mel_spectrogram(waveform).clamp_min(POWER_FLOOR))  # (..., S + 1, F)
    loudest = db.amax(dim=(-2, -1), keepdim=True)  # per clip, including the frame dropped below
    db = torch.maximum(db, loudest - TOP_DB)[..., :-1, :]
    return ((db - DB_OFFSET) / DB_SCALE).clamp(-2.0, 0.0) + 1.0


def log_mel_spectrogram_np(waveform: np.ndarray) -> np.ndarray:
    """numpy wrapper of `log_mel_spectrogram`: (..., L) -> (..., L // 512, 128) float32 on CPU."""
    return log_mel_spectrogram(torch.from_numpy(np.asarray(waveform, dtype=np.float32))).numpy()


def num_spectrogram_frames(num_samples: int) -> int:
    """Frames `log_mel_spectrogram` returns for `num_samples` samples (before the 2048 cap)."""
    return num_samples // HOP_LENGTH


# ---------------------------------------------------------------- resampling

_RESAMPLE_ZERO_CROSSINGS = 32  # sinc lobes on each side of the kernel centre
_RESAMPLE_ROLLOFF = 0.97  # cutoff as a fraction of the lower Nyquist frequency
_MAX_KERNEL_ELEMENTS = 1 << 24


@lru_cache(maxsize=16)
def _sinc_kernels(orig: int, new: int) -> tuple[np.ndarray, int]:
    """Hann-windowed sinc polyphase bank for reduced rates orig -> new: ((new, 1, K) float64, half width)."""
    cutoff = min(orig, new) * _RESAMPLE_ROLLOFF  # in units of "samples per orig-sample * orig"
    half = ceil(_RESAMPLE_ZERO_CROSSINGS * orig / cutoff)  # kernel half-width in input samples
    if new * (2 * half + orig) > _MAX_KERNEL_ELEMENTS:
        raise ValueError(f"cannot resample between rates with ratio {orig}:{new}; use tvlt.media.load_audio")
    taps = np.arange(-half, half + orig) / orig  # input offsets, in units of orig-samples / orig
    phases = -np.arange(new)[:, None] / new  # output phase offsets
    t = (phases + taps[None, :]) * cutoff  # (new, K) distance in cutoff periods
    t = np.clip(t, -_RESAMPLE_ZERO_CROSSINGS, _RESAMPLE_ZERO_CROSSINGS)
    window = np.cos(t * pi / (2 * _RESAMPLE_ZERO_CROSSINGS)) ** 2
    kernels = np.sinc(t) * window * (cutoff / orig)
    return kernels[:, None, :], half


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited (windowed-sinc, polyphase) resampling of the last axis, any device.

    (..., L) float -> (..., ceil(L * new_rate / orig_rate)); the identity when the rates match.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sampling rates must be positive, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return waveform
    divisor = gcd(int(orig_rate), int(new_rate))
    orig, new = int(orig_rate) // divisor, int(new_rate) // divisor
    kernels, half = _sinc_kernels(orig, new)
    batch_shape, length = waveform.shape[:-1], waveform.shape[-1]
    flat = torch.nn.functional.pad(waveform.reshape(-1, 1, length), (half, half + orig))
    weight = torch.from_numpy(kernels).to(device=waveform.device, dtype=waveform.dtype)
    phased = torch.nn.functional.conv1d(flat, weight, stride=orig)  # (B, new, blocks)
    out = phased.transpose(1, 2).reshape(flat.shape[0], -1)  # interleave phases in time order
    return out[:, : ceil(new * length / orig)].reshape(*batch_shape, -1)


def resample_np(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """numpy wrapper of `resample` (float32 in/out, CPU)."""
    tensor = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    return resample(tensor, orig_rate, new_rate).numpy()


# ---------------------------------------------------------------- inverse and axes

def audio_values_to_db(audio_values: np.ndarray) -> np.ndarray:
    """Model audio values in [-1, 1] -> dB re unit power, same shape (inverse of the scaling step).

    Values at -1 (the clip floor) map to -60 dB: information below that was discarded.
    """
    return (np.asarray(audio_values, dtype=np.float64) - 1.0) * DB_SCALE + DB_OFFSET


NNLS_ITERATIONS = 30  # multiplicative updates of the mel -> linear power inverse


def mel_power_to_linear(mel_power: np.ndarray, n_iter: int = NNLS_ITERATIONS) -> np.ndarray:
    """Non-negative least squares inverse of the mel filter bank: (n_mels, S) -> (n_fft // 2 + 1, S) power.

    Starts from the clipped pseudo-inverse and refines with multiplicative (Lee-Seung) updates, which keep
    every bin non-negative: close to librosa's NNLS inverse at a fraction of its cost.
    """
    filters = mel_filter_bank()  # (F, K)
    linear = np.maximum(np.linalg.pinv(filters) @ mel_power, 0.0) + 1e-8 * float(mel_power.mean())
    numerator = filters.T @ mel_power  # (K, S)
    for _ in range(n_iter):
        linear *= numerator / (filters.T @ (filters @ linear) + 1e-12)
    return linear


def mel_to_waveform(audio_values: np.ndarray, n_iter: int = GRIFFIN_LIM_ITERATIONS) -> np.ndarray:
    """Listenable 44.1 kHz audio from model audio values by Griffin-Lim on the mel spectrogram.

    audio_values: (S, F=128) in [-1, 1] (a padded `audio_values[b, 0]` may be passed whole).
    returns: (S * 512,) float32 in [-1, 1]. Mel power goes back to linear power through the filter bank's
    `mel_power_to_linear` (a fraction of a second, where librosa's NNLS inverse takes ~2 s per 3 s of audio
    on 2 cores). Deterministic: Griffin-Lim starts from zero phase and runs `n_iter` iterations.
    """
    import librosa  # lazy: not installed on the training machine

    values = np.asarray(audio_values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != N_MELS:
        raise ValueError(f"audio_values must be (S, {N_MELS}), got shape {values.shape}")
    power = 10.0 ** (audio_values_to_db(values).T / 10.0)  # (F, S) mel power
    magnitude = np.sqrt(mel_power_to_linear(power))  # (N_FFT // 2 + 1, S)
    magnitude = np.concatenate([magnitude, magnitude[:, -1:]], axis=1)  # restore the frame TVLT drops
    waveform = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=HOP_LENGTH, n_fft=N_FFT, window="hann", center=True, init=None,
        length=values.shape[0] * HOP_LENGTH,
    )
    peak = float(np.abs(waveform).max()) if waveform.size else 0.0
    return (waveform / peak if peak > 1.0 else waveform).astype(np.float32)


def spectrogram_time_axis(num_frames: int) -> np.ndarray:
    """Centre time in seconds of each spectrogram frame: (num_frames,) float64, frame s at s * 512 / 44100."""
    return np.arange(num_frames) * HOP_LENGTH / SAMPLING_RATE


def mel_frequency_axis(n_mels: int = N_MELS) -> np.ndarray:
    """Centre frequency in Hz of each mel bin: (n_mels,) float64, increasing."""
    return mel_to_hz(np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), n_mels + 2))[1:-1]


def mel_bin_edges(n_mels: int = N_MELS) -> np.ndarray:
    """Band edges in Hz of the mel bins, (n_mels + 1,): halfway (in mels) between neighbouring centres,
    and the outer filters' outer corners (F_MIN, F_MAX) at the ends."""
    mels = np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), n_mels + 2)
    halfway = mel_to_hz((mels[1:-2] + mels[2:-1]) / 2)  # (n_mels - 1,) between centres j and j + 1
    return np.concatenate([[F_MIN], halfway, [F_MAX]])


def audio_patch_edges(num_frames: int, patch_size: tuple[int, int] = PATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Patch boundaries of a (num_frames, 128) spectrogram: (time edges in s, frequency edges in Hz).

    Audio patch (i, j) covers [time[i], time[i + 1]) x [freq[j], freq[j + 1]); time edges are frame
    boundaries (frame s spans its centre ± half a hop), the last patch may be partial.
    """
    pt, pf = patch_size
    frames = np.append(np.arange(0, num_frames, pt), num_frames)  # (ceil(S / pt) + 1,)
    time_edges = np.clip((frames - 0.5) * HOP_LENGTH / SAMPLING_RATE, 0.0, None)
    return time_edges, mel_bin_edges()[::pf]
