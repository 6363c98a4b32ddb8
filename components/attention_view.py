"""Attention view: CLS attention and rollout over frames and spectrogram, and cross-modal maps."""

from __future__ import annotations

import math
from typing import Optional

import gradio as gr
import numpy as np
import torch

from components import plots, settings, texts
from components.common import AppContext, bind, audio_values_to_spectrogram, pixel_values_to_frames, user_error
from components.core import LoadedModel
from tvlt import attention
from tvlt import audio as tvlt_audio
from tvlt.layout import TokenLayout
from tvlt.masking import encoder_masks

MEAN_OF_HEADS = "mean of heads"


def frames_grid(layout: TokenLayout) -> plots.PanelGrid:
    cell_h, cell_w = plots.frame_cell_size(*layout.image_size, target=160)
    return plots.PanelGrid(rows=1, cols=layout.num_frames, cell_h=cell_h, cell_w=cell_w)


def heat_frames(layout: TokenLayout, frames: np.ndarray, heat: torch.Tensor) -> np.ndarray:
    """Frames (T, H, W, 3) with a patch heat map (T, h, w) blended on; one shared colour scale."""
    heat = heat.nan_to_num(0.0).numpy()
    lo, hi = float(heat.min()), float(heat.max())  # one scale over all frames, stretched to the map's range
    cells = [plots.overlay_heat(frames[t], heat[t], vmin=lo, vmax=hi) for t in range(layout.num_frames)]
    return frames_grid(layout).compose([cells], [f"frame {t}" for t in range(layout.num_frames)])


def heat_spectrogram(layout: TokenLayout, spec: np.ndarray, heat: torch.Tensor) -> np.ndarray:
    """Spectrogram (S, F) with a patch heat map (s, f) blended on; time →, frequency ↑."""
    heat = heat.nan_to_num(0.0).numpy()
    base = plots.spectrogram_rgb(spec, cmap="gray")  # (F, S, 3)
    heat_img = heat.T[::-1]  # (f, s), low frequencies at the bottom
    image = plots.overlay_heat(base, np.ascontiguousarray(heat_img), alpha=0.6)
    return plots.resize(image, (max(128, spec.shape[1]), spectrogram_width(spec.shape[0])))


def spectrogram_width(num_frames: int) -> int:
    """Pixel width of a drawn spectrogram of `num_frames` time steps (S)."""
    return max(512, min(2 * num_frames, 1024))


def _head(head: str | int | None, model: LoadedModel) -> Optional[int]:
    if head in (None, "", MEAN_OF_HEADS):
        return None
    try:
        index = int(head)
    except (TypeError, ValueError):
        raise gr.Error(f"Head must be a number or “{MEAN_OF_HEADS}”, got “{head}”.") from None
    if not 0 <= index < model.config.num_attention_heads:
        raise gr.Error(f"Head {index} does not exist: this model has heads 0 to {model.config.num_attention_heads - 1}.")
    return index


def _layer(layer: int | float, model: LoadedModel) -> int:
    index = int(layer)
    if not 0 <= index < model.config.num_hidden_layers:
        raise gr.Error(f"Layer {index} does not exist: this model has layers 0 to {model.config.num_hidden_layers - 1}.")
    return index


def _setup(ctx: AppContext, clip_key: str, model_key: str):
    clip, model = ctx.clip(clip_key), ctx.model(model_key)
    inputs = clip.inputs(model)
    layout = TokenLayout.from_config(model.config, inputs["pixel_values"].shape[1], inputs["audio_values"].shape[2])
    return clip, model, inputs, layout


def _maps(masks, weights: torch.Tensor, n_video: int) -> attention.AttentionMaps:
    """AttentionMaps of an unmasked pass: video tokens sit at 1..Nv, audio tokens after them."""
    video_grid, audio_grid = tuple(masks.video_is_valid.shape), tuple(masks.audio_is_valid.shape)
    video_positions = (1 + torch.arange(n_video)).reshape(video_grid)
    audio_positions = (1 + n_video + torch.arange(math.prod(audio_grid[1:]))).reshape(audio_grid)
    return attention.AttentionMaps(weights, masks.layout, video_positions, audio_positions,
                                   masks.video_is_valid, masks.audio_is_valid)


