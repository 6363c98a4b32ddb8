"""Procedural audiovisual corpus for training and evaluating the bundled TVLT.

Two kinds of clip, both rendered in torch, batched, on any device:
- scenes (`scene_batch`, `timing_twins`): 1-3 objects whose look sets their sound, each visible
  exactly while it sounds (see `tvlt.train.scenes`); for MAE and audio<->video retrieval.
- talking faces (`face_batch`): face and voice carry separate valences, label = their sum in
  [-3, 3] (see `tvlt.train.faces`); for sentiment regression.
Clip i of split s is a pure function of (SPLIT_SEEDS[s], i): identical in any batch, any order.
A clip lasts 256 * 512 / 44100 s: its waveform has exactly 256 * 512 samples, so
`tvlt.audio.log_mel_spectrogram` gives exactly 256 frames (TVLT's extractor: L // 512 frames).

Throughput: `python -m tvlt.train.corpus --bench --device cpu --batch 64 --batches 5`.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from tvlt.train import faces, scenes, synth
from tvlt.train.synth import DEFAULT_DURATION, FACE_STREAM, SAMPLING_RATE, SCENE_STREAM, SPLIT_SEEDS, ClipSpec

__all__ = ["ClipBatch", "SPLIT_SEEDS", "ClipSpec", "scene_batch", "scene_variants", "timing_twins", "face_batch",
           "to_model_inputs", "render_examples"]

SCENE_BACKGROUND_RANGE = (0.15, 0.45)  # darkish, so the saturated objects stand out
FACE_BACKGROUND_RANGE = (0.15, 0.5)
MAX_TWIN_TRIES = 1000
CPU_CHUNK = 16  # clips rendered at once on CPU: keeps temporaries below glibc's mmap threshold
GPU_CHUNK = 1024  # clips rendered at once elsewhere: ~10 MB of temporaries per clip
VARIANT_ATTRIBUTES = {"shape": scenes.SHAPES, "colour": scenes.COLOURS}  # what `scene_variants` can change


@dataclass
class ClipBatch:
    """A batch of clips, all tensors on one device."""

    frames: torch.Tensor  # (B, T, H, W, 3) uint8
    waveform: torch.Tensor  # (B, L) float32 in [-1, 1] at the clip's sampling rate
    labels: torch.Tensor | None  # (B,) float32 sentiment in [-3, 3] for faces; None for scenes
    meta: dict[str, torch.Tensor]  # per-clip parameters, first axis B (see scene/face docstrings)


def _spec(image_size: int, num_frames: int, duration: float, sampling_rate: int) -> ClipSpec:
    return ClipSpec(image_size=image_size, num_frames=num_frames, duration=duration, sampling_rate=sampling_rate)


def concat(parts: list[ClipBatch]) -> ClipBatch:
    """Clips of several batches, in order."""
    if len(parts) == 1:
        return parts[0]
    labels = None if parts[0].labels is None else torch.cat([part.labels for part in parts])
    meta = {name: torch.cat([part.meta[name] for part in parts]) for name in parts[0].meta}
    return ClipBatch(torch.cat([part.frames for part in parts]), torch.cat([part.waveform for part in parts]),
                     labels, meta)


def _chunked(render: Callable[..., ClipBatch], spec: ClipSpec, *rows: torch.Tensor) -> ClipBatch:
    """render(*row_chunks, spec) over the batch chunks of `_row_chunks`."""
    return concat([render(*chunk, spec) for chunk in _row_chunks(*rows)])


def _row_chunks(*rows: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
    """The rows (B, ...) split alike into chunks of CPU_CHUNK (CPU) or GPU_CHUNK (other devices) clips."""
    size = CPU_CHUNK if rows[0].device.type == "cpu" else GPU_CHUNK
    return zip(*(r.split(size) for r in rows))


def _scene_parts(look_u: torch.Tensor, timing_u: torch.Tensor, spec: ClipSpec
                 ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Objects' look, their timing and the background canvas (B, T, H, W, 3) float of scenes from uniforms."""
    look = scenes.scene_look(look_u, spec)
    timing = scenes.scene_timing(look_u, timing_u, spec)
    canvas = synth.background(look_u[:, scenes.BACKGROUND_COLUMNS], spec.image_size, SCENE_BACKGROUND_RANGE)
    return look, timing, canvas[:, None].expand(-1, spec.num_frames, -1, -1, -1)


