"""Clip loading (upload, webcam, microphone, bundled examples) and the model picker."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Optional

import gradio as gr
import numpy as np

from components import settings
from components.common import AppContext, bind
from components.core import CLASSIFICATION, Clip, LoadedModel
from tvlt import audio as tvlt_audio
from tvlt import media

SILENCE_NOTE = "the video has no sound track, so the model hears silence — add an audio file or a recording"
NO_VIDEO_NOTE = "no video was given, so grey frames stand in for the picture"


# ---------------------------------------------------------------- examples
def read_manifest(directory: Path = settings.EXAMPLES_DIR) -> dict[str, dict]:
    """Example file name -> its manifest.json entry ({} when there is no readable manifest)."""
    try:
        data = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("examples", data.get("clips", [])) if isinstance(data, dict) else data
    return {Path(str(e.get("file") or e.get("path"))).name: e for e in entries
            if isinstance(e, dict) and (e.get("file") or e.get("path"))} if isinstance(entries, list) else {}


def example_name(file: str, entry: Optional[dict]) -> str:
    """A readable name: the manifest's own name, or what the synthetic clip shows."""
    entry = entry or {}
    if entry.get("name") or entry.get("title"):
        return str(entry.get("name") or entry.get("title"))
    index = entry.get("index")
    number = f" {index:03d}" if isinstance(index, int) else ""
    if entry.get("kind") == "scene" and entry.get("objects"):
        return f"scene{number}: " + ", ".join(f"{o.get('colour', '')} {o.get('shape', '')}".strip() for o in entry["objects"])
    if entry.get("kind") == "face" and "face_valence" in entry:
        return f"face{number}: face {entry['face_valence']:+.1f}, voice {entry.get('voice_valence', 0.0):+.1f}"
    return Path(file).stem.replace("_", " ")


def find_examples(directory: Path = settings.EXAMPLES_DIR) -> dict[str, str]:
    """Bundled example videos: display name -> path (names from manifest.json when it has them)."""
    if not directory.is_dir():
        return {}
    videos = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".mp4", ".webm", ".mov", ".mkv"))
    manifest = read_manifest(directory)
    return {example_name(p.name, manifest.get(p.name)): os.fspath(p) for p in videos}


def pick_example(ctx: AppContext, name: str) -> str:
    """Example name -> its video file (into the video input)."""
    if name not in ctx.examples:
        raise gr.Error(f"There is no bundled example called “{name}”.")
    return ctx.examples[name]


# ---------------------------------------------------------------- decoding
def _check_window(start: float, duration: float) -> tuple[float, float]:
    try:
        start, duration = float(start or 0.0), float(duration or 0.0)
    except (TypeError, ValueError):
        raise gr.Error("Start and duration must be numbers of seconds.") from None
    if not 0.0 <= start <= settings.MAX_START_S:
        raise gr.Error(f"The start must be between 0 and {settings.MAX_START_S:g} seconds.")
    if not 0.0 < duration <= settings.MAX_WINDOW_S:
        raise gr.Error(f"The duration must be more than 0 and at most {settings.MAX_WINDOW_S:g} seconds.")
    return start, duration


def _check_size(path: Optional[str], what: str) -> None:
    if path and os.path.isfile(path) and os.path.getsize(path) > settings.MAX_UPLOAD_MB * 1024 * 1024:
        raise gr.Error(f"The {what} is larger than the {settings.MAX_UPLOAD_MB} MB limit; trim or compress it.")


def audio_capacity_s(config) -> float:
    """Seconds of audio a model's spectrogram holds, plus one FFT window so the last frame sees real samples."""
    return (config.spectrogram_length * tvlt_audio.HOP_LENGTH + tvlt_audio.N_FFT) / tvlt_audio.SAMPLING_RATE


def _decode_audio(path: str, start: float, duration: float, notes: list[str], limit_s: float,
                  from_zero_if_short: bool = False) -> media.AudioClip:
    """The audio of the window; a separate track shorter than the window's start (`from_zero_if_short`: a short
    recording meant to replace a video's sound) is taken from 0 s instead, with a note."""
    try:
        return media.load_audio(path, start=start, duration=duration, clip_seconds=limit_s,
                                max_seconds=settings.MAX_MEDIA_S)
    except media.EmptyMediaError:
        if start == 0 or not from_zero_if_short:
            raise
        notes.append("the audio is shorter than the start time, so it is taken from 0 s")
        return media.load_audio(path, start=0.0, duration=duration, clip_seconds=limit_s,
                                max_seconds=settings.MAX_MEDIA_S)


