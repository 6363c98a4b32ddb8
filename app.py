"""TVLT Explorer: look inside a textless audio-visual transformer (layout and wiring only).

`python app.py` serves the bundled checkpoints; `TVLT_CHECKPOINT` (a local transformers-format directory, an
original `.ckpt` or a hub id) replaces the main model at start-up. Views live in `components/`.
"""

from __future__ import annotations

from components import settings  # first: sets GRADIO_TEMP_DIR and analytics off before gradio is imported

import logging
import os
import threading
from pathlib import Path
from typing import Optional

import gradio as gr

from components import attention_view, inputs, mae_view, model_view, patches, retrieval_view, sentiment_view, texts
from components.common import AppContext
from components.core import CLASSIFICATION, ClipStore, LoadedModel, ModelRegistry, load_checkpoint

logger = logging.getLogger("tvlt_explorer")


def build_demo(model_dir: str | os.PathLike | LoadedModel, sentiment_dir: str | os.PathLike | LoadedModel | None = None,
               examples: Optional[dict[str, str]] = None) -> gr.Blocks:
    """The whole app on the given checkpoints (directories, .ckpt files, hub ids, or already loaded models)."""
    main = model_dir if isinstance(model_dir, LoadedModel) else load_checkpoint(os.fspath(model_dir))
    sentiment = None
    if isinstance(sentiment_dir, LoadedModel):
        sentiment = sentiment_dir
    elif sentiment_dir is not None and Path(sentiment_dir).exists():
        sentiment = load_checkpoint(os.fspath(sentiment_dir))
    if main.kind == CLASSIFICATION:
        raise ValueError(f"{main.source} is a classifier; the main model must be a pretraining checkpoint")
    ctx = AppContext(ModelRegistry(main, sentiment), ClipStore(),
                     inputs.find_examples() if examples is None else dict(examples))

    with gr.Blocks(title="TVLT Explorer", analytics_enabled=False,
                   delete_cache=(600, settings.MAX_FILE_AGE_S)) as demo:
        clip_key = gr.State(None, time_to_live=settings.SESSION_TTL_S, delete_callback=ctx.clips.drop)
        model_key = gr.State(ctx.registry.default_key)
        gr.Markdown(texts.INTRO)
        load_events, model_loaded = inputs.build(ctx, clip_key, model_key)
        with gr.Tabs(elem_id="views"):
            with gr.Tab("Patches", id="patches", elem_id="tab_patches"):
                first_view = patches.build(ctx, clip_key, model_key)
            with gr.Tab("Masking & MAE", id="mae", elem_id="tab_mae"):
                mae_view.build(ctx, clip_key, model_key, load_events)
            with gr.Tab("Attention", id="attention", elem_id="tab_attention"):
                attention_view.build(ctx, clip_key, model_key, model_loaded, load_events)
            with gr.Tab("Retrieval", id="retrieval", elem_id="tab_retrieval"):
                retrieval_view.build(ctx, clip_key, model_key)
            with gr.Tab("Sentiment", id="sentiment", elem_id="tab_sentiment"):
                sentiment_view.build(ctx, clip_key, model_key)
            with gr.Tab("Model", id="model", elem_id="tab_model"):
                model_view.build(ctx, model_key, model_loaded)
        for event in load_events:  # the first view follows every successful load
            event.success(*first_view, api_name=False)
    demo.queue(default_concurrency_limit=settings.CONCURRENCY_LIMIT, max_size=settings.QUEUE_MAX_SIZE)
    demo.ctx = ctx  # tests and the benchmark reach the shared objects through here
    return demo


def default_sources() -> tuple[str, Optional[str]]:
    """(main, sentiment) checkpoints: TVLT_CHECKPOINT / TVLT_SENTIMENT_CHECKPOINT, else the bundled ones."""
    main = os.environ.get(settings.CHECKPOINT_ENV) or os.fspath(settings.DEFAULT_PRETRAIN_DIR)
    sentiment = os.environ.get(settings.SENTIMENT_CHECKPOINT_ENV) or os.fspath(settings.DEFAULT_SENTIMENT_DIR)
    return main, sentiment


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    main_source, sentiment_source = default_sources()
    try:
        main_model = load_checkpoint(main_source)
        if main_model.kind == CLASSIFICATION:  # a fine-tuned checkpoint replaces the sentiment model
            main_model, sentiment_source = load_checkpoint(os.fspath(settings.DEFAULT_PRETRAIN_DIR)), main_model
        demo = build_demo(main_model, sentiment_source)
    except (ValueError, OSError) as error:  # a bad TVLT_CHECKPOINT or an unreachable hub: one sentence, no trace
        raise SystemExit(f"TVLT Explorer could not start: {error}") from None
    threading.Thread(target=retrieval_view.warm_gallery, args=(demo.ctx,), daemon=True).start()
    demo.launch(server_name=settings.server_name(), server_port=settings.SERVER_PORT,
                max_file_size=f"{settings.MAX_UPLOAD_MB}mb", ssr_mode=False,
                allowed_paths=[os.fspath(settings.EXAMPLES_DIR)])


if __name__ == "__main__":
    main()
