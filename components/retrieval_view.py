"""Retrieval view: rank a gallery of videos for an audio query, and the audio-swap experiment."""

from __future__ import annotations

import os
from typing import Optional

import gradio as gr
import numpy as np
import torch

from components import plots, settings, texts
from components.common import AppContext, bind
from components.core import Clip, LoadedModel
from components.inputs import decode_clip
from tvlt import media, retrieval

CURRENT = "current clip"
FIRST_STAGE_K = 10  # candidates the matching head re-scores after the cheap embedding ranking
LARGE_MODEL_K = 3  # the same for base-sized encoders (hidden >= 512): one joint pass there costs seconds on a CPU


def rescore_k(model: LoadedModel) -> int:
    return LARGE_MODEL_K if model.config.hidden_size >= 512 else FIRST_STAGE_K


def _needs_matching(model: LoadedModel) -> None:
    if getattr(model.model, "matching_head", None) is None:
        raise gr.Error("This checkpoint has no audio-video matching head, so it cannot rank videos.")


def example_clip(ctx: AppContext, name: str, model: LoadedModel) -> Clip:
    """Bundled examples are decoded once per app (shared by every user: they are public)."""
    key = (name, model.config.num_frames, model.config.spectrogram_length)  # what decode_clip sizes by
    with ctx.example_lock:
        if key not in ctx.example_clips:
            ctx.example_clips[key] = decode_clip(ctx.examples[name], None, 0.0, settings.DEFAULT_WINDOW_S,
                                                 model.config)
        return ctx.example_clips[key]


def gallery_clips(ctx: AppContext, clip_key: Optional[str], user_keys: Optional[list], model: LoadedModel,
                  dedupe: bool = True) -> list[tuple[str, Clip]]:
    """(name, clip) of every candidate: the current clip, the user's added videos, then the bundled examples
    (without the one the current clip was loaded from when `dedupe`, so the true match is listed once)."""
    items = []
    current = ctx.clips.get(clip_key)
    if current is not None:
        items.append((CURRENT, current))
    for i, key in enumerate(user_keys or []):
        clip = ctx.clips.get(key)
        if clip is not None:
            items.append((f"yours {i + 1}: {clip.name}", clip))
    same_file = current.name if current is not None and dedupe else None
    items += [(name, example_clip(ctx, name, model)) for name, path in ctx.examples.items()
              if os.path.basename(path) != same_file]
    return items


def warm_gallery(ctx: AppContext) -> None:
    """Decode the bundled examples for the default model ahead of the first retrieval (run in a thread)."""
    model, clips = ctx.registry.default, []
    for name in ctx.examples:
        try:
            clips.append(example_clip(ctx, name, model))
        except (media.MediaError, OSError):  # a broken example only shows up when ranking
            continue
    if clips and getattr(model.model, "matching_head", None) is not None:
        with model.lock:
            video_embeddings(model, clips)


