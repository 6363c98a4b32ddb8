"""Time from a clip to every view of the app, on the bundled model and on a tvlt-base-shaped random model.

    python benchmarks/bench_app.py                  # both models, a generated 10 s clip
    python benchmarks/bench_app.py --models bundled --seconds 10 --repeats 2 --json out.json

"first view" = decode the clip + preprocess + the Patches view (what a visitor waits for after "Load clip").
Every other view is timed on the already loaded clip, the way the app reuses it. Times include drawing the
figures / images to PNG (what gradio sends); model loading is reported apart. Targets (2-core CPU):
first view <= 3 s on the bundled model, <= 15 s on the base-shaped one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components import settings  # noqa: E402  (first: temp dir, analytics off)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

TARGETS = {"bundled": 3.0, "base": 15.0}


def make_clip(path: Path, seconds: float, size=(240, 320), fps: int = 25) -> Path:
    """A moving square over a gradient with a rising tone (H.264 + AAC), like a short recorded clip."""
    from tvlt import media

    T = int(seconds * fps)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    base = np.stack([x * 255 // size[1], y * 255 // size[0], np.full_like(x, 90)], -1).astype(np.uint8)
    frames = np.repeat(base[None], T, axis=0)
    for i in range(T):
        c = int(10 + i * (size[1] - 60) / T)
        frames[i, 80:140, c : c + 40] = (250, 240, 30)
    t = np.arange(int(seconds * 44100)) / 44100
    wave = (0.3 * np.sin(2 * np.pi * (220 + 40 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    return media.save_clip(path, frames, fps, wave, 44100)


def random_models(root: Path, config, name: str) -> tuple[Path, Path]:
    from tvlt.modeling import TvltForAudioVisualClassification, TvltForPreTraining

    import dataclasses

    pre, sent = root / f"{name}-pretrain", root / f"{name}-sentiment"
    torch.manual_seed(0)
    TvltForPreTraining(dataclasses.replace(config, extra={"random_init": True})).save_pretrained(pre)
    TvltForAudioVisualClassification(dataclasses.replace(config, num_labels=1, loss_type="regression",
                                                         extra={"random_init": True})).save_pretrained(sent)
    return pre, sent


def render(outputs) -> None:
    """Encode what gradio would send: Figures and images as PNG."""
    for item in outputs if isinstance(outputs, (tuple, list)) else [outputs]:
        if isinstance(item, Figure):
            item.savefig(io.BytesIO(), format="png")
        elif isinstance(item, np.ndarray) and item.ndim == 3:
            Image.fromarray(item).save(io.BytesIO(), format="png")
        elif isinstance(item, list):
            render(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], np.ndarray):
            render([item[0]])


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    render(out)
    return out, time.perf_counter() - start


def bench_model(name: str, pre: Path, sent: Path, clip: Path, seconds: float, examples: dict, repeats: int) -> dict:
    import app
    from components import attention_view, inputs, mae_view, model_view, patches, retrieval_view, sentiment_view

    start = time.perf_counter()
    demo = app.build_demo(pre, sent, examples=examples)
    load_s = time.perf_counter() - start
    ctx = demo.ctx
    cfg = ctx.registry.default.config
    heard = cfg.spectrogram_length * 512 / 44100
    results: dict[str, list[float]] = {}

    def record(view: str, value: float) -> None:
        results.setdefault(view, []).append(value)

    for _ in range(repeats):
        (key, _), t_load = timed(inputs.load_clip, ctx, str(clip), None, 0.0, seconds, "default", None)
        _, t_patches = timed(patches.patches_view, ctx, key, "default")
        record("load clip (decode + preprocess)", t_load)
        record("patches", t_patches)
        record("FIRST VIEW (load + patches)", t_load + t_patches)
        record("masking & MAE (+ Griffin-Lim)", timed(mae_view.run_mae, ctx, key, "default", cfg.pixel_mask_ratio,
                                                     "random", cfg.audio_mask_ratio, "time", 0)[1])
        record("attention (layer + rollout)", timed(attention_view.attention_view, ctx, key, "default",
                                                   cfg.num_hidden_layers - 1, "mean of heads")[1])
        record("cross-modal audio -> video", timed(attention_view.audio_to_video, ctx, key, "default",
                                                  cfg.num_hidden_layers - 1, "mean of heads", 0.0, min(1.0, heard))[1])
        record("cross-modal video -> audio", timed(attention_view.video_to_audio, ctx, key, "default",
                                                  cfg.num_hidden_layers - 1, "mean of heads", 0, 1, 1, 1)[1])
        ctx.example_clips.clear()  # decode the gallery every repeat (the first visitor's cost)
        record(f"retrieval ({1 + len(examples)} videos, gallery decoded)",
               timed(retrieval_view.retrieve, ctx, key, "default", [], None)[1])
        record("retrieval (gallery cached)", timed(retrieval_view.retrieve, ctx, key, "default", [], None)[1])
        if examples:
            record("swap experiment", timed(retrieval_view.swap_audio, ctx, key, "default", [], "current clip",
                                            next(iter(examples)))[1])
        if ctx.registry.sentiment is not None:
            record("sentiment (3 conditions)", timed(sentiment_view.sentiment_view, ctx, key, "default")[1])
        record("model info", timed(model_view.model_info, ctx, "default")[1])
        ctx.clips.drop(key)
    params = sum(p.numel() for p in ctx.registry.default.model.parameters())
    return {"model": name, "source": str(pre), "parameters": params, "model_load_s": load_s,
            "views_s": {k: min(v) for k, v in results.items()}, "all_runs_s": results,
            "target_first_view_s": TARGETS.get(name)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["bundled", "base"], choices=["bundled", "base"])
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length and analysis window")
    parser.add_argument("--repeats", type=int, default=1, help="runs per model; the table shows the fastest")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from components import inputs
    from tvlt.config import TvltConfig

    root = Path(tempfile.mkdtemp(prefix="bench-", dir=settings.TEMP_ROOT))
    clip = make_clip(root / "clip10s.mp4", args.seconds)
    examples = inputs.find_examples()
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
                         f"torch {torch.__version__}, {torch.get_num_threads()} threads",
              "clip": f"{args.seconds:g} s, 320x240 @ 25 fps, H.264 + AAC", "examples": len(examples), "runs": []}
    for name in args.models:
        if name == "bundled":
            if settings.DEFAULT_PRETRAIN_DIR.is_dir():
                pre, sent = settings.DEFAULT_PRETRAIN_DIR, settings.DEFAULT_SENTIMENT_DIR
            else:
                print("assets/tvlt-small-pretrain is missing: timing a random TvltConfig.small() instead", flush=True)
                pre, sent = random_models(root, TvltConfig.small(), "small")
        else:
            pre, sent = random_models(root, TvltConfig.base(), "base")
        print(f"== {name}: {pre}", flush=True)
        run = bench_model(name, pre, sent, clip, args.seconds, examples, args.repeats)
        report["runs"].append(run)
        print_run(run)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps({"machine": report["machine"], "clip": report["clip"]}))


def print_run(run: dict) -> None:
    target = run["target_first_view_s"]
    print(f"{run['model']}: {run['parameters'] / 1e6:.1f} M parameters, model load {run['model_load_s']:.2f} s")
    print("| view | seconds |\n|---|---:|")
    for view, seconds in run["views_s"].items():
        flag = f" (target <= {target:g} s)" if view.startswith("FIRST") and target else ""
        print(f"| {view} | {seconds:.2f}{flag} |")
    print(flush=True)


if __name__ == "__main__":
    main()
