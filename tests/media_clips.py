"""Small media files for tests, written with PyAV (tiny sizes, about a second each).

Frame i of a generated video is filled with `index_colour(i)`, so a decoded frame tells which frame it was.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# container format, video codec, audio codec, audio sample format
FORMATS = {
    "mp4": ("mp4", "libx264", "aac", "fltp"),
    "webm": ("webm", "libvpx", "libopus", "flt"),
    "mkv": ("matroska", "libx264", "flac", "s16"),
    "wav": ("wav", None, "pcm_s16le", "s16"),
    "mp3": ("mp3", None, "libmp3lame", "fltp"),
    "ogg": ("ogg", None, "libopus", "flt"),
    "flac": ("flac", None, "flac", "s16"),
    "m4a": ("ipod", None, "aac", "fltp"),
    "aac": ("adts", None, "aac", "fltp"),  # raw AAC (ADTS frames), as some recorders save
}
COLOUR_STEP = 8  # frame i -> grey level 16 + 8 (i mod 28) (survives lossy coding; 28 distinct frames)
DISTINCT_COLOURS = 28


def index_colour(index: int) -> int:
    return 16 + COLOUR_STEP * (index % DISTINCT_COLOURS)


def colour_index(frame: np.ndarray) -> int:
    """Inverse of `index_colour` for a decoded (H, W, 3) frame."""
    return int(round((float(frame.mean()) - 16) / COLOUR_STEP))


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """(channels, L) float32 sine tones, channel c at freq * (c + 1), amplitude 0.5."""
    t = np.arange(int(round(seconds * rate))) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def write_media(
    path: Path,
    kind: str = "mp4",
    num_frames: int = 0,
    fps: int = 25,
    size: tuple[int, int] = (32, 48),
    audio: np.ndarray | None = None,
    audio_rate: int = 44100,
    rotation: int = 0,
    frame_times: list[float] | None = None,
    gop: int | None = None,
) -> Path:
    """Write a clip; video frames coloured by index, `audio` (C, L) float32 encoded as given.

    size: (height, width). frame_times: explicit presentation times (variable frame rate; ms resolution).
    """
    container_format, video_codec, audio_codec, sample_format = FORMATS[kind]
    with av.open(str(path), "w", format=container_format) as container:
        video = _add_video(container, video_codec, num_frames, fps, size, rotation, frame_times, gop)
        sound = None if audio is None else container.add_stream(audio_codec, rate=audio_rate, layout=_layout(audio))
        if video is not None:
            _write_frames(container, video, num_frames, size, frame_times)
        if sound is not None:
            _write_audio(container, sound, audio, audio_rate, sample_format)
    return path


def _layout(audio: np.ndarray) -> str:
    return "mono" if audio.shape[0] == 1 else "stereo"


def _add_video(container, codec, num_frames, fps, size, rotation, frame_times, gop):
    if codec is None or num_frames == 0:
        return None
    video = container.add_stream(codec, rate=fps)
    video.height, video.width, video.pix_fmt = size[0], size[1], "yuv420p"
    if gop is not None:
        video.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
    if frame_times is not None:  # no B-frames: with them the mp4 muxer undercounts a VFR clip's duration
        video.codec_context.time_base = Fraction(1, 1000)
        video.options = {**video.options, "bf": "0"}
    if rotation:
        video.set_display_rotation(rotation)
    return video


def _write_frames(container, video, num_frames, size, frame_times):
    for index in range(num_frames):
        pixels = np.full((*size, 3), index_colour(index), np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = index if frame_times is None else int(round(frame_times[index] * 1000))
        if frame_times is not None:
            frame.time_base = Fraction(1, 1000)
        container.mux(video.encode(frame))
    container.mux(video.encode(None))


def _write_audio(container, sound, audio, rate, sample_format):
    samples = audio if sample_format.endswith("p") else audio.T.reshape(1, -1)  # planar or interleaved
    if sample_format == "s16":
        samples = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    step = sound.codec_context.frame_size or 1024
    channels = audio.shape[0] if sample_format.endswith("p") else 1
    width = step * (1 if sample_format.endswith("p") else audio.shape[0])
    for offset in range(0, samples.shape[1], width):
        chunk = np.ascontiguousarray(samples[:channels, offset : offset + width])
        frame = av.AudioFrame.from_ndarray(chunk, format=sample_format, layout=_layout(audio))
        frame.sample_rate, frame.pts = rate, offset // (width // step)
        container.mux(sound.encode(frame))
    container.mux(sound.encode(None))


class _StreamingSink:
    """A write-only file object: muxers cannot seek back, as in a browser's MediaRecorder."""

    def __init__(self, file) -> None:
        self._file = file

    def write(self, data: bytes) -> int:
        return self._file.write(data)


def write_live_webm(path: Path, num_frames: int = 20, fps: int = 10, size: tuple[int, int] = (32, 48)) -> Path:
    """A webm like a browser webcam recording: written as a stream, so it states no duration and has no
    seek index (cues). Frames coloured by index; a 440 Hz Opus track as long as the video."""
    with open(path, "wb") as file, av.open(_StreamingSink(file), "w", format="webm") as container:
        video = _add_video(container, "libvpx", num_frames, fps, size, 0, None, None)
        sound = container.add_stream("libopus", rate=48000, layout="mono")
        _write_frames(container, video, num_frames, size, None)
        _write_audio(container, sound, tone(num_frames / fps, 48000), 48000, "flt")
    return path


def write_text(path: Path, text: str = "this is not a video\n") -> Path:
    path.write_text(text)
    return path


def truncate(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target
