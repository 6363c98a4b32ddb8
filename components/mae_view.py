"""Masking & MAE view: choose or click a mask, reconstruct frames and spectrogram, listen to the result."""

from __future__ import annotations

import time
from typing import Optional

import gradio as gr
import numpy as np
import torch

from components import plots, texts
from components.common import AppContext, bind, audio_values_to_spectrogram, pixel_values_to_frames, user_error
from components.core import LoadedModel
from tvlt import audio as tvlt_audio
from tvlt.layout import TokenLayout
from tvlt.mae import MaeResult, reconstruct
from tvlt.masking import AUDIO_MASK_TYPES, VIDEO_MASK_TYPES, MaskSpec

MaeOutputs = tuple[np.ndarray, np.ndarray, tuple, tuple, tuple, str, str, str]


# ---------------------------------------------------------------- masks as text (scriptable, editable)
def parse_indices(text: Optional[str], total: int, what: str) -> list[int]:
    """'3, 7, 10-12' -> sorted unique token indices within [0, total)."""
    indices: set[int] = set()
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            lo, _, hi = part.partition("-")
            lo_i, hi_i = int(lo), int(hi) if hi else int(lo)
        except ValueError:
            raise gr.Error(f"The {what} mask must be token numbers like “3, 7, 10-12”; “{part}” is not.") from None
        if not 0 <= lo_i <= hi_i < total:
            raise gr.Error(f"The {what} mask lists token {part}, but there are only {total} {what} tokens (0 to {total - 1}).")
        indices.update(range(lo_i, hi_i + 1))
    return sorted(indices)


def format_indices(mask: torch.Tensor) -> str:
    """bool grid -> compact '0-3, 7' of the flat indices that are True."""
    flat = torch.nonzero(mask.flatten()).flatten().tolist()
    runs, start = [], None
    for i, v in enumerate(flat):
        if start is None:
            start = v
        if i + 1 == len(flat) or flat[i + 1] != v + 1:
            runs.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(runs)


# ---------------------------------------------------------------- geometry of the clickable images
def video_grid(layout: TokenLayout) -> plots.PanelGrid:
    cell_h, cell_w = plots.frame_cell_size(*layout.image_size)
    return plots.PanelGrid(rows=layout.num_frames, cols=len(plots.VIDEO_MAE_COLUMNS), cell_h=cell_h, cell_w=cell_w)


def audio_grid(layout: TokenLayout) -> plots.PanelGrid:
    S, F = layout.spectrogram_size
    cell_w = max(512, min(S * 2, 1024))
    return plots.PanelGrid(rows=len(plots.AUDIO_MAE_ROWS), cols=1, cell_h=max(128, F), cell_w=cell_w, header=0)


def video_click_to_token(layout: TokenLayout, x: float, y: float) -> Optional[int]:
    hit = video_grid(layout).locate(x, y)
    if hit is None:
        return None
    frame, _, u, v = hit
    return int(layout.video_index(frame, int(u * layout.grid_rows), int(v * layout.grid_cols)))


def audio_click_to_token(layout: TokenLayout, x: float, y: float) -> Optional[int]:
    hit = audio_grid(layout).locate(x, y)
    if hit is None:
        return None
    _, _, u, v = hit
    freq = layout.audio_freq_patches - 1 - int(u * layout.audio_freq_patches)  # low frequencies at the bottom
    return int(layout.audio_index(int(v * layout.audio_time_patches), freq))


# ---------------------------------------------------------------- images
def _error_cells(error: np.ndarray, is_target: np.ndarray, vmax: float) -> np.ndarray:
    """Per-patch error grid -> colours, hidden patches only (visible and padding dark grey)."""
    colours = plots.colourise(np.nan_to_num(error), "magma", vmin=0.0, vmax=vmax)
    colours[~is_target] = 40
    return colours


