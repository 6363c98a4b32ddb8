"""Model view: configuration, parameter counts, provenance and the model card of the picked checkpoint."""

from __future__ import annotations

import json
from typing import Optional

import gradio as gr

from components import settings, texts
from components.common import AppContext, bind
from components.core import LoadedModel

CONFIG_FIELDS = (
    "image_size", "num_frames", "image_patch_size", "spectrogram_length", "frequency_length", "audio_patch_size",
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "decoder_hidden_size",
    "decoder_num_hidden_layers", "pixel_mask_ratio", "audio_mask_ratio", "audio_mask_type", "task_matching",
    "task_mae", "num_labels", "loss_type",
)


def parameter_table(model: LoadedModel) -> str:
    rows = ["| part | parameters |", "|---|---:|"]
    total = 0
    for name, child in model.model.named_children():
        count = sum(p.numel() for p in child.parameters())
        total += count
        rows.append(f"| `{name}` | {count:,} |")
    direct = sum(p.numel() for p in model.model.parameters(recurse=False))
    if direct:
        rows.append(f"| (own tensors) | {direct:,} |")
        total += direct
    rows.append(f"| **total** | **{total:,}** |")
    return "\n".join(rows)


def config_table(model: LoadedModel) -> str:
    rows = ["| field | value |", "|---|---|"]
    rows += [f"| `{f}` | {getattr(model.config, f)} |" for f in CONFIG_FIELDS]
    return "\n".join(rows)


def provenance_line(model: LoadedModel) -> str:
    """How the checkpoint was made, from the provenance.json that `python -m tvlt.train` writes (if any)."""
    path = None if model.directory is None else model.directory / "provenance.json"
    if path is None or not path.is_file():
        return "**Provenance:** no provenance.json next to this checkpoint."
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        minutes = float(record.get("wall_seconds")) / 60
    except (ValueError, TypeError, AttributeError):  # not JSON, not an object, or no number of seconds
        return "**Provenance:** this checkpoint's provenance.json could not be read."
    commands = "; ".join(f"`{c}`" for c in record.get("commands", [])) or "not recorded"
    return (f"**Provenance:** {record.get('steps', '?')} steps, {record.get('clips_seen', '?')} clips, "
            f"{minutes:.1f} min on {record.get('device', 'unknown')} (commit {record.get('git_commit') or '?'}); "
            f"commands: {commands}")


def describe(model: LoadedModel, title: str) -> str:
    return "\n\n".join([
        f"### {title}",
        f"**Class:** `{model.kind}` · **source:** `{model.source}` · **trained on:** {model.trained_on} · "
        f"**not for:** {model.not_for}",
        provenance_line(model), config_table(model), parameter_table(model),
    ])


def _is_bundled(model: LoadedModel) -> bool:
    bundled = (settings.DEFAULT_PRETRAIN_DIR.resolve(), settings.DEFAULT_SENTIMENT_DIR.resolve())
    return model.directory is not None and model.directory.resolve() in bundled


def model_card(model: LoadedModel) -> str:
    """The bundled models' measured card for a bundled model, else the checkpoint's own README (a hub model card)."""
    if _is_bundled(model):
        if settings.MODEL_CARD_PATH.is_file():
            return settings.MODEL_CARD_PATH.read_text(encoding="utf-8")
        return "*The model card (`assets/MODEL_CARD.md`) is not there yet; it records the bundled models' metrics.*"
    own = None if model.directory is None else model.directory / "README.md"
    if own is not None and own.is_file():
        return own.read_text(encoding="utf-8")
    return (f"*`{model.source}` is not a bundled model and comes with no model card (README.md), so no measured "
            "metrics are known for it here; evaluate it before trusting its outputs.*")


def model_info(ctx: AppContext, model_key: Optional[str]) -> tuple[str, str]:
    """-> (configuration and parameters of the loaded models, model card Markdown)."""
    picked = ctx.registry.get(model_key)
    parts = [describe(picked, "Picked model" if model_key not in (None, ctx.registry.default_key) else "Main model")]
    if picked is not ctx.registry.default:
        parts.append(describe(ctx.registry.default, "Bundled main model"))
    if ctx.registry.sentiment is not None and picked is not ctx.registry.sentiment:
        parts.append(describe(ctx.registry.sentiment, "Sentiment model"))
    return "\n\n".join(parts), model_card(picked)


def build(ctx: AppContext, model_key: gr.State, model_loaded=None) -> None:
    gr.Markdown(texts.MODEL)
    run = gr.Button("Show model details", elem_id="model_run")
    info_md, card_md = model_info(ctx, None)
    info = gr.Markdown(info_md, elem_id="model_info")
    with gr.Accordion("Model card", open=True):
        card = gr.Markdown(card_md, elem_id="model_card")
    run.click(bind(model_info, ctx), model_key, [info, card], api_name="model_info")
    if model_loaded is not None:
        model_loaded.success(bind(model_info, ctx), model_key, [info, card], api_name=False)