def decode_clip(video_path: Optional[str], audio_path: Optional[str], start: float, duration: float, config) -> Clip:
    """Decode the window of a video and/or audio file once for a model `config`; raises media.MediaError.

    Frames are sampled over the whole window; audio is decoded only as far as the model can hear
    (`audio_capacity_s`): the log-mel of the rest would be computed and then thrown away.
    """
    notes: list[str] = []
    num_frames, image_size = config.num_frames, config.image_size
    limit_s = min(settings.MAX_WINDOW_S, audio_capacity_s(config))
    video_clip = None
    if video_path:
        try:
            video_clip = media.load_video(video_path, num_frames=num_frames, start=start, duration=duration,
                                          max_seconds=settings.MAX_MEDIA_S)
        except media.NoVideoStreamError:
            if audio_path:
                raise
            video_path, audio_path = None, video_path  # an audio file given as the video: use it as the audio
    if audio_path:
        audio_clip = _decode_audio(audio_path, start, duration, notes, limit_s, from_zero_if_short=bool(video_path))
        if video_path:
            notes.append("the separate audio replaces the video's sound track")
    else:
        try:
            audio_clip = _decode_audio(video_path, start, duration, notes, limit_s)
        except media.NoAudioStreamError:
            notes.append(SILENCE_NOTE)
            seconds = min(max(video_clip.duration, 1.0), limit_s)
            silence = media.load_audio(np.zeros(int(seconds * tvlt_audio.SAMPLING_RATE), np.float32),
                                       sampling_rate=tvlt_audio.SAMPLING_RATE)
            audio_clip = dataclasses.replace(silence, start=float(start))  # silence beside the window's frames
    if video_clip is None:
        notes.append(NO_VIDEO_NOTE)
        frames = np.full((num_frames, image_size, image_size, 3), 128, np.uint8)
        times = audio_clip.start + (np.arange(num_frames) + 0.5) * audio_clip.duration / num_frames
        video_clip = media.VideoClip(frames, times, audio_clip.duration, None, (image_size, image_size))
    name = Path(video_path or audio_path).name
    return Clip(name=name, frames=video_clip.frames, timestamps=np.asarray(video_clip.timestamps),
                waveform=audio_clip.waveform, sampling_rate=audio_clip.sampling_rate, start=start,
                duration=float(video_clip.duration or audio_clip.duration), notes=notes,
                video_clip=video_clip, audio_clip=audio_clip)


def describe_clip(clip: Clip, model: LoadedModel) -> str:
    heard = model.config.spectrogram_length * tvlt_audio.HOP_LENGTH / tvlt_audio.SAMPLING_RATE
    audio_s = min(len(clip.waveform) / clip.sampling_rate, heard)
    lines = [f"**Loaded** `{clip.name}`: {len(clip.frames)} frames sampled from {clip.start:.2f}–"
             f"{clip.start + clip.duration:.2f} s, {audio_s:.2f} s of audio."]
    if clip.duration > heard + 0.05:
        lines.append(f"This model hears at most {heard:.2f} s of audio ({model.config.spectrogram_length} spectrogram "
                     f"steps), so it uses the first {heard:.2f} s of the window; the frames span all of it "
                     "(after picking a model with a longer window, load the clip again).")
    lines += [f"Note: {note}." for note in clip.notes]
    return "\n\n".join(lines)


