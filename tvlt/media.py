"""The only module that opens media files: PyAV decoding to TVLT-ready arrays, mp4 writing, typed errors.

PyAV is imported on first use, so `tvlt.media` (its dataclasses and errors) imports on machines without it.
Every error a user can cause is a `MediaError` (a `ValueError`) whose message names the file and says what
to do; containers are always closed (`with`), and decoding stops at the end of the requested window.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from tvlt.audio import MAX_AUDIO_SECONDS, SAMPLING_RATE
from tvlt.video import NUM_FRAMES

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
SEEK_GAP_SECONDS = 2.0  # without a keyframe index, decode forward rather than seek for gaps shorter than this
_FRAME_TIME_TOLERANCE = 1e-6  # seconds; a frame whose pts equals the target is the target frame
_AUDIO_FRAME_SAMPLES = 1024  # AAC frame size
# FFmpeg demuxers that turn text into streams: `tty` renders any .txt/.nfo/.ans file as video frames
_TEXT_FORMATS = frozenset({"tty", "srt", "ass", "webvtt", "subviewer", "subviewer1", "microdvd", "mpl2", "sami",
                           "realtext", "jacosub", "pjs", "vplayer", "stl", "lrc", "aqtitle", "mpsub"})
# File signatures of containers PyAV reads: a file that starts like media but will not open is corrupt.
_MEDIA_MAGIC = (b"RIFF", b"OggS", b"fLaC", b"ID3", b"\x1aE\xdf\xa3", b"FORM", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")


class MediaError(ValueError):
    """A file or array the media layer cannot turn into model input; the message is a sentence for the user."""


class MediaNotFoundError(MediaError):
    """The path does not exist or is not a file."""


class NotMediaError(MediaError):
    """The file is not audio, video or an image (e.g. a text file renamed to .mp4)."""


class NoVideoStreamError(MediaError):
    """The file has no video track (and is not an image)."""


class NoAudioStreamError(MediaError):
    """The file has no audio track."""


class EmptyMediaError(MediaError):
    """The file or array holds nothing to decode (0 bytes, 0 samples, or nothing after `start`)."""


class CorruptMediaError(MediaError):
    """The file looks like media but is damaged or truncated."""


class MediaTooLongError(MediaError):
    """The media is longer than the configured `max_seconds`."""


class InvalidArrayError(MediaError):
    """An in-memory array has the wrong shape, dtype or non-finite values."""


@dataclass(frozen=True)
class VideoClip:
    """Frames sampled from a video or image.

    frames: (T, H, W, 3) uint8 RGB, upright (display matrix applied: rotation and mirror); T <= num_frames.
    timestamps: (T,) float64 presentation time of each frame in seconds from the stream start.
    duration: length of the sampled window in seconds (0.0 for an image).
    fps: average frame rate of the source (None for an image).
    source_size: (height, width) of the upright decoded frames.
    rotation: degrees (0, 90, 180, 270) the decoder's frames were turned counter-clockwise to be upright.
    mirrored: True when the frames were also mirrored left-right after that turn (a display matrix with a
        flip; a vertical flip reads as rotation 180 + mirrored).
    """

    frames: np.ndarray
    timestamps: np.ndarray
    duration: float
    fps: float | None
    source_size: tuple[int, int]
    rotation: int = 0
    mirrored: bool = False


@dataclass(frozen=True)
class AudioClip:
    """Mono audio at TVLT's rate.

    waveform: (L,) float32 mono (average of the source channels), nominally in [-1, 1].
    sampling_rate: always 44100. start / duration: the span taken from the source, seconds.
    clipped: True when the source went on past `start + duration` and was cut to `clip_seconds`.
    source_rate / source_channels: of the file's audio track or the array given.
    """

    waveform: np.ndarray
    sampling_rate: int
    start: float
    duration: float
    clipped: bool
    source_rate: int
    source_channels: int


def _av():
    import av  # lazy: the training machine has no PyAV but imports these dataclasses

    return av


# ---------------------------------------------------------------- opening and errors

def _looks_like_media(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(12)
    mpeg_sync = len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0  # mp3 / ADTS frames
    return head[4:8] == b"ftyp" or head.startswith(_MEDIA_MAGIC) or mpeg_sync


def _checked_path(path: str | os.PathLike) -> Path:
    file = Path(path)
    if not file.is_file():
        raise MediaNotFoundError(f"{file.name} was not found; upload the file again")
    if file.stat().st_size == 0:
        raise EmptyMediaError(f"{file.name} is empty (0 bytes); upload the file again")
    return file


def _not_media(file: Path) -> NotMediaError:
    return NotMediaError(
        f"{file.name} is not an audio, video or image file that can be read; "
        "upload an mp4, webm, mov, wav, mp3, m4a, ogg, flac, png or jpg file"
    )


def _unreadable(file: Path, reason: str) -> MediaError:
    if _looks_like_media(file):
        return CorruptMediaError(f"{file.name} is damaged or truncated ({reason}); re-export or re-upload it")
    return _not_media(file)


@contextmanager
def _open_container(file: Path) -> Iterator:
    """Open `file` with PyAV; FFmpeg errors while opening or decoding become typed `MediaError`s."""
    av = _av()
    try:
        container = av.open(str(file), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise _unreadable(file, str(getattr(error, "strerror", error))) from error
    with container:
        if container.format.name in _TEXT_FORMATS or not (container.streams.video or container.streams.audio):
            raise _not_media(file)  # text, subtitles, or a container holding neither audio nor video
        try:
            yield container
        except av.error.FFmpegError as error:
            raise CorruptMediaError(
                f"{file.name} is damaged or truncated ({error.strerror}); re-export or re-upload it"
            ) from error


def _container_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _check_length(name: str, seconds: float | None, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds is not None and seconds > max_seconds:
        raise MediaTooLongError(
            f"{name} is {seconds:.1f} s long, more than the {max_seconds:g} s limit; trim it or choose a shorter file"
        )


def _window(name: str, total: float | None, start: float | None, duration: float | None) -> tuple[float, float]:
    """(start, end) seconds of the requested span, clamped to the media; end is inf when the length is unknown."""
    begin = float(start or 0.0)
    if begin < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"start must be >= 0 and duration > 0, got start={start}, duration={duration}")
    end = begin + duration if duration is not None else float("inf")
    if total is not None:
        if begin >= total:
            raise EmptyMediaError(f"{name} is {total:.2f} s long, so nothing is left after start={begin:g} s")
        end = min(end, total)
    return begin, end


# ---------------------------------------------------------------- video

def load_video(
    path: str | os.PathLike,
    num_frames: int = NUM_FRAMES,
    start: float | None = None,
    duration: float | None = None,
    max_seconds: float | None = None,
) -> VideoClip:
    """Sample `num_frames` frames evenly over [start, start + duration) of a video (or load an image).

    Target times are the centres of `num_frames` equal segments of the window; for each, the decoder seeks
    to the keyframe before it and decodes forward to the frame shown at that time, so the cost grows with
    the frames sampled, not the video length. Consecutive targets that hit the same frame are kept once
    (a 1-frame video gives a 1-frame clip). The display matrix is applied (quarter turns and mirrors, the
    8 orientations phones and editors write; other angles are rounded to the nearest quarter turn); timing
    uses pts (variable frame rate safe). Images (png, jpg, ...) become 1-frame clips, EXIF orientation applied.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    file = _checked_path(path)
    if file.suffix.lower() in IMAGE_SUFFIXES:
        return _load_image(file)
    with _open_container(file) as container:
        stream = _video_stream(container, file.name)
        index_times, is_keyframe = _index_times(stream)
        if _container_seconds(container, stream) is None:  # e.g. a browser recording: no length, no index
            index_times, is_keyframe = _packet_times(container, stream)
        total = _video_seconds(container, stream, index_times)
        _check_length(file.name, total, max_seconds)
        begin, end = _window(file.name, total, start, duration)
        if end == float("inf"):
            raise CorruptMediaError(f"{file.name} does not say how long it is; re-export it as mp4 or webm")
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        targets = origin + begin + (np.arange(num_frames) + 0.5) * (end - begin) / num_frames
        keyframes = index_times[is_keyframe] if is_keyframe.any() else None
        frames = _frames_at(container, stream, targets, keyframes, file.name)
        fps = float(stream.average_rate) if stream.average_rate else None
        return _video_clip(frames, origin, end - begin, fps)


