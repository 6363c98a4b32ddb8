"""Model benchmarks on this CPU, every ratio against a reference measured in the same run.

    /work/main/.venv-ref/bin/python benchmarks/bench_model.py            # venv that also has transformers==4.40.2
    python benchmarks/bench_model.py --quick --json out.json              # no transformers: ours only

1. fp32 forward of `TvltModel`, ours vs transformers 4.40.2 (same weights: transformers loads what our
   `save_pretrained` wrote), at tvlt-base shape (8 frames x 224 px, 1024 x 128 spectrogram: 2081 tokens) and
   smaller ones. Targets: >= 1.3x at base shape, never slower at the smaller ones.
2. forward with 75 % of the video tokens hidden (`mask_pixel=True`) vs none.
3. peak memory of one base-shaped forward (fresh process per mode, RSS high-water mark above the RSS before the
   call): plain, all layers' attention as transformers returns it, and ours one layer at a time (rollout).
4. fast CPU mode (`tvlt.quantize_for_cpu`, dynamic int8 Linear): speed-up over our fp32 and over transformers
   (target >= 2x transformers), and how much it moves outputs: random base-shaped heads, and the bundled models
   on their example clips (matching logits, retrieval ranking, sentiment scores).
Timings are medians of interleaved runs (a, b, a, b, ...) so load drift hits both; the load average is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tvlt  # noqa: E402
from tvlt.config import TvltConfig  # noqa: E402

SHAPES = {  # name -> (config, batch size)
    "base (8x224 px, 1024 spec)": (TvltConfig.base(spectrogram_length=1024), 1),
    "base width, 4 frames, 512 spec": (TvltConfig.base(num_frames=4, spectrogram_length=512), 1),
    "base width, 1 frame, 128 spec": (TvltConfig.base(num_frames=1, spectrogram_length=128), 1),
    "bundled small (8x96 px, 256 spec)": (TvltConfig.small(), 1),
    "bundled small, batch 16": (TvltConfig.small(), 16),
}
BASE = next(iter(SHAPES))
MEMORY_MODES = ("plain", "all layers (output_attentions)", "one layer at a time (rollout)", "transformers all layers")
EXAMPLES = ROOT / "assets" / "examples"


def try_transformers():
    try:
        import transformers
    except ImportError:
        return None
    transformers.logging.set_verbosity_error()
    return transformers


def inputs_for(config: TvltConfig, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded pixel_values (B, T, 3, H, W) and audio_values (B, 1, S, F) in the model's value ranges."""
    g = torch.Generator().manual_seed(seed)
    size = config.image_size
    pixels = torch.rand(batch, config.num_frames, 3, size, size, generator=g) * 2 - 1
    audio = torch.rand(batch, 1, config.spectrogram_length, config.frequency_length, generator=g) * 2 - 1
    return pixels, audio


def interleaved_times(functions: dict[str, Callable[[], object]], budget_s: float) -> dict[str, list[float]]:
    """Seconds of each function over interleaved rounds (after one warm-up each), 5 to 25 rounds."""
    first = {}
    for name, function in functions.items():
        function()
        start = time.perf_counter()
        function()
        first[name] = time.perf_counter() - start
    rounds = int(np.clip(budget_s / max(sum(first.values()), 1e-3), 5, 25))
    times = {name: [first[name]] for name in functions}
    for _ in range(rounds - 1):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(slow: list[float], fast: list[float]) -> tuple[float, float, float]:
    """Median and quartiles of the per-round ratio slow/fast: the same round saw the same machine load."""
    ratios = np.asarray(slow) / np.asarray(fast)
    return tuple(float(v) for v in np.percentile(ratios, [50, 25, 75]))


def transformers_twin(transformers, model: torch.nn.Module, directory: str) -> torch.nn.Module:
    """transformers' class of the same name, loaded from what our save_pretrained writes (same weights)."""
    model.save_pretrained(directory)
    return getattr(transformers, type(model).__name__).from_pretrained(directory).eval()


def random_model(cls, config: TvltConfig, seed: int = 0):
    torch.manual_seed(seed)
    return cls(config).eval()