def load_clip(ctx: AppContext, video: Optional[str], audio: Optional[str], start: float, duration: float,
              model_key: Optional[str], old_clip_key: Optional[str],
              progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
    """Decode the chosen window once and keep it server-side -> (clip key for gr.State, status Markdown)."""
    if not video and not audio:
        raise gr.Error("Upload or record a video (or an audio clip), or pick a bundled example first.")
    start, duration = _check_window(start, duration)
    _check_size(video, "video")
    _check_size(audio, "audio file")
    model = ctx.model(model_key)
    settings.prune_temp()
    progress(0.1, desc="decoding the media")
    try:
        clip = decode_clip(video, audio, start, duration, model.config)
        progress(0.6, desc="preparing model inputs")
        clip.inputs(model)
    except media.MediaError as error:
        raise gr.Error(str(error), title="Cannot read this media") from error
    ctx.clips.drop(old_clip_key)
    return ctx.clips.put(clip), describe_clip(clip, model)


# ---------------------------------------------------------------- model picker
def load_model(ctx: AppContext, source: str, progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
    """A checkpoint (local directory, original .ckpt, hub id, or empty for the bundled one) -> (model key, banner)."""
    source = (source or "").strip()
    if not source or source == "default":
        return ctx.registry.default_key, model_banner(ctx, None)
    bundled = {str(settings.DEFAULT_PRETRAIN_DIR), str(settings.DEFAULT_SENTIMENT_DIR)}
    if not settings.PICKER_LOCAL_PATHS and source not in bundled and _looks_local(source):
        raise gr.Error("This server loads only hub ids (like ZinengTang/tvlt-base) and the bundled models from "
                       "the picker; local paths are switched off here.", title="Cannot load this checkpoint")
    progress(0.2, desc=f"loading {source}")
    try:
        loaded = ctx.registry.load(source)
    except (ValueError, OSError) as error:  # CheckpointError, HubUnavailableError, a bad .ckpt
        raise gr.Error(str(error), title="Cannot load this checkpoint") from error
    return loaded.key, model_banner(ctx, loaded.key)


def _looks_local(source: str) -> bool:
    """A filesystem path rather than an `owner/name` hub id."""
    return source.startswith((".", "/", "~", "\\")) or source.count("/") != 1 or source.endswith((".ckpt", ".pt", ".pth"))


def model_banner(ctx: AppContext, model_key: Optional[str]) -> str:
    picked = ctx.registry.get(model_key)
    main = picked if picked.kind != CLASSIFICATION else ctx.registry.default
    sentiment = picked if picked.kind == CLASSIFICATION else ctx.registry.sentiment
    lines = [f"**Model (patches, MAE, attention, retrieval):** {main.banner()}"]
    lines.append(f"**Sentiment model:** {sentiment.banner()}" if sentiment else "**Sentiment model:** none loaded.")
    return "\n\n".join(lines)


def build(ctx: AppContext, clip_key: gr.State, model_key: gr.State):
    """Layout of the input panel; returns (clip load events, model load event) for the app to chain views on."""
    from components import texts

    with gr.Accordion("Model", open=False):
        with gr.Row():
            known = [str(d) for d in (settings.DEFAULT_PRETRAIN_DIR, settings.DEFAULT_SENTIMENT_DIR) if d.is_dir()]
            source = gr.Dropdown(known + ["ZinengTang/tvlt-base"], value=None, allow_custom_value=True,
                                 label="checkpoint: a local directory, an original .ckpt, or a hub id (empty = bundled)",
                                 elem_id="model_source", scale=4)
            load_model_btn = gr.Button("Load model", elem_id="model_load", scale=1)
    banner = gr.Markdown(model_banner(ctx, None), elem_id="model_banner")
    gr.Markdown(texts.INPUTS)
    with gr.Row():
        video = gr.Video(label="video (upload or webcam)", sources=["upload", "webcam"], include_audio=True,
                         webcam_options=gr.WebcamOptions(mirror=False), elem_id="input_video")
        audio = gr.Audio(label="audio (optional: replaces the video's sound)", sources=["upload", "microphone"],
                         type="filepath", elem_id="input_audio")
    with gr.Row():
        example = gr.Dropdown(list(ctx.examples), value=None, label="bundled example", elem_id="input_example",
                              interactive=bool(ctx.examples))
        start = gr.Number(0.0, label="start (s)", minimum=0, maximum=settings.MAX_START_S, elem_id="input_start")
        heard = ctx.registry.default.config.spectrogram_length * tvlt_audio.HOP_LENGTH / tvlt_audio.SAMPLING_RATE
        duration = gr.Number(round(min(settings.DEFAULT_WINDOW_S, max(heard, 1.0)), 2), label="duration (s)",
                             minimum=0.1, maximum=settings.MAX_WINDOW_S, elem_id="input_duration")
        load = gr.Button("Load clip", variant="primary", elem_id="input_load")
    status = gr.Markdown(elem_id="input_status")
    model_loaded = load_model_btn.click(bind(load_model, ctx), source, [model_key, banner], api_name="load_model")
    load_inputs = [video, audio, start, duration, model_key, clip_key]
    loader = bind(load_clip, ctx)
    clicked = load.click(loader, load_inputs, [clip_key, status], api_name="load_clip")
    picked = example.input(bind(pick_example, ctx), example, video, api_name="pick_example").success(
        loader, load_inputs, [clip_key, status], api_name="load_example_clip")
    return (clicked, picked), model_loaded