def capture(model: LoadedModel, inputs: dict, layer: int, rollout: bool) -> tuple[attention.AttentionMaps, Optional[attention.AttentionMaps]]:
    """One encoder pass -> (maps of `layer`, all heads; CLS-row rollout maps or None).

    Rollout (Abnar & Zuidema, as `tvlt.attention.attention_rollout`) keeps each layer's residual-mixed
    head-mean matrix and multiplies only the CLS row back through them: e0ᵀ·A_L···A_1 costs N² per layer
    instead of the full N³ product. Its `weights` are (B, 1, N): the CLS row, which is all `cls_attention` reads.
    """
    pv, av = inputs["pixel_values"], inputs["audio_values"]
    masks = encoder_masks(model.config, pv, av, inputs.get("pixel_mask"), inputs.get("audio_mask"))
    kept: dict[int, torch.Tensor] = {}
    steps: list[torch.Tensor] = []

    def on_weights(index: int, weights: torch.Tensor) -> None:
        if index == layer:
            kept[index] = weights
        if rollout:
            step = 0.5 * torch.eye(weights.shape[-1]) + 0.5 * weights.mean(dim=1)  # (B, N, N)
            steps.append(step / step.sum(dim=-1, keepdim=True))

    layers = range(model.config.num_hidden_layers) if rollout else [layer]
    with model.lock, torch.no_grad(), attention.record_attention(model.model, layers, on_weights):
        model.encoder(pv, av, **masks.model_inputs(pv.device))
    n_video = masks.layout.num_video_tokens
    roll = None
    if rollout:
        row = steps[-1][:, :1]  # (B, 1, N)
        for step in reversed(steps[:-1]):
            row = row @ step
        roll = _maps(masks, row, n_video)
    return _maps(masks, kept[layer], n_video), roll


def _layer_maps(ctx: AppContext, clip_key: str, model: LoadedModel, inputs: dict, layer: int) -> attention.AttentionMaps:
    """One layer's maps, cached for the last few (clip, model, layer): cross-modal clicks reuse them."""
    key = (clip_key, model.key, layer)
    with ctx.example_lock:
        if key in ctx.attention_cache:
            ctx.attention_cache.move_to_end(key)
            return ctx.attention_cache[key]
    maps, _ = capture(model, inputs, layer, rollout=False)
    _remember(ctx, key, maps)
    return maps


def _remember(ctx: AppContext, key: tuple, maps: attention.AttentionMaps) -> None:
    with ctx.example_lock:
        ctx.attention_cache[key] = maps
        while len(ctx.attention_cache) > settings.ATTENTION_CACHE:
            ctx.attention_cache.popitem(last=False)