def _video_stream(container, name: str):
    av = _av()
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:  # cover art is not a video
            stream.thread_type = "AUTO"
            return stream
    raise NoVideoStreamError(f"{name} has no video track; upload a video file (mp4, webm, mov) or an image")


def _index_times(stream) -> tuple[np.ndarray, np.ndarray]:
    """Packet times in seconds from the container index and which are keyframes (dts: close to pts)."""
    entries = stream.index_entries or []
    stamps = np.asarray([entry.timestamp for entry in entries], dtype=np.float64) * float(stream.time_base)
    return stamps, np.asarray([entry.is_keyframe for entry in entries], dtype=bool)


def _packet_times(container, stream) -> tuple[np.ndarray, np.ndarray]:
    """Every packet's time in seconds and keyframe flag, read by demuxing without decoding (decoding seeks first).

    For files whose header states no length and whose index is missing or partial (browser MediaRecorder webm
    writes neither): the only way to know how long they are. Costs a read of the file, not a decode."""
    stamps, keys = [], []
    for packet in container.demux(stream):
        if packet.pts is not None:
            stamps.append(float(packet.pts * stream.time_base))
            keys.append(packet.is_keyframe)
    return np.asarray(stamps, dtype=np.float64), np.asarray(keys, dtype=bool)


def _video_seconds(container, stream, index_times: np.ndarray) -> float | None:
    """Stream length; the index wins when the header undercounts (seen with variable frame rate files)."""
    header = _container_seconds(container, stream)
    if index_times.size == 0:
        return header
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    last = float(index_times.max()) - origin + 1.0 / float(stream.average_rate or 25)
    return last if header is None else max(header, last)


