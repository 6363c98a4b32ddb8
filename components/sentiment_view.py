"""Sentiment view: score on [-3, 3], 7-class and positive/negative confidences, and modality ablations.

How confidences are derived from a regression score (documented in `texts.SENTIMENT`): the prediction is
treated as Normal(score, sigma) with sigma the model's measured RMSE (`config.extra["sentiment_rmse"]`, else
`DEFAULT_SIGMA`). The 7 classes are the integer bins of CMU-MOSEI's Acc-7 (round(clip(score, -3, 3))), so class k
gets the probability mass of [k - 0.5, k + 0.5) (the end classes take the tails); positive is score >= 0 (Acc-2).
A classification head with 7 labels is read directly (softmax), its score the expected class value.
"""

from __future__ import annotations

import math

import gradio as gr
import torch
from matplotlib.figure import Figure

from components import inputs, plots, texts
from components.common import AppContext, bind
from components.core import CLASSIFICATION, LoadedModel

DEFAULT_SIGMA = 1.0
CLASS_NAMES = {-3: "−3 very negative", -2: "−2 negative", -1: "−1 weakly negative", 0: "0 neutral",
               1: "+1 weakly positive", 2: "+2 positive", 3: "+3 very positive"}
CONDITIONS = ("video + audio", "video hidden (audio only)", "audio hidden (video only)")


def _normal_cdf(x: float, mean: float, sigma: float) -> float:
    return 0.5 * (1.0 + math.erf((x - mean) / (sigma * math.sqrt(2.0))))


def seven_class_confidences(score: float, sigma: float) -> dict[str, float]:
    """Probability of each integer bin -3..3 under Normal(score, sigma)."""
    out = {}
    for k in range(-3, 4):
        lo = -math.inf if k == -3 else k - 0.5
        hi = math.inf if k == 3 else k + 0.5
        upper = 1.0 if hi == math.inf else _normal_cdf(hi, score, sigma)
        lower = 0.0 if lo == -math.inf else _normal_cdf(lo, score, sigma)
        out[CLASS_NAMES[k]] = upper - lower
    return out


def binary_confidences(score: float, sigma: float) -> dict[str, float]:
    positive = 1.0 - _normal_cdf(0.0, score, sigma)
    return {"positive (≥ 0)": positive, "negative (< 0)": 1.0 - positive}


def _sigma(model: LoadedModel) -> float:
    value = (model.config.extra or {}).get("sentiment_rmse")
    return float(value) if value else DEFAULT_SIGMA