def bench_forward(transformers, quick: bool) -> list[dict]:
    rows = []
    shapes = {BASE: SHAPES[BASE]} if quick else SHAPES
    for name, (config, batch) in shapes.items():
        ours = random_model(tvlt.TvltModel, config)
        fast = tvlt.quantize_for_cpu(ours)
        pixels, audio = inputs_for(config, batch)
        functions = {"ours": lambda: ours(pixels, audio), "int8": lambda: fast(pixels, audio)}
        if name == BASE:
            functions["ours, 75% video hidden"] = lambda: ours(pixels, audio, mask_pixel=True)
        row: dict = {"shape": name, "tokens": tvlt.TokenLayout.from_config(config).num_tokens, "batch": batch}
        with tempfile.TemporaryDirectory() as directory, torch.inference_mode():
            if transformers is not None:
                theirs = transformers_twin(transformers, ours, directory)
                functions["transformers"] = lambda: theirs(pixels, audio)
                difference = (theirs(pixels, audio).last_hidden_state - ours(pixels, audio).last_hidden_state)
                row["parity_max_abs"] = difference.abs().max().item()
            times = interleaved_times(functions, budget_s=30.0 if name == BASE else 12.0)
        row.update({key: float(np.median(values)) for key, values in times.items()})
        row["int8_speedup"] = paired_ratio(times["ours"], times["int8"])
        if transformers is not None:
            row["speedup"] = paired_ratio(times["transformers"], times["ours"])
            row["int8_vs_transformers"] = paired_ratio(times["transformers"], times["int8"])
        rows.append(row)
    return rows


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory_mode(mode: str) -> dict:
    """Run in a fresh process: peak bytes above the RSS before one base-shaped forward in `mode`."""
    config, batch = SHAPES[BASE]
    pixels, audio = inputs_for(config, batch)
    if mode == "transformers all layers":
        transformers = try_transformers()
        with tempfile.TemporaryDirectory() as directory:
            model = transformers_twin(transformers, random_model(tvlt.TvltModel, config), directory)
        call = lambda: model(pixels, audio, output_attentions=True)  # noqa: E731
    else:
        model = random_model(tvlt.TvltModel, config)
        call = {
            "plain": lambda: model(pixels, audio),
            "all layers (output_attentions)": lambda: model(pixels, audio, output_attentions=True),
            "one layer at a time (rollout)": lambda: tvlt.attention_rollout(model, pixels, audio),
        }[mode]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the RSS high-water mark (VmHWM), so set-up peaks do not count
    before = _status_kib("VmRSS")
    with torch.inference_mode():
        output = call()
    peak = _status_kib("VmHWM")
    del output
    return {"mode": mode, "peak_above_start_gb": (peak - before) * 1024 / 1e9}