class _FrameCursor:
    """Forward decoding from the last seek; `frame_at(t)` is the frame on screen at time t."""

    def __init__(self, container, stream):
        self._container, self._stream = container, stream
        self._frames = iter(())
        self.current = self.upcoming = None

    def seek(self, seconds: float) -> None:
        self._container.seek(int(seconds / self._stream.time_base), stream=self._stream, backward=True)
        self._frames = self._container.decode(self._stream)
        self.current = self.upcoming = None

    def position(self) -> float | None:
        frame = self.upcoming or self.current
        return None if frame is None else float(frame.time)

    def frame_at(self, seconds: float):
        if self.upcoming is None:
            self.upcoming = next(self._frames, None)
        while self.upcoming is not None and self.upcoming.time <= seconds + _FRAME_TIME_TOLERANCE:
            self.current, self.upcoming = self.upcoming, next(self._frames, None)
        return self.current or self.upcoming  # a target before the first frame gets the first frame


def _needs_seek(position: float | None, target: float, keyframes: np.ndarray | None) -> bool:
    if position is None or target < position:
        return True
    if keyframes is None:
        return target - position > SEEK_GAP_SECONDS
    return bool(np.any((keyframes > position) & (keyframes <= target)))


def _frames_at(container, stream, targets: np.ndarray, keyframes: np.ndarray | None, name: str) -> list:
    """Decoded frames shown at each target time (seconds, stream timeline), consecutive duplicates dropped."""
    cursor, picked = _FrameCursor(container, stream), []
    for target in targets:
        if _needs_seek(cursor.position(), target, keyframes):
            cursor.seek(target)
        frame = cursor.frame_at(target)
        if frame is None and not picked:  # header promises more than the file holds: start over
            cursor.seek(0.0)
            frame = cursor.frame_at(target)
        frame = frame if frame is not None else picked[-1] if picked else None
        if frame is None:
            raise CorruptMediaError(f"{name} has a video track but no frame could be decoded; re-export it")
        if not picked or frame.pts != picked[-1].pts:
            picked.append(frame)
    return picked