def attention_view(ctx: AppContext, clip_key: str, model_key: str, layer: int, head: str,
                   progress: gr.Progress = gr.Progress()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """-> (CLS over frames, CLS over spectrogram, rollout over frames, rollout over spectrogram, notes)."""
    clip, model, inputs, layout = _setup(ctx, clip_key, model_key)
    layer, head_index = _layer(layer, model), _head(head, model)
    progress(0.2, desc=f"capturing layer {layer} and rolling attention out through all layers")
    maps, rollout = capture(model, inputs, layer, rollout=True)
    _remember(ctx, (clip_key, model.key, layer), maps)
    cls_video, cls_audio = attention.cls_attention(maps, head_index)
    roll_video, roll_audio = attention.cls_attention(rollout)
    progress(0.8, desc="drawing")
    frames = pixel_values_to_frames(inputs["pixel_values"][0])
    spec = audio_values_to_spectrogram(inputs["audio_values"][0])
    who = "mean of heads" if head_index is None else f"head {head_index}"
    notes = (f"Layer {layer}, {who}. Each map sums to 1 over its modality's visible patches (brighter = more attention). "
             f"{layout.num_tokens} tokens: 1 CLS + {layout.num_video_tokens} video + {layout.num_audio_tokens} audio.")
    return (heat_frames(layout, frames, cls_video[0]), heat_spectrogram(layout, spec, cls_audio[0]),
            heat_frames(layout, frames, roll_video[0]), heat_spectrogram(layout, spec, roll_audio[0]), notes)


def audio_to_video(ctx: AppContext, clip_key: str, model_key: str, layer: int, head: str, start_s: float, end_s: float,
                   progress: gr.Progress = gr.Progress()) -> tuple[np.ndarray, str]:
    """Where the audio between start_s and end_s (seconds into the file, as on the Patches axis) looks in the frames."""
    clip, model, inputs, layout = _setup(ctx, clip_key, model_key)
    layer, head_index = _layer(layer, model), _head(head, model)
    fps = tvlt_audio.SAMPLING_RATE / tvlt_audio.HOP_LENGTH
    heard = inputs["audio_values"].shape[-2] / fps  # seconds of spectrogram the model gets
    try:
        span = attention.seconds_to_time_patches(float(start_s) - clip.audio_start, float(end_s) - clip.audio_start,
                                                 fps, layout.audio_patch_size[0], layout.audio_time_patches)
    except ValueError as error:  # the library's numbers are seconds into the window: name the file's instead
        first, last = clip.audio_start, clip.audio_start + heard
        raise gr.Error(f"Choose an audio span between {first:.2f} and {last:.2f} s (seconds into the file, as on the "
                       f"Patches axis); got {float(start_s):g}–{float(end_s):g} s.") from error
    progress(0.3, desc=f"capturing layer {layer}")
    maps = _layer_maps(ctx, clip_key, model, inputs, layer)
    try:
        heat = attention.audio_to_video_attention(maps, span, head_index)
    except ValueError as error:
        raise user_error(error, "No audio to use there") from error
    frames = pixel_values_to_frames(inputs["pixel_values"][0])
    t0, t1 = (clip.audio_start + s * layout.audio_patch_size[0] / fps for s in span)
    return heat_frames(layout, frames, heat[0]), f"Audio {t0:.2f}–{t1:.2f} s (time patches {span[0]}–{span[1] - 1}) → frames."


def video_to_audio(ctx: AppContext, clip_key: str, model_key: str, layer: int, head: str, frame: int, row: int, col: int,
                   radius: int = 0, progress: gr.Progress = gr.Progress()) -> tuple[np.ndarray, str]:
    """Where the patches of `frame` around (row, col) (± radius patches) listen in the spectrogram."""
    clip, model, inputs, layout = _setup(ctx, clip_key, model_key)
    layer, head_index = _layer(layer, model), _head(head, model)
    frame, row, col, radius = int(frame), int(row), int(col), max(0, int(radius))
    if not (0 <= frame < layout.num_frames and 0 <= row < layout.grid_rows and 0 <= col < layout.grid_cols):
        raise gr.Error(f"Pick a patch inside the frames: frame 0–{layout.num_frames - 1}, row 0–{layout.grid_rows - 1}, "
                       f"column 0–{layout.grid_cols - 1}.")
    box = (max(0, row - radius), max(0, col - radius), min(layout.grid_rows, row + radius + 1),
           min(layout.grid_cols, col + radius + 1))
    progress(0.3, desc=f"capturing layer {layer}")
    maps = _layer_maps(ctx, clip_key, model, inputs, layer)
    try:
        heat = attention.video_to_audio_attention(maps, frame, box, head_index)
    except ValueError as error:  # the region holds only padding (e.g. a frame a short video did not fill)
        raise user_error(error, "No video to use there") from error
    spec = audio_values_to_spectrogram(inputs["audio_values"][0])
    return heat_spectrogram(layout, spec, heat[0]), f"Frame {frame}, patch rows {box[0]}–{box[2] - 1}, columns {box[1]}–{box[3] - 1} → spectrogram."


def click_frame(ctx: AppContext, clip_key: str, model_key: str, evt: gr.SelectData) -> tuple[int, int, int]:
    """A click on the frames image -> (frame, row, col) of the patch under it."""
    _, model, inputs, layout = _setup(ctx, clip_key, model_key)
    hit = frames_grid(layout).locate(*evt.index)
    if hit is None:
        raise gr.Error("Click inside one of the frames.")
    _, frame, u, v = hit
    return frame, int(u * layout.grid_rows), int(v * layout.grid_cols)


def default_span(ctx: AppContext, clip_key: str) -> tuple[float, float]:
    """The first half second of the clip's audio, in seconds into the file."""
    start = ctx.clip(clip_key).audio_start
    return start, start + 0.5


def click_spectrogram(ctx: AppContext, clip_key: str, model_key: str, evt: gr.SelectData) -> tuple[float, float]:
    """A click on a spectrogram image -> (start, end) seconds into the file of the time patch under it."""
    clip, _, inputs, layout = _setup(ctx, clip_key, model_key)
    S = inputs["audio_values"].shape[-2]
    column = min(int(evt.index[0] / spectrogram_width(S) * (S // layout.audio_patch_size[0])),
                 S // layout.audio_patch_size[0] - 1)
    seconds = layout.audio_patch_size[0] * tvlt_audio.HOP_LENGTH / tvlt_audio.SAMPLING_RATE  # per time patch
    offset = clip.audio_start  # the offsets are rounded for display, never the start (else column 0 could fall before it)
    return offset + round(column * seconds, 3), offset + round((column + 1) * seconds, 3)


def model_controls(ctx: AppContext, model_key: str) -> tuple[gr.Slider, gr.Dropdown]:
    """Layer and head choices sized for the picked model."""
    config = ctx.model(model_key).config
    heads = [MEAN_OF_HEADS] + [str(h) for h in range(config.num_attention_heads)]
    return (gr.Slider(maximum=config.num_hidden_layers - 1, value=config.num_hidden_layers - 1),
            gr.Dropdown(choices=heads, value=MEAN_OF_HEADS))


def build(ctx: AppContext, clip_key: gr.State, model_key: gr.State, model_loaded=None,
          clip_loaded: tuple = ()) -> None:
    gr.Markdown(texts.ATTENTION)
    config = ctx.registry.default.config
    with gr.Row():
        layer = gr.Slider(0, config.num_hidden_layers - 1, value=config.num_hidden_layers - 1, step=1, label="layer",
                          elem_id="att_layer")
        head = gr.Dropdown([MEAN_OF_HEADS] + [str(h) for h in range(config.num_attention_heads)], value=MEAN_OF_HEADS,
                           label="head", elem_id="att_head")
    run = gr.Button("Show attention", variant="primary", elem_id="att_run")
    notes = gr.Markdown(elem_id="att_notes")
    gr.Markdown("**CLS → frames** (click a patch for its cross-modal map below)")
    cls_frames = gr.Image(label="CLS to frames", show_label=False, interactive=False, elem_id="att_cls_frames", format="png")
    gr.Markdown("**CLS → spectrogram (time →, frequency ↑)** (click a time column for its cross-modal map below)")
    cls_spec = gr.Image(label="CLS to spectrogram", show_label=False, interactive=False, elem_id="att_cls_spec", format="png")
    gr.Markdown("**rollout: CLS → frames through all layers**")
    roll_frames = gr.Image(label="rollout to frames", show_label=False, interactive=False, elem_id="att_roll_frames", format="png")
    gr.Markdown("**rollout: CLS → spectrogram**")
    roll_spec = gr.Image(label="rollout to spectrogram", show_label=False, interactive=False, elem_id="att_roll_spec", format="png")
    if model_loaded is not None:
        model_loaded.success(bind(model_controls, ctx), model_key, [layer, head], api_name=False)
    run.click(bind(attention_view, ctx), [clip_key, model_key, layer, head],
              [cls_frames, cls_spec, roll_frames, roll_spec, notes], api_name="attention")

    gr.Markdown("### Cross-modal attention")
    with gr.Row():
        start = gr.Number(0.0, label="audio span start (s, as on the Patches axis)", elem_id="att_span_start",
                          minimum=0)
        end = gr.Number(0.5, label="audio span end (s)", elem_id="att_span_end", minimum=0)
        a2v_run = gr.Button("Audio span → frames", elem_id="att_a2v_run")
    a2v_note = gr.Markdown(elem_id="att_a2v_note")
    gr.Markdown("**where this sound looks**")
    a2v_img = gr.Image(label="audio span to frames", show_label=False, interactive=False, elem_id="att_a2v", format="png")
    with gr.Row():
        frame = gr.Number(0, precision=0, label="frame", elem_id="att_frame", minimum=0)
        row = gr.Number(0, precision=0, label="patch row", elem_id="att_row", minimum=0)
        col = gr.Number(0, precision=0, label="patch column", elem_id="att_col", minimum=0)
        radius = gr.Number(1, precision=0, label="region radius (patches)", elem_id="att_radius", minimum=0)
        v2a_run = gr.Button("Frame region → spectrogram", elem_id="att_v2a_run")
    v2a_note = gr.Markdown(elem_id="att_v2a_note")
    gr.Markdown("**what this region listens to**")
    v2a_img = gr.Image(label="frame region to spectrogram", show_label=False, interactive=False, elem_id="att_v2a", format="png")
    a2v = bind(audio_to_video, ctx)
    a2v_inputs = [clip_key, model_key, layer, head, start, end]
    a2v_run.click(a2v, a2v_inputs, [a2v_img, a2v_note], api_name="attention_audio_to_video")
    for event in clip_loaded:  # start the span where the new clip's audio starts
        event.success(bind(default_span, ctx), clip_key, [start, end], api_name=False)
    # clicks carry browser event data a script cannot send: UI-only; scripts use the two endpoints above
    cls_spec.select(bind(click_spectrogram, ctx), [clip_key, model_key], [start, end],
                    api_name="attention_click_spectrogram", api_visibility="private").success(
        a2v, a2v_inputs, [a2v_img, a2v_note], api_name="attention_click_spectrogram_run", api_visibility="private")
    v2a = bind(video_to_audio, ctx)
    v2a_inputs = [clip_key, model_key, layer, head, frame, row, col, radius]
    v2a_run.click(v2a, v2a_inputs, [v2a_img, v2a_note], api_name="attention_video_to_audio")
    cls_frames.select(bind(click_frame, ctx), [clip_key, model_key], [frame, row, col],
                      api_name="attention_click_frame", api_visibility="private").success(
        v2a, v2a_inputs, [v2a_img, v2a_note], api_name="attention_click_frame_run", api_visibility="private")
