"""Media benchmarks: our log-mel vs transformers' (when installed), and 8-frame seek sampling vs full decode.

    /work/main/.venv-ref/bin/python benchmarks/bench_media.py
Log-mel: medians of interleaved runs (ours at torch's default thread count and at 1 thread, transformers'
numpy extractor with OpenBLAS held to 1 thread via threadpoolctl), with the ratio and the load average.
On a CPU shared with other work (load above the core count), multi-threaded timings are erratic: OpenMP
threads wait on descheduled siblings; the 1-thread figures are the steady like-for-like comparison.
The 10-minute 320x240 h264 test video (25 fps, keyframe every 2 s) is generated once into /tmp and reused.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tvlt import audio, media  # noqa: E402

LONG_VIDEO = Path("/tmp/tvlt_bench/long_10min_320x240.mp4")
REPEATS = 5
LOG_MEL_REPEATS = 15


def best_of(function, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved_medians(functions: dict, repeats: int = LOG_MEL_REPEATS) -> dict:
    """Median seconds of each (torch threads, function), runs interleaved (a, b, c, a, b, c, ...) so that
    load drift hits all alike; the thread count is set outside the timed region."""
    times = {name: [] for name in functions}
    default_threads = torch.get_num_threads()
    for _ in range(repeats):
        for name, (threads, function) in functions.items():
            torch.set_num_threads(threads)
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    torch.set_num_threads(default_threads)
    return {name: float(np.median(values)) for name, values in times.items()}


@contextmanager
def numpy_blas_single_threaded():
    """Limit numpy's OpenBLAS to 1 thread (transformers' np.dot) when threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "default (threadpoolctl not installed)"
        return
    with threadpool_limits(limits={"openblas": 1}):
        yield 1


def bench_log_mel() -> None:
    # numpy's OpenBLAS threads (transformers' np.dot) spin against torch's OpenMP threads on a small
    # machine and make both erratic: limit OpenBLAS to one thread before its first call
    with numpy_blas_single_threaded() as blas:
        _bench_log_mel(blas)


def _bench_log_mel(blas) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(20 * audio.SAMPLING_RATE) / audio.SAMPLING_RATE
    wave = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    ours = audio.log_mel_spectrogram_np(wave)
    threads = torch.get_num_threads()
    functions = {  # name: (torch threads, call)
        f"ours, torch {threads} threads (default)": (threads, lambda: audio.log_mel_spectrogram_np(wave)),
        "ours, torch 1 thread": (1, lambda: audio.log_mel_spectrogram_np(wave)),
    }
    try:
        from transformers import TvltFeatureExtractor
    except ImportError:
        TvltFeatureExtractor = None
    if TvltFeatureExtractor is not None:
        extractor = TvltFeatureExtractor()
        theirs = extractor(wave, sampling_rate=44100, return_tensors="np")["audio_values"][0, 0]
        # its per-frame numpy loop ignores torch's threads; np.dot's OpenBLAS is held to 1 (see bench_log_mel)
        call = lambda: extractor(wave, sampling_rate=44100, return_tensors="np")  # noqa: E731
        functions["transformers 4.40.2 (numpy)"] = (1, call)
    medians = interleaved_medians(functions)
    print(f"log-mel, 20 s @ 44.1 kHz -> {ours.shape}, median of {LOG_MEL_REPEATS} interleaved runs "
          f"({os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}, numpy BLAS threads: {blas}):")
    reference = medians.get("transformers 4.40.2 (numpy)")
    for name, seconds in medians.items():
        ratio = f" -> {reference / seconds:.1f}x transformers" if reference and "transformers" not in name else ""
        print(f"  {name:38s} {seconds * 1e3:7.1f} ms{ratio}")
    if reference is None:
        print("  transformers not installed: no comparison")
        return
    diff = np.abs(theirs[: len(ours)] - ours[: audio.MAX_SPECTROGRAM_FRAMES]).max()
    print(f"  max abs diff ours vs transformers {diff:.2e}")


def make_long_video() -> Path:
    if LONG_VIDEO.exists():
        return LONG_VIDEO
    import av

    LONG_VIDEO.parent.mkdir(parents=True, exist_ok=True)
    partial = LONG_VIDEO.with_suffix(".partial.mp4")
    y, x = np.mgrid[0:240, 0:320]
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"g": "50", "keyint_min": "50", "sc_threshold": "0", "preset": "ultrafast"}
        for index in range(10 * 60 * 25):
            pixels = np.stack([(x + index) % 256, (y + 2 * index) % 256, np.full_like(x, index % 256)], -1)
            frame = av.VideoFrame.from_ndarray(pixels.astype(np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    partial.rename(LONG_VIDEO)
    return LONG_VIDEO


def decode_every_frame(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # same decoder settings as load_video
        return sum(1 for _ in container.decode(stream))


def bench_video() -> None:
    path = make_long_video()
    seek_s = best_of(lambda: media.load_video(path, num_frames=8), repeats=3)
    clip = media.load_video(path, num_frames=8)
    full_s = best_of(lambda: decode_every_frame(path), repeats=1)
    print(f"8 frames from a 10-min 320x240 h264 video (keyframe every 2 s): seek {seek_s * 1e3:.0f} ms, "
          f"decode all {decode_every_frame(path)} frames {full_s * 1e3:.0f} ms -> seek = {seek_s / full_s:.1%} of full")
    print(f"  sampled at {np.round(clip.timestamps, 2).tolist()} s")


def bench_resample() -> None:
    wave = np.random.default_rng(1).standard_normal(20 * 48000).astype(np.float32)
    torch_s = best_of(lambda: audio.resample_np(wave, 48000, 44100))
    ffmpeg_s = best_of(lambda: media.resample_to_model_rate(wave, 48000))
    print(f"resample 20 s 48 kHz -> 44.1 kHz: torch polyphase {torch_s * 1e3:.1f} ms, FFmpeg swr {ffmpeg_s * 1e3:.1f} ms")


if __name__ == "__main__":
    bench_log_mel()  # measures ours at the default thread count and at 1 thread
    torch.set_num_threads(1)  # steadier on a busy CPU for the rest
    bench_resample()
    bench_video()