def thumbnail(clip: Clip, size: int = 160) -> np.ndarray:
    frame = clip.frames[len(clip.frames) // 2]
    h, w = frame.shape[:2]
    scale = size / max(h, w)
    return plots.resize(frame, (max(1, round(h * scale)), max(1, round(w * scale))))


def _stack(model: LoadedModel, clips: list[Clip]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The clips' pixel values as one batch (N, T, C, H, W), shorter clips padded with frames the padding mask
    (N, T * patches per frame; None when nothing is padded) hides: a 1 s clip has fewer frames than a 3 s one."""
    inputs = [c.inputs(model) for c in clips]
    T = max(i["pixel_values"].shape[1] for i in inputs)
    per_frame = model.model.tvlt.pixel_embeddings.num_patches_per_image
    pixels, masks = [], []
    for i in inputs:
        t = i["pixel_values"].shape[1]
        pixels.append(torch.nn.functional.pad(i["pixel_values"], (0, 0, 0, 0, 0, 0, 0, T - t)))  # (1, T, C, H, W)
        mask = torch.ones(1, t * per_frame) if i.get("pixel_mask") is None else i["pixel_mask"].float()
        masks.append(torch.nn.functional.pad(mask, (0, (T - t) * per_frame)))
    mask = torch.cat(masks)
    return torch.cat(pixels), None if bool(mask.all()) else mask


def video_embeddings(model: LoadedModel, clips: list[Clip]) -> torch.Tensor:
    """First-stage video embeddings (N, D), computed once per clip and model and kept with the clip."""
    missing = [c for c in clips if (model.key, id(model.model)) not in c.embeddings]
    if missing:
        pixel_values, pixel_mask = _stack(model, missing)
        for clip, row in zip(missing, retrieval.embed_videos(model.model, pixel_values, pixel_mask, batch_size=8)):
            clip.embeddings[(model.key, id(model.model))] = row
    return torch.stack([c.embeddings[(model.key, id(model.model))] for c in clips])


def _query_audio(ctx: AppContext, model: LoadedModel, query_audio: Optional[str], current: Optional[Clip]) -> tuple[Clip, str]:
    if query_audio:
        try:
            clip = decode_clip(None, query_audio, 0.0, settings.DEFAULT_WINDOW_S, model.config)
        except media.MediaError as error:
            raise gr.Error(str(error), title="Cannot read the query audio") from error
        return clip, "the uploaded / recorded audio"
    if current is None:
        raise gr.Error("Load a clip first (its audio is the query), or upload or record a query audio.")
    return current, f"the audio of the current clip `{current.name}`"


def retrieve(ctx: AppContext, clip_key: str, model_key: str, user_keys: list, query_audio: Optional[str],
             progress: gr.Progress = gr.Progress()) -> tuple[list, str]:
    """Rank the gallery for an audio query -> (gallery [(thumbnail, caption)], where the true match landed)."""
    model = ctx.model(model_key)
    _needs_matching(model)
    current = ctx.clips.get(clip_key)
    query, query_name = _query_audio(ctx, model, query_audio, current)
    progress(0.1, desc="decoding the gallery")
    items = gallery_clips(ctx, clip_key, user_keys, model)
    if not items:
        raise gr.Error("The gallery is empty: load a clip or add videos to rank.")
    progress(0.4, desc=f"scoring {len(items)} videos against the audio")
    q = query.inputs(model)
    pixel_values, pixel_mask = _stack(model, [c for _, c in items])
    k = min(rescore_k(model), len(items))
    with model.lock:
        embeddings = video_embeddings(model, [c for _, c in items]) if len(items) > k else None
        ranking = retrieval.rank_videos(model.model, q["audio_values"], pixel_values, batch_size=8,
                                        first_stage_k=k if len(items) > k else None, audio_mask=q.get("audio_mask"),
                                        pixel_mask=pixel_mask, video_embeddings=embeddings)
    gallery = []
    truth = 0 if (query is current) else None
    for rank, index in enumerate(ranking.indices.tolist(), start=1):
        name, clip = items[index]
        p = float(ranking.probabilities[index])
        score = f"match {p:.2f}" if not np.isnan(p) else f"cosine {float(ranking.cosine[index]):.2f} (not re-scored)"
        mark = " ✓ true match" if index == truth else ""
        gallery.append((thumbnail(clip), f"{rank}. {name} — {score}{mark}"))
    if truth is not None:
        landed = ranking.indices.tolist().index(truth) + 1
        summary = f"Query: {query_name}. The true match landed at **rank {landed} of {len(items)}**."
    else:
        summary = f"Query: {query_name}. It has no known true match in the gallery; best: **{items[int(ranking.indices[0])][0]}**."
    if len(items) > k:
        summary += f" The cheap embedding stage kept the top {k}; the matching head re-scored those."
    return gallery, summary


def add_to_gallery(ctx: AppContext, video: Optional[str], user_keys: Optional[list], model_key: str,
                   progress: gr.Progress = gr.Progress()) -> tuple[list, str]:
    """Decode a video into the user's own gallery (at most MAX_USER_GALLERY) -> (new keys, Markdown)."""
    if not video:
        raise gr.Error("Choose a video to add to the gallery first.")
    keys = [k for k in (user_keys or []) if ctx.clips.get(k) is not None]
    if len(keys) >= settings.MAX_USER_GALLERY:
        raise gr.Error(f"Your gallery holds at most {settings.MAX_USER_GALLERY} videos.")
    model = ctx.model(model_key)
    progress(0.2, desc="decoding")
    try:
        clip = decode_clip(video, None, 0.0, settings.DEFAULT_WINDOW_S, model.config)
        clip.inputs(model)
    except media.MediaError as error:
        raise gr.Error(str(error), title="Cannot read this video") from error
    keys.append(ctx.clips.put(clip))
    names = ", ".join(f"`{ctx.clips.get(k).name}`" for k in keys)
    return keys, f"Your gallery ({len(keys)}): {names}. Bundled examples: {len(ctx.examples)}."


def swap_audio(ctx: AppContext, clip_key: str, model_key: str, user_keys: list, first: str, second: str,
               progress: gr.Progress = gr.Progress()) -> str:
    """Score the four audio/video pairings of two clips: their own audio vs each other's."""
    model = ctx.model(model_key)
    _needs_matching(model)
    items = dict(gallery_clips(ctx, clip_key, user_keys, model, dedupe=False))
    for name in (first, second):
        if name not in items:
            raise gr.Error(f"“{name}” is not in the gallery; pick two of: {', '.join(items) or 'nothing yet'}.")
    a, b = items[first], items[second]
    if first == second or (a.name, a.start, a.duration) == (b.name, b.start, b.duration):
        raise gr.Error("Pick two different clips to swap their audio (the current clip may be that same example).")
    progress(0.3, desc="scoring four pairings")
    pixel_values, pixel_mask = _stack(model, [a, b])
    probs = {}
    with model.lock:
        for audio_name, clip in ((first, a), (second, b)):
            q = clip.inputs(model)
            logits = retrieval.matching_logits(model.model, q["audio_values"], pixel_values, 2, q.get("audio_mask"), pixel_mask)
            probs[audio_name] = logits.sigmoid().tolist()
    rows = ["| audio ↓ / video → | " + f"{first} | {second} |", "|---|---|---|"]
    for audio_name in (first, second):
        rows.append(f"| {audio_name} | {probs[audio_name][0]:.3f} | {probs[audio_name][1]:.3f} |")
    own = (probs[first][0] + probs[second][1]) / 2
    swapped = (probs[first][1] + probs[second][0]) / 2
    gap = own - swapped
    verdict = ("lower, as a model that ties sound to the picture should give" if gap > 0.005 else
               "not clearly lower: this model does not tell these two apart by sound")
    return "\n".join(rows) + (f"\n\nMatching probability with its own audio: {own:.3f} on average; with the swapped "
                              f"audio: {swapped:.3f} — {verdict}.")


def gallery_names(ctx: AppContext, clip_key: Optional[str], user_keys: Optional[list]) -> gr.Dropdown:
    names = ([CURRENT] if ctx.clips.get(clip_key) else []) + \
        [f"yours {i + 1}: {ctx.clips.get(k).name}" for i, k in enumerate(user_keys or []) if ctx.clips.get(k)] + list(ctx.examples)
    return gr.Dropdown(choices=names)


def build(ctx: AppContext, clip_key: gr.State, model_key: gr.State) -> None:
    gr.Markdown(texts.RETRIEVAL)
    user_keys = gr.State([], time_to_live=settings.SESSION_TTL_S,
                         delete_callback=lambda keys: [ctx.clips.drop(k) for k in keys or []])
    with gr.Row():
        query_audio = gr.Audio(label="query audio (optional; default: the current clip's audio)",
                               sources=["upload", "microphone"], type="filepath", elem_id="ret_query")
        with gr.Column():
            add_video = gr.Video(label="add a video to your gallery", sources=["upload"], elem_id="ret_add_video")
            add = gr.Button("Add to gallery", elem_id="ret_add")
    gallery_note = gr.Markdown(f"Gallery: the current clip, your added videos and {len(ctx.examples)} bundled examples "
                               "(the example the current clip came from is listed once).", elem_id="ret_gallery_note")
    run = gr.Button("Rank the gallery", variant="primary", elem_id="ret_run")
    summary = gr.Markdown(elem_id="ret_summary")
    gallery = gr.Gallery(label="ranked videos (best first)", columns=6, height=420, object_fit="contain",
                         elem_id="ret_gallery")
    gr.Markdown("### Swap the audio of two clips")
    with gr.Row():
        first = gr.Dropdown([CURRENT, *ctx.examples], value=CURRENT, label="clip A", elem_id="ret_swap_a", allow_custom_value=True)
        second = gr.Dropdown([CURRENT, *ctx.examples], value=(list(ctx.examples) or [None, None])[-1], label="clip B",
                             elem_id="ret_swap_b", allow_custom_value=True)
        swap = gr.Button("Swap and score", elem_id="ret_swap")
    swap_table = gr.Markdown(elem_id="ret_swap_table")
    run.click(bind(retrieve, ctx), [clip_key, model_key, user_keys, query_audio], [gallery, summary],
              api_name="retrieval")
    add.click(bind(add_to_gallery, ctx), [add_video, user_keys, model_key], [user_keys, gallery_note],
              api_name="retrieval_add").success(bind(gallery_names, ctx), [clip_key, user_keys], first,
                                                api_name=False).success(bind(gallery_names, ctx),
                                                                         [clip_key, user_keys], second, api_name=False)
    swap.click(bind(swap_audio, ctx), [clip_key, model_key, user_keys, first, second], swap_table,
               api_name="retrieval_swap")