def video_panel(layout: TokenLayout, original: np.ndarray, recon: np.ndarray, pasted: np.ndarray,
                is_masked: np.ndarray, is_valid: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Frames uint8 (T, H, W, 3) x 5 columns; grids (T, h, w)."""
    patch = layout.image_patch_size
    target = is_masked & is_valid
    vmax = float(np.nanmax(np.where(target, error, np.nan))) if target.any() else 1.0
    rows = []
    for t in range(layout.num_frames):
        err = plots.upsample_grid(_error_cells(error[t], target[t], vmax), patch)
        rows.append([
            plots.draw_patch_grid(original[t], patch, alpha=0.25),
            plots.draw_patch_grid(plots.grey_out(original[t], is_masked[t], patch), patch, alpha=0.25),
            recon[t], pasted[t], err,
        ])
    return video_grid(layout).compose(rows, plots.VIDEO_MAE_COLUMNS, [f"frame {t}" for t in range(layout.num_frames)])


def audio_panel(layout: TokenLayout, original: np.ndarray, recon: np.ndarray, pasted: np.ndarray,
                is_masked: np.ndarray, is_valid: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Spectrograms (S, F) x 5 rows; grids (s, f)."""
    patch = layout.audio_patch_size
    target = is_masked & is_valid
    vmax = float(np.nanmax(np.where(target, error, np.nan))) if target.any() else 1.0

    def as_image(grid_rgb: np.ndarray) -> np.ndarray:  # (s, f, 3) patch colours -> (F, S, 3) image
        return plots.upsample_grid(grid_rgb, patch).transpose(1, 0, 2)[::-1]

    hidden = as_image(np.repeat(is_masked[..., None], 3, axis=-1))[..., 0]
    masked = plots.spectrogram_rgb(original)
    masked[hidden] = plots.hatch(*masked.shape[:2])[hidden]
    cells = [plots.spectrogram_rgb(original), masked, plots.spectrogram_rgb(recon), plots.spectrogram_rgb(pasted),
             as_image(_error_cells(error, target, vmax))]
    cells = [plots.draw_patch_grid(np.ascontiguousarray(c), (patch[1], patch[0]), alpha=0.2) for c in cells]
    return audio_grid(layout).compose([[c] for c in cells], row_titles=plots.AUDIO_MAE_ROWS)


# ---------------------------------------------------------------- handler
def _mae(ctx: AppContext, clip_key: str, model_key: str, video_masking, audio_masking,
         progress: gr.Progress) -> MaeOutputs:
    clip = ctx.clip(clip_key)
    model = ctx.model(model_key)
    if not model.config.task_mae:
        raise gr.Error("This checkpoint has no MAE decoder, so it cannot reconstruct; pick a pretraining checkpoint.")
    progress(0.1, desc="preparing model inputs")
    inputs = clip.inputs(model)
    progress(0.3, desc="encoding the visible patches and decoding all of them")
    started = time.perf_counter()
    try:
        with model.lock:
            result = reconstruct(model.model, inputs["pixel_values"], inputs["audio_values"], video_masking,
                                 audio_masking, inputs.get("pixel_mask"), inputs.get("audio_mask"))
    except ValueError as error:
        raise user_error(error, "Cannot apply this mask") from error
    elapsed = time.perf_counter() - started
    progress(0.6, desc="drawing")
    layout = TokenLayout.from_config(model.config, inputs["pixel_values"].shape[1], inputs["audio_values"].shape[2])
    video_img, audio_img = _panels(layout, inputs, result)
    progress(0.8, desc="inverting spectrograms to sound (Griffin-Lim)")
    original_audio, vocoded_audio, recon_audio = _audio_triple(clip, inputs, result, layout)
    stats = _stats(model, layout, result, elapsed)
    return (video_img, audio_img, original_audio, vocoded_audio, recon_audio, stats,
            format_indices(result.video_is_masked[0] & result.video_is_valid[0]),
            format_indices(result.audio_is_masked[0] & result.audio_is_valid[0]))


def _panels(layout: TokenLayout, inputs: dict, result: MaeResult) -> tuple[np.ndarray, np.ndarray]:
    grids = {k: getattr(result, k)[0].cpu().numpy() for k in (
        "video_is_masked", "video_is_valid", "video_patch_error", "audio_is_masked", "audio_is_valid", "audio_patch_error")}
    video_img = video_panel(
        layout, pixel_values_to_frames(inputs["pixel_values"][0]), pixel_values_to_frames(result.video_reconstruction[0]),
        pixel_values_to_frames(result.video_composite[0]), grids["video_is_masked"], grids["video_is_valid"],
        grids["video_patch_error"])
    audio_img = audio_panel(
        layout, audio_values_to_spectrogram(inputs["audio_values"][0]),
        audio_values_to_spectrogram(result.audio_reconstruction[0]).clip(-1, 1),
        audio_values_to_spectrogram(result.audio_composite[0]).clip(-1, 1),
        grids["audio_is_masked"], grids["audio_is_valid"], grids["audio_patch_error"])
    return video_img, audio_img


def _audio_triple(clip, inputs: dict, result: MaeResult, layout: TokenLayout) -> tuple[tuple, tuple, tuple]:
    """44.1 kHz (rate, int16) of: the waveform of the window the model heard; its own spectrogram through
    Griffin-Lim (what a perfect reconstruction would sound like: the phase is re-estimated either way, so this,
    not the original, is the fair comparison); the pasted reconstruction through the same Griffin-Lim."""
    valid_time = int(result.audio_is_valid[0].any(dim=1).sum()) * layout.audio_patch_size[0]
    spec = audio_values_to_spectrogram(result.audio_composite[0])[:valid_time].clip(-1, 1)
    recon = tvlt_audio.mel_to_waveform(spec)
    own = inputs["audio_values"][0]
    vocoded = clip.derive(("griffin-lim", own.shape[-2], valid_time),  # the same for every mask: a cache hit is free
                          lambda: to_int16(tvlt_audio.mel_to_waveform(audio_values_to_spectrogram(own)[:valid_time])))
    rate = tvlt_audio.SAMPLING_RATE
    return (rate, to_int16(clip.waveform[: len(recon)])), (rate, vocoded), (rate, to_int16(recon))


def to_int16(waveform: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 PCM (what gr.Audio sends; converting here avoids gradio's warning)."""
    return (np.clip(waveform, -1.0, 1.0) * 32767).astype(np.int16)


def _stats(model: LoadedModel, layout: TokenLayout, result: MaeResult, elapsed: float) -> str:
    v_valid = int(result.video_is_valid[0].sum())
    a_valid = int(result.audio_is_valid[0].sum())
    v_err, a_err = (_error_text(e[0]) for e in (result.video_masked_error, result.audio_masked_error))
    return (
        f"The encoder saw **{int(result.num_visible_video[0])} of {v_valid} video** tokens and "
        f"**{int(result.num_visible_audio[0])} of {a_valid} audio** tokens — {result.num_encoder_tokens} tokens with CLS instead "
        f"of {layout.num_tokens}. Encode + decode took **{elapsed * 1000:.0f} ms** on this machine. "
        f"Mean squared error on hidden patches (model input units): video {v_err}, audio {a_err}."
    )


def _error_text(error: torch.Tensor) -> str:
    return "— (nothing hidden)" if torch.isnan(error) else f"{float(error):.4f}"


def run_mae(ctx: AppContext, clip_key: str, model_key: str, video_ratio: float, video_type: str, audio_ratio: float,
            audio_type: str, seed: int, progress: gr.Progress = gr.Progress()) -> MaeOutputs:
    """Generated masks: hide `video_ratio` of the video units of `video_type` and `audio_ratio` of the audio units."""
    if video_type not in VIDEO_MASK_TYPES or audio_type not in AUDIO_MASK_TYPES:
        raise gr.Error(f"Mask types must be one of {VIDEO_MASK_TYPES} (video) and {AUDIO_MASK_TYPES} (audio).")
    try:
        video_spec = MaskSpec(float(video_ratio), video_type, int(seed))
        audio_spec = MaskSpec(float(audio_ratio), audio_type, int(seed))
    except (TypeError, ValueError) as error:
        raise user_error(error, "Invalid mask") from error
    return _mae(ctx, clip_key, model_key, video_spec, audio_spec, progress)


def run_mae_explicit(ctx: AppContext, clip_key: str, model_key: str, video_hidden: str, audio_hidden: str,
                     progress: gr.Progress = gr.Progress()) -> MaeOutputs:
    """Explicit masks: the listed video / audio token numbers (counted within each modality) are hidden."""
    layout = _layout(ctx, clip_key, model_key)
    video = torch.zeros(layout.num_video_tokens, dtype=torch.bool)
    video[parse_indices(video_hidden, layout.num_video_tokens, "video")] = True
    audio = torch.zeros(layout.num_audio_tokens, dtype=torch.bool)
    audio[parse_indices(audio_hidden, layout.num_audio_tokens, "audio")] = True
    return _mae(ctx, clip_key, model_key, video, audio, progress)


def _layout(ctx: AppContext, clip_key: str, model_key: str) -> TokenLayout:
    """The token layout of the user's clip under the user's model."""
    clip, model = ctx.clip(clip_key), ctx.model(model_key)
    inputs = clip.inputs(model)
    return TokenLayout.from_config(model.config, inputs["pixel_values"].shape[1], inputs["audio_values"].shape[2])


def toggle_token(text: str, token: Optional[int], total: int, what: str) -> str:
    if token is None:
        return text
    hidden = set(parse_indices(text, total, what))
    hidden ^= {token}
    mask = torch.zeros(total, dtype=torch.bool)
    mask[sorted(hidden)] = True
    return format_indices(mask)


def click_video(ctx: AppContext, clip_key: str, model_key: str, video_hidden: str, evt: gr.SelectData) -> str:
    """A click on the video image toggles the patch under it in the explicit video mask."""
    layout, (x, y) = _layout(ctx, clip_key, model_key), evt.index
    return toggle_token(video_hidden, video_click_to_token(layout, x, y), layout.num_video_tokens, "video")


def click_audio(ctx: AppContext, clip_key: str, model_key: str, audio_hidden: str, evt: gr.SelectData) -> str:
    """A click on the spectrogram image toggles the audio patch under it."""
    layout, (x, y) = _layout(ctx, clip_key, model_key), evt.index
    return toggle_token(audio_hidden, audio_click_to_token(layout, x, y), layout.num_audio_tokens, "audio")


def warm_up() -> None:
    """Pay librosa's import and first-call compilation at start-up rather than in the first visitor's request."""
    tvlt_audio.mel_to_waveform(np.full((16, tvlt_audio.N_MELS), -1.0, np.float32))


def build(ctx: AppContext, clip_key: gr.State, model_key: gr.State, clip_loaded: tuple = ()) -> None:
    warm_up()
    gr.Markdown(texts.MAE)
    config = ctx.registry.default.config
    with gr.Row():
        video_ratio = gr.Slider(0.0, 0.95, value=config.pixel_mask_ratio, step=0.05, label="video: fraction hidden",
                                elem_id="mae_video_ratio")
        video_type = gr.Radio(list(VIDEO_MASK_TYPES), value="random", label="video mask type", elem_id="mae_video_type")
        audio_ratio = gr.Slider(0.0, 0.95, value=config.audio_mask_ratio, step=0.05, label="audio: fraction hidden",
                                elem_id="mae_audio_ratio")
        audio_type = gr.Radio(list(AUDIO_MASK_TYPES), value="time", label="audio mask type", elem_id="mae_audio_type")
        seed = gr.Number(0, precision=0, label="seed", elem_id="mae_seed", minimum=0)
    run = gr.Button("Mask and reconstruct", variant="primary", elem_id="mae_run")
    stats = gr.Markdown(elem_id="mae_stats")
    gr.Markdown("**Frames** — one row per frame; click any patch to hide or reveal it.")
    video_img = gr.Image(label="frames", show_label=False, type="numpy", interactive=False, elem_id="mae_video",
                         format="png")
    gr.Markdown("**Spectrogram** — time →, frequency ↑; click any patch to hide or reveal it.")
    audio_img = gr.Image(label="spectrogram", show_label=False, type="numpy", interactive=False, elem_id="mae_audio",
                         format="png")
    with gr.Row():
        original_audio = gr.Audio(label="original audio (the part the model hears)", type="numpy", elem_id="mae_audio_original")
        vocoded_audio = gr.Audio(label="original spectrogram through Griffin-Lim (a perfect reconstruction)",
                                 type="numpy", elem_id="mae_audio_vocoded")
        recon_audio = gr.Audio(label="reconstruction (the pasted spectrogram through the same Griffin-Lim)",
                               type="numpy", elem_id="mae_audio_recon")
    with gr.Accordion("Explicit masks (token numbers within each modality)", open=False):
        video_hidden = gr.Textbox(label="hidden video tokens", elem_id="mae_video_hidden")
        audio_hidden = gr.Textbox(label="hidden audio tokens", elem_id="mae_audio_hidden")
        run_explicit = gr.Button("Reconstruct with these masks", elem_id="mae_run_explicit")
    outputs = [video_img, audio_img, original_audio, vocoded_audio, recon_audio, stats, video_hidden, audio_hidden]
    for event in clip_loaded:  # a new clip has other tokens: the last clip's masks do not apply to it
        event.success(lambda: ("", ""), None, [video_hidden, audio_hidden], api_name=False)
    run.click(bind(run_mae, ctx), [clip_key, model_key, video_ratio, video_type, audio_ratio, audio_type, seed],
              outputs, api_name="mae")
    explicit = bind(run_mae_explicit, ctx)
    run_explicit.click(explicit, [clip_key, model_key, video_hidden, audio_hidden], outputs, api_name="mae_explicit")
    # clicks carry browser event data a script cannot send: UI-only; scripts use /mae_explicit
    ui_only = dict(api_visibility="private")
    for image, click, hidden, name in ((video_img, click_video, video_hidden, "mae_click_video"),
                                       (audio_img, click_audio, audio_hidden, "mae_click_audio")):
        image.select(bind(click, ctx), [clip_key, model_key, hidden], hidden, api_name=name, **ui_only).success(
            explicit, [clip_key, model_key, video_hidden, audio_hidden], outputs, api_name=f"{name}_run", **ui_only)