def _video_clip(frames: list, origin: float, duration: float, fps: float | None) -> VideoClip:
    linear = _display_linear(frames[0])
    arrays = _apply_display(np.stack([frame.to_ndarray(format="rgb24") for frame in frames]), linear)
    timestamps = np.asarray([float(frame.time) - origin for frame in frames], dtype=np.float64)
    mirrored = bool(round(np.linalg.det(linear)) < 0)
    turn = np.diag([-1, 1]) @ linear if mirrored else linear  # undo the mirror applied after the turn
    rotation = int(round(np.degrees(np.arctan2(turn[0, 1], turn[0, 0])))) % 360
    return VideoClip(np.ascontiguousarray(arrays), timestamps, duration, fps, arrays.shape[1:3], rotation, mirrored)


def _display_linear(frame) -> np.ndarray:
    """The display matrix's linear part as a signed permutation [[a, c], [b, d]] (ints), mapping a decoded
    pixel (x right, y down) to its displayed place: x' = a x + c y, y' = b x + d y (FFmpeg's convention)."""
    side_data = frame.side_data.get("DISPLAYMATRIX")
    if side_data is not None:
        m = np.frombuffer(bytes(side_data), dtype=np.int32)[:9].astype(np.float64)  # row-major 3x3
        linear = np.array([[m[0], m[3]], [m[1], m[4]]])
        unit = linear / max(np.abs(linear).max(), 1.0)
        rounded = np.round(unit)
        one_per_line = (np.abs(rounded).sum(axis=0) == 1).all() and (np.abs(rounded).sum(axis=1) == 1).all()
        if one_per_line and np.allclose(unit, rounded, atol=1e-3):
            return rounded.astype(int)
    quarter = int(round((frame.rotation or 0) / 90.0)) % 4  # no matrix, or an angle between quarter turns
    cos, sin = [(1, 0), (0, 1), (-1, 0), (0, -1)][quarter]
    return np.array([[cos, sin], [-sin, cos]])  # counter-clockwise turn in y-down coordinates


