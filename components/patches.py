"""Patches view: frames with their patch grid, the spectrogram with axes and grid, the token layout."""

from __future__ import annotations


import gradio as gr
from matplotlib.figure import Figure

from components import plots, texts
from components.common import AppContext, bind, audio_values_to_spectrogram, pixel_values_to_frames, valid_time_patches
from tvlt import audio as tvlt_audio
from tvlt.layout import TokenLayout


def patches_view(ctx: AppContext, clip_key: str, model_key: str,
                 progress: gr.Progress = gr.Progress()) -> tuple[Figure, Figure, Figure, str]:
    """-> (frames with patch grid, spectrogram with axes and grid, token layout, token counts Markdown)."""
    clip = ctx.clip(clip_key)
    model = ctx.model(model_key)
    progress(0.2, desc="preparing model inputs")
    inputs = clip.inputs(model)
    pixel_values, audio_values = inputs["pixel_values"][0], inputs["audio_values"][0]
    layout = TokenLayout.from_config(model.config, pixel_values.shape[0], audio_values.shape[1])
    valid_time = valid_time_patches(inputs.get("audio_mask"), layout.audio_freq_patches, layout.audio_time_patches)
    progress(0.5, desc="drawing")
    frames = pixel_values_to_frames(pixel_values)
    spec = audio_values_to_spectrogram(audio_values)
    S, F = spec.shape
    frames_fig = plots.frames_figure(frames, layout.image_patch_size, clip.timestamps)
    spec_fig = plots.spectrogram_figure(
        spec, clip.audio_start + tvlt_audio.spectrogram_time_axis(S), tvlt_audio.mel_frequency_axis(F),
        layout.audio_patch_size, valid_frames=valid_time * layout.audio_patch_size[0],
    )
    layout_fig = plots.token_layout_figure(layout.num_frames, layout.patches_per_frame, layout.audio_time_patches,
                                           layout.audio_freq_patches, valid_time)
    return frames_fig, spec_fig, layout_fig, token_counts_markdown(layout, valid_time)


def token_counts_markdown(layout: TokenLayout, valid_time: int) -> str:
    H, W = layout.image_size
    S, F = layout.spectrogram_size
    padded = layout.audio_time_patches - valid_time
    return "\n".join([
        "| | grid | tokens |",
        "|---|---|---|",
        "| CLS | — | 1 |",
        f"| video | {layout.num_frames} frames × {layout.grid_rows}×{layout.grid_cols} patches of "
        f"{layout.image_patch_size[0]}×{layout.image_patch_size[1]} px ({H}×{W} px frames) | {layout.num_video_tokens} |",
        f"| audio | {layout.audio_time_patches} time × {layout.audio_freq_patches} frequency patches "
        f"({S} time steps × {F} mel bins){f', {padded} time columns padding' if padded else ''} | {layout.num_audio_tokens} |",
        f"| **total** | CLS, then video frame by frame (row-major), then audio time-major | **{layout.num_tokens}** |",
    ])


def build(ctx: AppContext, clip_key: gr.State, model_key: gr.State) -> tuple:
    """The tab's layout and wiring; returns (fn, inputs, outputs) for the clip loader to chain after loading."""
    gr.Markdown(texts.PATCHES)
    run = gr.Button("Show patches", elem_id="patches_run", variant="primary")
    counts = gr.Markdown(elem_id="patches_counts")
    gr.Markdown("**Sampled frames and their 16×16 patch grid**")
    frames = gr.Plot(label="frames", show_label=False, elem_id="patches_frames")
    gr.Markdown("**Log-mel spectrogram and its patch grid**")
    spec = gr.Plot(label="spectrogram", show_label=False, elem_id="patches_spectrogram")
    gr.Markdown("**Token sequence**")
    layout = gr.Plot(label="token layout", show_label=False, elem_id="patches_layout")
    view = (bind(patches_view, ctx), [clip_key, model_key], [frames, spec, layout, counts])
    run.click(*view, api_name="patches")
    return view