def _render_scenes(look_u: torch.Tensor, timing_u: torch.Tensor, spec: ClipSpec) -> ClipBatch:
    """Scenes from look uniforms (B, LOOK_WIDTH) and timing uniforms (B, TIMING_WIDTH) on one device."""
    look, timing, canvas = _scene_parts(look_u, timing_u, spec)
    frames = synth.to_uint8(scenes.render_objects(canvas, look, timing["visible"]))
    background = synth.pick(look_u[:, scenes.BACKGROUND_COLUMNS][:, 5], len(synth.BACKGROUND_KINDS))
    meta = {**look, **timing, "background": background}
    return ClipBatch(frames, scenes.render_sound(look, timing, spec), None, meta)


def _scene_rows(split: str, indices: Sequence[int] | torch.Tensor, device: torch.device | str
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Look (B, LOOK_WIDTH) and timing (B, TIMING_WIDTH) uniforms of scenes `indices` of `split`."""
    rows = synth.uniform_rows(split, SCENE_STREAM, synth.as_index_list(indices),
                              scenes.LOOK_WIDTH + scenes.TIMING_WIDTH).to(device)
    return rows[:, :scenes.LOOK_WIDTH], rows[:, scenes.LOOK_WIDTH:]


def scene_batch(split: str, indices: Sequence[int] | torch.Tensor, device: torch.device | str = "cpu",
                image_size: int = 96, num_frames: int = 8, duration: float = DEFAULT_DURATION,
                sampling_rate: int = SAMPLING_RATE) -> ClipBatch:
    """Sound-making scenes `indices` of `split`.

    meta (O = 3 object slots, E = 2 events, unused slots hold -1 / False):
    num_objects (B,); shape, colour, size, texture (B, O) int64 codes into scenes.SHAPES/COLOURS/SIZES/
    TEXTURES; diameter (B, O) px; centres (B, O, T, 2) px (x, y); pattern (B, O) timing-pattern id;
    onsets, offsets (B, O, E) seconds; visible (B, O, T) bool; background (B,) kind code.
    """
    spec = _spec(image_size, num_frames, duration, sampling_rate)
    return _chunked(_render_scenes, spec, *_scene_rows(split, indices, device))


def scene_variants(split: str, indices: Sequence[int] | torch.Tensor, slot: int, attribute: str,
                   device: torch.device | str = "cpu", image_size: int = 96, num_frames: int = 8,
                   duration: float = DEFAULT_DURATION, sampling_rate: int = SAMPLING_RATE) -> torch.Tensor:
    """Frames (K, B, T, H, W, 3) uint8 of scenes `indices` of `split` with object `slot`'s `attribute` ("shape"
    or "colour") set to code k = 0..K-1 of its table, all else as in `scene_batch` (a clip without that slot is
    the same in every variant)."""
    if attribute not in VARIANT_ATTRIBUTES:
        raise ValueError(f"attribute must be one of {sorted(VARIANT_ATTRIBUTES)}, got {attribute!r}")
    spec = _spec(image_size, num_frames, duration, sampling_rate)
    chunks = []
    for look_u, timing_u in _row_chunks(*_scene_rows(split, indices, device)):
        look, timing, canvas = _scene_parts(look_u, timing_u, spec)
        variants = []
        for code in range(len(VARIANT_ATTRIBUTES[attribute])):
            codes = look[attribute].clone()
            codes[:, slot] = torch.where(codes[:, slot] >= 0, code, -1)
            changed = {**look, attribute: codes}
            variants.append(synth.to_uint8(scenes.render_objects(canvas, changed, timing["visible"])))
        chunks.append(torch.stack(variants))
    return torch.cat(chunks, dim=1)


def _timing_key(timing_u: torch.Tensor, num_objects: int, num_frames: int) -> tuple[int, ...]:
    """Timing-pattern ids of the used object slots, from one timing row (TIMING_WIDTH,)."""
    patterns = synth.pick(timing_u[0::3], len(scenes.timing_patterns(num_frames)))
    return tuple(patterns[:num_objects].tolist())


def timing_twins(split: str, index: int, count: int, device: torch.device | str = "cpu",
                 image_size: int = 96, num_frames: int = 8, duration: float = DEFAULT_DURATION,
                 sampling_rate: int = SAMPLING_RATE) -> ClipBatch:
    """`count` clips with the look (objects, background, motion) of scene `index`, each with its own timing.

    Twin 0 is scene `index` itself; twin j >= 1 is the same whatever `count` is. Every twin has a
    different on-pattern for at least one object, so twins differ in frames as well as in audio.
    """
    max_count = synth.MAX_STREAM - synth.TWIN_STREAM + 1
    if not 1 <= count <= max_count:
        raise ValueError(f"timing twin count {count} outside [1, {max_count}]")
    row = synth.uniform_rows(split, SCENE_STREAM, [index], scenes.LOOK_WIDTH + scenes.TIMING_WIDTH)[0]
    look_u, first = row[:scenes.LOOK_WIDTH], row[scenes.LOOK_WIDTH:]
    num_objects = int(scenes.active_slots(look_u[None]).sum())
    timings, seen = [first], {_timing_key(first, num_objects, num_frames)}
    generator = torch.Generator()
    for twin in range(1, count):
        generator.manual_seed(synth.clip_seed(split, synth.TWIN_STREAM + twin, index))
        for _ in range(MAX_TWIN_TRIES):
            candidate = torch.rand(scenes.TIMING_WIDTH, generator=generator)
            key = _timing_key(candidate, num_objects, num_frames)
            if key not in seen:
                break
        else:
            raise ValueError(f"scene {index} of {split!r}: no {count} distinct timings found")
        seen.add(key)
        timings.append(candidate)
    spec = _spec(image_size, num_frames, duration, sampling_rate)
    return _chunked(_render_scenes, spec, look_u.expand(count, -1).to(device), torch.stack(timings).to(device))


def face_batch(split: str, indices: Sequence[int] | torch.Tensor, device: torch.device | str = "cpu",
               image_size: int = 96, num_frames: int = 8, duration: float = DEFAULT_DURATION,
               sampling_rate: int = SAMPLING_RATE) -> ClipBatch:
    """Talking faces `indices` of `split`; labels (B,) = clip(face_valence + voice_valence, -3, 3).

    meta: face_valence, voice_valence (B,) in [-1.5, 1.5]; conflict (B,) bool (signs differ);
    mouth_opening (B, T) in [0, 1] = voice envelope at the frame times; pitch (B,) Hz, contour,
    syllable_rate (B,) 1/s, rolloff (B,) code (0 brightest); centre_x, centre_y, radius_x,
    radius_y (B,) px; background (B,) kind code.
    """
    spec = _spec(image_size, num_frames, duration, sampling_rate)
    u = synth.uniform_rows(split, FACE_STREAM, synth.as_index_list(indices), faces.WIDTH).to(device)
    return _chunked(_render_faces, spec, u)


def _render_faces(u: torch.Tensor, spec: ClipSpec) -> ClipBatch:
    """Talking faces from uniforms (B, faces.WIDTH) on one device."""
    params, geometry = faces.face_params(u), faces.face_geometry(u, spec)
    canvas = synth.background(u[:, :synth.BACKGROUND_WIDTH], spec.image_size, FACE_BACKGROUND_RANGE)
    head = faces.render_face(canvas, geometry, params["face_valence"])  # (B, H, W, 3)
    opening = faces.voice_envelope(spec.frame_times(u.device), params)  # (B, T)
    frames = faces.render_mouth(head[:, None].expand(-1, spec.num_frames, -1, -1, -1), geometry,
                                params["face_valence"], opening)
    names = ("face_valence", "voice_valence", "conflict", "pitch", "contour", "syllable_rate", "rolloff")
    meta = {name: params[name] for name in names}
    meta.update({name: value for name, value in geometry.items() if name != "colour"})
    meta["mouth_opening"] = opening
    meta["background"] = synth.pick(u[:, 5], len(synth.BACKGROUND_KINDS))
    return ClipBatch(synth.to_uint8(frames), faces.render_voice(params, spec), params["label"], meta)


def to_model_inputs(batch: ClipBatch, log_mel: Callable[[torch.Tensor], torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """pixel_values (B, T, 3, H, W) float32 in [-1, 1] and audio_values (B, 1, S, F) float32.

    log_mel: (B, L) -> (B, S, F); defaults to `tvlt.audio.log_mel_spectrogram` (TVLT's recipe).
    """
    if log_mel is None:
        from tvlt.audio import log_mel_spectrogram as log_mel
    return unit_pixels(batch.frames).permute(0, 1, 4, 2, 3), log_mel(batch.waveform)[:, None]


def unit_pixels(frames: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1] (TVLT's pixel normalisation, mean 0.5 and std 0.5), same shape."""
    return (frames.float() / 255.0 - 0.5) / 0.5


def _scene_entry(meta: dict[str, torch.Tensor], b: int) -> dict:
    objects = [
        {"shape": scenes.SHAPES[meta["shape"][b, o]], "colour": scenes.COLOURS[meta["colour"][b, o]],
         "size": round(float(meta["diameter"][b, o])), "texture": scenes.TEXTURES[meta["texture"][b, o]],
         "onsets": [round(t, 3) for t in meta["onsets"][b, o].tolist() if t >= 0],
         "offsets": [round(t, 3) for t in meta["offsets"][b, o].tolist() if t >= 0]}
        for o in range(int(meta["num_objects"][b]))
    ]
    return {"kind": "scene", "label": None, "objects": objects,
            "onsets": sorted(t for obj in objects for t in obj["onsets"])}


def _face_entry(batch: ClipBatch, b: int) -> dict:
    meta = batch.meta
    return {"kind": "face", "label": round(float(batch.labels[b]), 3),
            "face_valence": round(float(meta["face_valence"][b]), 3),
            "voice_valence": round(float(meta["voice_valence"][b]), 3),
            "conflict": bool(meta["conflict"][b]), "objects": [], "onsets": []}


def render_examples(out_dir: str | Path, split: str = "test", n: int = 20) -> Path:
    """Write n example clips (half scenes, half faces) as mp4 with audio plus `manifest.json`; returns its path."""
    from tvlt.media import save_clip  # the only module that writes files

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = ClipSpec()
    fps = spec.num_frames / spec.duration
    batches = {"scene": scene_batch(split, range(n - n // 2)), "face": face_batch(split, range(n // 2))}
    manifest = []
    for kind, batch in batches.items():
        for b in range(len(batch.frames)):
            name = f"{kind}_{split}_{b:03d}.mp4"
            save_clip(out / name, batch.frames[b].numpy(), fps, batch.waveform[b].numpy(), spec.sampling_rate)
            entry = _scene_entry(batch.meta, b) if kind == "scene" else _face_entry(batch, b)
            manifest.append({"file": name, "split": split, "index": b, **entry})
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path


def benchmark(device: str, batch: int, batches: int) -> dict[str, tuple[float, float]]:
    """(clips per wall second, clips per CPU second of this process) of scene_batch and face_batch.

    The second number is what the generator would reach alone on the cores it used; one warm-up
    batch first.
    """
    rates = {}
    for name, make in (("scenes", scene_batch), ("faces", face_batch)):
        make("train", range(batch), device=device)
        wall, cpu = time.perf_counter(), time.process_time()
        for k in range(1, batches + 1):
            make("train", range(k * batch, (k + 1) * batch), device=device)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        clips = batch * batches
        rates[name] = (clips / (time.perf_counter() - wall), clips / (time.process_time() - cpu))
    return rates


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: `--bench` prints clips/s; `--examples DIR` writes example clips and a manifest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--examples", type=Path)
    args = parser.parse_args(argv)
    if args.bench:
        for name, (per_wall, per_cpu) in benchmark(args.device, args.batch, args.batches).items():
            print(f"{name}: {per_wall:.1f} clips/s wall, {per_cpu:.1f} clips per CPU-second on {args.device} "
                  f"(batch {args.batch}, torch threads {torch.get_num_threads()})")
    if args.examples:
        print(render_examples(args.examples))


if __name__ == "__main__":
    main()