def _apply_display(frames: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) decoded frames -> displayed frames under `linear` (a signed permutation, see above)."""
    (a, c), (b, d) = linear
    if a == 0:  # quarter turn: x' comes from y and y' from x
        frames, flip_rows, flip_cols = frames.transpose(0, 2, 1, 3), b < 0, c < 0
    else:
        flip_rows, flip_cols = d < 0, a < 0
    frames = frames[:, ::-1] if flip_rows else frames
    return frames[:, :, ::-1] if flip_cols else frames


def _load_image(file: Path) -> VideoClip:
    from PIL import Image, ImageOps  # lazy like PyAV: only file decoding needs it

    try:
        with Image.open(file) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise _unreadable(file, str(error)) from error
    pixels = np.asarray(upright, dtype=np.uint8)[None]  # (1, H, W, 3)
    return VideoClip(pixels, np.zeros(1), 0.0, None, pixels.shape[1:3], 0)


# ---------------------------------------------------------------- audio

def load_audio(
    source: str | os.PathLike | np.ndarray,
    sampling_rate: int | None = None,
    start: float | None = None,
    duration: float | None = None,
    clip_seconds: float | None = MAX_AUDIO_SECONDS,
    max_seconds: float | None = None,
) -> AudioClip:
    """Mono 44.1 kHz float32 audio from a file (any container PyAV reads, or a video's audio track) or an array.

    source: a path, or an array of samples with `sampling_rate` (its rate, required for arrays):
        (L,) mono, or 2-D with channels on the shorter axis ((C, L) or (L, C), C <= 8); float in [-1, 1]
        or integer PCM (scaled by the dtype's full scale).
    start / duration: seconds of the source to take (default: from 0 to the end).
    clip_seconds: the span is cut to this (default ≈ 23.8 s = TVLT's 2048 spectrogram frames); None keeps all.
    max_seconds: sources longer than this raise `MediaTooLongError` (checked before decoding for files).
    Channels are averaged, then resampled with FFmpeg's resampler, for files and arrays alike.
    """
    if isinstance(source, (str, os.PathLike)):
        if sampling_rate is not None:
            raise ValueError("sampling_rate describes an array input; a file's rate is read from the file")
        return _load_audio_file(_checked_path(source), start, duration, clip_seconds, max_seconds)
    return _load_audio_array(source, sampling_rate, start, duration, clip_seconds, max_seconds)


def _span(name, total, start, duration, clip_seconds) -> tuple[float, float, bool]:
    """(begin, end, clipped) in source seconds; end may be inf for a file of unknown length."""
    begin, end = _window(name, total, start, duration)
    clipped = clip_seconds is not None and end - begin > clip_seconds
    return begin, min(end, begin + clip_seconds) if clipped else end, clipped


def _load_audio_file(file, start, duration, clip_seconds, max_seconds) -> AudioClip:
    with _open_container(file) as container:
        if not container.streams.audio:
            raise NoAudioStreamError(f"{file.name} has no audio track; upload an audio file to go with it")
        stream = container.streams.audio[0]
        total = _container_seconds(container, stream)
        _check_length(file.name, total, max_seconds)
        begin, end, clipped = _span(file.name, total, start, duration, clip_seconds)
        planar, rate, first_time = _decode_planar(container, stream, begin, end, max_seconds, file.name)
    skip = max(int(round((begin - first_time) * rate)), 0)  # decoding starts at the packet before `begin`
    keep = planar[:, skip:] if end == float("inf") else planar[:, skip : skip + int(round((end - begin) * rate))]
    if keep.shape[1] == 0:
        raise EmptyMediaError(f"{file.name} has an audio track with no samples in the requested span")
    clipped = clipped or (clip_seconds is not None and keep.shape[1] > clip_seconds * rate)
    keep = keep[:, : int(round(clip_seconds * rate))] if clip_seconds is not None else keep
    return _audio_clip(keep, rate, begin, clipped)


def _decode_planar(container, stream, begin, end, max_seconds, name) -> tuple[np.ndarray, int, float]:
    """Decode [begin, end) (+ up to a packet before) at the native rate: ((C, n) float32, rate, first time)."""
    av = _av()
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if begin > 0:
        container.seek(int((origin + begin) / stream.time_base), stream=stream, backward=True)
    to_float = av.AudioResampler(format="fltp")  # sample format only; layout and rate kept
    chunks, first_time, rate = [], None, stream.rate
    for frame in container.decode(stream):
        time = float(frame.time) - origin if frame.time is not None else 0.0
        first_time = time if first_time is None else first_time
        if time >= end:
            break
        if max_seconds is not None and time > max_seconds:
            raise MediaTooLongError(f"{name} is longer than the {max_seconds:g} s limit; trim it")
        rate = frame.sample_rate
        chunks.extend(converted.to_ndarray() for converted in to_float.resample(frame))
    chunks.extend(converted.to_ndarray() for converted in to_float.resample(None))
    if not chunks:
        raise EmptyMediaError(f"{name} has an audio track with no samples; upload a recording with sound")
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), int(rate), first_time or 0.0


def _load_audio_array(array, sampling_rate, start, duration, clip_seconds, max_seconds) -> AudioClip:
    planar = as_planar_audio(array)
    if sampling_rate is None or int(sampling_rate) != sampling_rate or sampling_rate <= 0:
        raise InvalidArrayError(f"the audio array needs its sampling_rate in Hz (a positive int), got {sampling_rate}")
    rate = int(sampling_rate)
    total = planar.shape[1] / rate
    _check_length("the audio array", total, max_seconds)
    begin, end, clipped = _span("the audio array", total, start, duration, clip_seconds)
    return _audio_clip(planar[:, int(round(begin * rate)) : int(round(end * rate))], rate, begin, clipped)


def as_planar_audio(array) -> np.ndarray:
    """Validate an audio array and return it as (C, L) float32 in [-1, 1] full scale; raises InvalidArrayError."""
    samples = np.asarray(array)
    if samples.dtype.kind not in "fiu" or samples.dtype.itemsize > 8:
        raise InvalidArrayError(f"audio arrays must hold real numbers, got dtype {samples.dtype}")
    if samples.ndim == 1:
        samples = samples[None]
    elif samples.ndim == 2:
        samples = samples if samples.shape[0] <= samples.shape[1] else samples.T  # channels on the short axis
        if samples.shape[0] > 8:
            raise InvalidArrayError(f"audio array shape {np.shape(array)} has no channel axis of at most 8")
    else:
        raise InvalidArrayError(f"audio arrays must be (L,), (C, L) or (L, C), got shape {samples.shape}")
    if samples.shape[1] == 0:
        raise EmptyMediaError("the audio array is empty (0 samples); record or upload some audio")
    if samples.dtype.kind in "iu":
        info = np.iinfo(samples.dtype)
        middle = (int(info.max) + int(info.min) + 1) / 2  # 0 for signed, 128 for uint8
        return ((samples.astype(np.float64) - middle) / (info.max - middle + 1)).astype(np.float32)
    if not np.isfinite(samples).all():
        raise InvalidArrayError(f"the audio array has {int((~np.isfinite(samples)).sum())} NaN or infinite samples")
    return samples.astype(np.float32)


def _audio_clip(planar: np.ndarray, rate: int, begin: float, clipped: bool) -> AudioClip:
    mono = resample_to_model_rate(planar.mean(axis=0), rate)
    return AudioClip(mono, SAMPLING_RATE, begin, planar.shape[1] / rate, clipped, rate, planar.shape[0])


def resample_to_model_rate(mono: np.ndarray, rate: int) -> np.ndarray:
    """(L,) float32 at `rate` -> (≈ L * 44100 / rate,) float32 at 44.1 kHz with FFmpeg's resampler (any rate)."""
    if rate == SAMPLING_RATE:
        return np.ascontiguousarray(mono, dtype=np.float32)
    av = _av()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono, dtype=np.float32)[None], format="flt", layout="mono")
    frame.sample_rate, frame.pts = rate, 0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLING_RATE)
    chunks = [out.to_ndarray()[0] for out in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(chunks).astype(np.float32, copy=False)


# ---------------------------------------------------------------- writing

def save_clip(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    waveform: np.ndarray | None = None,
    sampling_rate: int = SAMPLING_RATE,
) -> Path:
    """Write an mp4 (H.264 yuv420p + AAC mono) from frames (T, H, W, 3) uint8 and an optional (L,) float waveform.

    Odd heights/widths are padded by one replicated row/column (yuv420p needs even sizes).
    """
    frames = _even_sized(_checked_frames(frames))
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    mono = None if waveform is None else as_planar_audio(waveform).mean(axis=0)
    av, file = _av(), Path(path)
    with av.open(str(file), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.options = {"crf": "18"}
        audio = None if mono is None else container.add_stream("aac", rate=sampling_rate, layout="mono")
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            _encode_audio(container, audio, mono, sampling_rate)
    return file


def _encode_audio(container, stream, mono: np.ndarray, rate: int) -> None:
    av = _av()
    for offset in range(0, len(mono), _AUDIO_FRAME_SAMPLES):
        chunk = np.ascontiguousarray(mono[offset : offset + _AUDIO_FRAME_SAMPLES])[None]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, offset
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _checked_frames(frames) -> np.ndarray:
    array = np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise InvalidArrayError(f"frames must be (T, H, W, 3) uint8 with T >= 1, got {array.dtype} {array.shape}")
    return array


def _even_sized(frames: np.ndarray) -> np.ndarray:
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else frames