def bench_memory(transformers) -> list[dict]:
    rows = []
    for mode in MEMORY_MODES:
        if mode.startswith("transformers") and transformers is None:
            continue
        done = subprocess.run([sys.executable, __file__, "--memory-mode", mode], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"memory mode {mode!r} failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def _random_head_changes() -> dict:
    """Max |int8 - fp32| of base-shaped random heads' logits (and the fp32 logits' spread, for scale)."""
    config, _ = SHAPES[BASE]
    pixels, audio = inputs_for(config, 2, seed=1)
    result = {}
    heads = {
        "matching_logits": (
            tvlt.TvltForPreTraining, config, lambda m: m.matching_head(m.tvlt(pixels, audio).last_hidden_state)
        ),
        "classifier_logits (6 classes)": (
            tvlt.TvltForAudioVisualClassification, dataclasses.replace(config, num_labels=6),
            lambda m: m(pixels, audio).logits,
        ),
    }
    for name, (cls, cfg, logits) in heads.items():
        model = random_model(cls, cfg)
        fast = tvlt.quantize_for_cpu(model)
        with torch.inference_mode():
            exact, approx = logits(model), logits(fast)
        result[name] = {"max_abs_change": (approx - exact).abs().max().item(), "fp32_std": exact.std().item()}
    return result


def _bundled_inputs(kind: str, processor) -> tuple[torch.Tensor, torch.Tensor]:
    clips = sorted(EXAMPLES.glob(f"{kind}_test_*.mp4"))
    videos = [tvlt.load_video(path, num_frames=processor.image_processor.num_frames) for path in clips]
    sounds = [tvlt.load_audio(path) for path in clips]
    inputs = processor(images=videos, audio=sounds, return_tensors="pt")
    return inputs.pixel_values, inputs.audio_values


def _bundled_changes() -> dict:
    """The bundled models on their example clips: how int8 moves matching logits, rankings and sentiment."""
    pretrain_dir, sentiment_dir = ROOT / "assets" / "tvlt-small-pretrain", ROOT / "assets" / "tvlt-small-sentiment"
    processor = tvlt.TvltProcessor.from_pretrained(pretrain_dir)
    model = tvlt.TvltForPreTraining.from_pretrained(pretrain_dir)
    fast = tvlt.quantize_for_cpu(model)
    pixels, audio = _bundled_inputs("scene", processor)
    N = pixels.shape[0]
    with torch.inference_mode():  # every audio against every video: (N audio, N video)
        grid = [tvlt.rank_videos(m, audio[i : i + 1], pixels).logits for m in (model, fast) for i in range(N)]
    exact, approx = torch.stack(grid[:N]), torch.stack(grid[N:])
    sentiment = tvlt.TvltForAudioVisualClassification.from_pretrained(sentiment_dir)
    pixels, audio = _bundled_inputs("face", processor)
    with torch.inference_mode():
        score, score_fast = sentiment(pixels, audio).logits, tvlt.quantize_for_cpu(sentiment)(pixels, audio).logits
    return {
        "matching_logits": {"max_abs_change": (approx - exact).abs().max().item(), "fp32_std": exact.std().item()},
        "audio->video top-1 agreement": (approx.argmax(1) == exact.argmax(1)).float().mean().item(),
        "clips": N,
        "sentiment_score": {"max_abs_change": (score_fast - score).abs().max().item(), "fp32_std": score.std().item()},
    }


def bench_fast_outputs() -> dict:
    return {"random base-shaped heads": _random_head_changes(), "bundled models": _bundled_changes()}


def _ratio(quartiles: tuple[float, float, float]) -> str:
    median, low, high = quartiles
    return f"{median:4.2f}x [{low:4.2f}-{high:4.2f}]"


def print_report(forward: list[dict], memory: list[dict], fast: Optional[dict], transformers) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.2f}")
    print(f"transformers: {transformers.__version__ if transformers else 'not installed (ours only)'}\n")
    print("fp32 forward (TvltModel): median seconds; speed-ups are medians of per-round ratios [quartiles]")
    for row in forward:
        line = f"  {row['shape']:<34} {row['tokens']:>5} tok x{row['batch']:<3} ours {row['ours']:6.3f}"
        if "speedup" in row:
            parity = row["parity_max_abs"]
            line += f"  transformers {row['transformers']:6.3f}: {_ratio(row['speedup'])} (parity {parity:.0e})"
        line += f" | int8 {row['int8']:6.3f}: {_ratio(row['int8_speedup'])} ours"
        if "speedup" in row:
            line += f", {_ratio(row['int8_vs_transformers'])} transformers"
        print(line)
        if "ours, 75% video hidden" in row:
            masked = row["ours, 75% video hidden"]
            print(f"  {'':<34} 75% of the video hidden: {masked:6.3f} s, {row['ours'] / masked:4.2f}x faster than none")
    print("\npeak memory above the start of one base-shaped forward (fresh process each):")
    for row in memory:
        print(f"  {row['mode']:<36} {row['peak_above_start_gb']:6.2f} GB")
    if fast is not None:
        print("\nint8 fast mode, output changes (max |int8 - fp32|, with the fp32 values' std for scale):")
        print(json.dumps(fast, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="base shape only, no bundled-model checks")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--memory-mode", help=argparse.SUPPRESS)  # internal: one memory measurement
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.memory_mode:
        print(json.dumps(memory_mode(args.memory_mode)))
        return
    transformers = try_transformers()
    forward = bench_forward(transformers, args.quick)
    memory = bench_memory(transformers)
    fast = None if args.quick else bench_fast_outputs()
    print_report(forward, memory, fast, transformers)
    if args.json:
        args.json.write_text(json.dumps({"forward": forward, "memory": memory, "fast": fast}, indent=2))


if __name__ == "__main__":
    main()
