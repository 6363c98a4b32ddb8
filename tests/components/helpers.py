"""Shared test material for the app: tiny random checkpoints and short generated clips (PyAV)."""

from __future__ import annotations

from components import settings  # noqa: F401  (before gradio: temp dir and analytics)

import socket
from pathlib import Path

import numpy as np

from tvlt import media
from tvlt.config import TvltConfig
from tvlt.modeling import TvltForAudioVisualClassification, TvltForPreTraining

# frequency_length must stay 128: the feature extractor and Griffin-Lim use TVLT's 128 mel bins
TINY = dict(image_size=32, num_frames=4, spectrogram_length=64, frequency_length=128)
SAMPLING_RATE = 44100


def save_tiny_models(root: Path) -> tuple[Path, Path]:
    """A random tiny pretraining model and a random tiny regression (sentiment) model -> their directories."""
    pre, sent = root / "tiny-pretrain", root / "tiny-sentiment"
    if not (pre / "config.json").is_file():
        torch_seed()
        TvltForPreTraining(TvltConfig.tiny(**TINY, extra={"random_init": True})).save_pretrained(pre)
        TvltForAudioVisualClassification(
            TvltConfig.tiny(**TINY, num_labels=1, loss_type="regression", extra={"random_init": True})
        ).save_pretrained(sent)
    return pre, sent


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (for an in-process gradio server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torch_seed() -> None:
    import torch

    torch.manual_seed(0)


def make_clip(path: Path, seconds: float = 2.0, audio: bool = True, hue: int = 0, fps: int = 10,
              size: tuple[int, int] = (48, 64), pitch: float = 300.0) -> Path:
    """A moving-square mp4 (H.264 + AAC) with a rising tone; `hue` and `pitch` make clips differ."""
    T = int(seconds * fps)
    frames = np.zeros((T, *size, 3), np.uint8)
    frames[..., hue % 3] = 60
    for i in range(T):
        x = int(4 + i * (size[1] - 12) / max(T - 1, 1))
        frames[i, size[0] // 4 : size[0] // 2, x : x + 8] = (255, 200, 40)
    waveform = None
    if audio:
        t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
        waveform = (0.3 * np.sin(2 * np.pi * (pitch + 150 * t) * t)).astype(np.float32)
    return media.save_clip(path, frames, fps, waveform, SAMPLING_RATE)


def make_wav(path: Path, seconds: float = 1.5, pitch: float = 500.0) -> Path:
    """A mono 16-bit WAV tone written with the standard library (an audio upload)."""
    import wave

    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    pcm = (0.3 * np.sin(2 * np.pi * pitch * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLING_RATE)
        f.writeframes(pcm.tobytes())
    return path


def make_media_set(root: Path) -> dict[str, Path]:
    """Every input the tests use, written once per directory."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "clip": make_clip(root / "clip.mp4"),
        "other": make_clip(root / "other.mp4", hue=2, pitch=900.0),
        "silent": make_clip(root / "silent.mp4", audio=False, hue=1),
        "long": make_clip(root / "long.mp4", seconds=6.0, fps=5),
        "tone": make_wav(root / "tone.wav"),
    }
    (root / "notes.txt").write_text("not a video")
    files["text"] = root / "notes.mp4"
    files["text"].write_text("this is a text file with a video suffix")
    files["empty"] = root / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["truncated"] = root / "truncated.mp4"
    files["truncated"].write_bytes(files["clip"].read_bytes()[:1500])
    return files


def examples(files: dict[str, Path]) -> dict[str, str]:
    return {"square one": str(files["clip"]), "square two": str(files["other"])}