def scores_from_logits(model: LoadedModel, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, num_labels) -> (scores (B,) on [-3, 3], 7-class probabilities (B, 7) or None for regression)."""
    if model.config.num_labels == 1:
        return logits[:, 0].clamp(-3.0, 3.0), None
    if model.config.num_labels == 7:
        probs = logits.softmax(dim=-1)
        return probs @ torch.arange(-3.0, 4.0), probs
    raise gr.Error(f"This classifier has {model.config.num_labels} labels; the sentiment view needs 1 (a score) or 7.")


def _condition_inputs(inputs: dict, model: LoadedModel) -> list[dict]:
    """Inputs for: both present; video hidden; audio hidden.

    Hiding a modality marks all its tokens as padding, so no other token can attend to them. The hidden
    modality is shrunk to one frame / one time patch first (as `tvlt.retrieval.embed_audio` does): masked keys
    contribute nothing, so the result is the same and the pass is much cheaper.
    """
    config = model.config
    pv, av = inputs["pixel_values"], inputs["audio_values"]
    per_frame = model.model.tvlt.pixel_embeddings.num_patches_per_image
    freq_patches = config.frequency_length // config.audio_patch_size[1]
    n_video, n_audio = per_frame * pv.shape[1], freq_patches * (av.shape[2] // config.audio_patch_size[0])
    pixel_mask = torch.ones(1, n_video) if inputs.get("pixel_mask") is None else inputs["pixel_mask"].float()
    audio_mask = torch.ones(1, n_audio) if inputs.get("audio_mask") is None else inputs["audio_mask"].float()
    no_video = dict(pixel_values=torch.zeros_like(pv[:, :1]), pixel_mask=torch.zeros(1, per_frame))
    no_audio = dict(audio_values=torch.zeros_like(av[:, :, : config.audio_patch_size[0]]), audio_mask=torch.zeros(1, freq_patches))
    both = dict(pixel_values=pv, audio_values=av, pixel_mask=pixel_mask, audio_mask=audio_mask)
    return [both, {**both, **no_video}, {**both, **no_audio}]


def reference_label(file_name: str) -> str:
    """The bundled example's own label (from assets/examples/manifest.json), when the clip is one."""
    entry = inputs.read_manifest().get(file_name) or {}
    if entry.get("kind") == "scene":
        return ("This bundled example is a sound-making scene, not a talking face: it has no sentiment, and the "
                "sentiment model never saw scenes, so its score here means nothing.\n\n")
    if not isinstance(entry.get("label"), (int, float)):
        return ""
    cues = ""
    if "face_valence" in entry:
        cues = (f" (face {entry['face_valence']:+.2f}, voice {entry.get('voice_valence', 0.0):+.2f}"
                f"{', conflicting cues' if entry.get('conflict') else ''})")
    return f"This bundled example's reference label: **{entry['label']:+.2f}**{cues}.\n\n"


def sentiment_view(ctx: AppContext, clip_key: str, model_key: str,
                   progress: gr.Progress = gr.Progress()) -> tuple[str, dict, dict, Figure]:
    """-> (score Markdown, 7-class confidences, positive/negative confidences, ablation figure)."""
    clip = ctx.clip(clip_key)
    model = ctx.model(model_key, need=CLASSIFICATION)
    progress(0.2, desc="preparing model inputs")
    inputs = clip.inputs(model)
    progress(0.4, desc="scoring with both modalities, without video, without audio")
    with model.lock, torch.no_grad():
        logits = torch.cat([model.model(**condition).logits for condition in _condition_inputs(inputs, model)])
    scores, probs = scores_from_logits(model, logits)
    score, sigma = float(scores[0]), _sigma(model)
    if probs is None:
        seven, binary = seven_class_confidences(score, sigma), binary_confidences(score, sigma)
    else:
        seven = {CLASS_NAMES[k]: float(p) for k, p in zip(range(-3, 4), probs[0])}
        positive = float(probs[0, 3:].sum())
        binary = {"positive (≥ 0)": positive, "negative (< 0)": 1.0 - positive}
    shifts = ", ".join(f"{name}: {float(s):+.2f}" for name, s in zip(CONDITIONS[1:], scores[1:]))
    text = (f"### Score {score:+.2f} on [−3, +3]\n{reference_label(clip.name)}"
            f"Class confidences assume the prediction is off by about σ = {sigma:.2f} (see the note above). "
            f"Hiding a modality moves the score — {shifts}. A modality whose removal barely moves it contributed little.")
    return text, seven, binary, plots.sentiment_figure(CONDITIONS, [float(s) for s in scores])


def build(ctx: AppContext, clip_key: gr.State, model_key: gr.State) -> None:
    gr.Markdown(texts.SENTIMENT)
    run = gr.Button("Rate sentiment", variant="primary", elem_id="sent_run")
    score = gr.Markdown(elem_id="sent_score")
    with gr.Row():
        seven = gr.Label(num_top_classes=7, label="7 classes (−3 … +3)", elem_id="sent_seven")
        binary = gr.Label(label="positive / negative", elem_id="sent_binary")
    gr.Markdown("**Score with each modality hidden**")
    ablation = gr.Plot(label="ablation", show_label=False, elem_id="sent_ablation")
    run.click(bind(sentiment_view, ctx), [clip_key, model_key], [score, seven, binary, ablation],
              api_name="sentiment")
