"""End to end in headless Chromium: upload a clip, open every view, check its outputs; webcam + microphone.

Set TVLT_SCREENSHOTS=docs/screenshots to also write one screenshot per view (on the bundled checkpoints when
they exist, else on the tiny random test models).
"""

from __future__ import annotations

from components import settings  # noqa: F401  (first: temp dir, analytics off)

import os
import re
from pathlib import Path

import pytest

from tests.components import helpers

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TVLT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
SHOTS = os.environ.get("TVLT_SCREENSHOTS")
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    if SHOTS and not settings.DEFAULT_PRETRAIN_DIR.is_dir():  # screenshots at the bundled size, random weights
        from benchmarks.bench_app import random_models
        from tvlt.config import TvltConfig

        pre, sent = random_models(root, TvltConfig.small(), "small")
    else:
        pre, sent = helpers.save_tiny_models(root)
    return {"pretrain": pre, "sentiment": sent, **helpers.make_media_set(root / "media")}


@pytest.fixture(scope="module")
def server(files):
    import app
    from components import inputs

    bundled = settings.DEFAULT_PRETRAIN_DIR.is_dir()  # the repository ships it: test what a visitor gets
    examples = inputs.find_examples() if bundled and inputs.find_examples() else helpers.examples(files)
    demo = app.build_demo(settings.DEFAULT_PRETRAIN_DIR if bundled else files["pretrain"],
                          settings.DEFAULT_SENTIMENT_DIR if bundled else files["sentiment"], examples=examples)
    demo.queue(default_concurrency_limit=2, max_size=16)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=helpers.free_port(), prevent_thread_lock=True, quiet=True,
                            ssr_mode=False, allowed_paths=[str(Path(p).parent) for p in examples.values()])
    yield url, examples
    demo.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(permissions=["camera", "microphone"], viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = []  # printed at teardown: pytest shows them when the test failed
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}")
            if r.failure != "net::ERR_ABORTED" else None)  # aborted: a finished event stream, as normal
    page.goto(server[0])
    page.locator("#input_video").wait_for(state="visible")
    try:
        yield page
    finally:
        print("\n".join(problems) or "no browser errors")
        if not page.is_closed():
            print("status:", page.locator("#input_status").inner_text(timeout=5000))
        context.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_every_view_in_the_browser(page, server):
    examples = server[1]
    banner = page.locator("#model_banner").inner_text()  # the page always says what is loaded and what it is for
    assert "trained on:" in banner and "not for:" in banner and "TvltForPreTraining" in banner
    # a bundled scene (what the pretraining model learned on), uploaded as a visitor would
    scene = next((path for name, path in examples.items() if "scene" in name), next(iter(examples.values())))
    page.locator("#input_video input[type=file]").set_input_files(scene)
    page.locator("#input_video video").wait_for()
    page.locator("#input_load").click()
    page.locator("#input_status").get_by_text("Loaded").wait_for()
    # the first view follows the load by itself
    for plot in ("#patches_frames img", "#patches_spectrogram img", "#patches_layout img"):
        page.locator(plot).wait_for()
    assert "total" in page.locator("#patches_counts").inner_text()
    shot(page, "patches")

    open_tab(page, "Masking & MAE")
    page.locator("#mae_run").click()
    page.locator("#mae_video img").wait_for()
    page.locator("#mae_audio img").wait_for()
    page.locator("#mae_audio_recon a[download]").wait_for()
    page.locator("#mae_audio_original a[download]").wait_for()
    page.locator("#mae_audio_vocoded a[download]").wait_for()
    assert "The encoder saw" in page.locator("#mae_stats").inner_text()
    shot(page, "mae")
    page.get_by_text("Explicit masks (token numbers").click()  # open the accordion holding the mask text
    before = page.locator("#mae_video_hidden textarea").input_value()
    assert before  # the generated mask, as token numbers
    box = page.locator("#mae_video img").bounding_box()
    page.locator("#mae_video img").click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.12})
    page.wait_for_function(
        "b => document.querySelector('#mae_video_hidden textarea').value !== b", arg=before, timeout=TIMEOUT_MS)
    page.locator("#mae_stats").get_by_text("The encoder saw").wait_for()  # the re-run with the edited mask

    open_tab(page, "Attention")
    page.locator("#att_run").click()
    for image in ("#att_cls_frames img", "#att_cls_spec img", "#att_roll_frames img", "#att_roll_spec img"):
        page.locator(image).wait_for()
    page.locator("#att_a2v_run").click()
    page.locator("#att_a2v img").wait_for()
    page.locator("#att_a2v_note").get_by_text("Audio 0.00").wait_for()
    box = page.locator("#att_cls_spec img").bounding_box()  # a click on the spectrogram picks its time patch
    page.locator("#att_cls_spec img").click(position={"x": box["width"] * 0.75, "y": box["height"] * 0.5})
    page.wait_for_function("() => !document.querySelector('#att_a2v_note').innerText.includes('Audio 0.00')",
                           timeout=TIMEOUT_MS)
    assert float(page.locator("#att_span_start input").input_value()) > 0
    box = page.locator("#att_cls_frames img").bounding_box()
    page.locator("#att_cls_frames img").click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.6})
    page.locator("#att_v2a img").wait_for()
    shot(page, "attention")

    open_tab(page, "Retrieval")
    page.locator("#ret_run").click()
    page.locator("#ret_summary").get_by_text("rank").wait_for()
    assert page.locator("#ret_gallery img").count() >= 2
    page.locator("#ret_swap").click()
    page.locator("#ret_swap_table").get_by_text("swapped").wait_for()
    shot(page, "retrieval")

    face = next((name for name in examples if "face" in name), None)
    if face is not None:  # sentiment on what the sentiment model learned on: a talking face
        pick_example(page, face)
    open_tab(page, "Sentiment")
    page.locator("#sent_run").click()
    page.locator("#sent_ablation img").wait_for()
    page.locator("#sent_score h3").get_by_text("Score").wait_for()
    assert "neutral" in page.locator("#sent_seven").inner_text()
    assert "positive" in page.locator("#sent_binary").inner_text()
    shot(page, "sentiment")

    open_tab(page, "Model")
    page.locator("#model_run").click()
    assert "total" in page.locator("#model_info").inner_text()
    shot(page, "model")


def test_errors_show_as_sentences_and_the_page_keeps_working(page, files):
    page.locator("#input_load").click()
    page.get_by_text("Upload or record a video").first.wait_for()
    page.locator("#input_video input[type=file]").set_input_files(str(files["text"]))
    page.wait_for_timeout(1000)
    page.locator("#input_load").click()
    page.get_by_text("notes.mp4").first.wait_for()
    assert "Traceback" not in page.content()


def pick_example(page, name: str) -> None:
    before = page.locator("#input_status").inner_text()
    page.locator("#input_example input").click()
    page.get_by_role("option", name=name).click()
    page.wait_for_function(  # picking loads the clip by itself
        "b => { const t = document.querySelector('#input_status').innerText; return t !== b && t.includes('Loaded'); }",
        arg=before, timeout=TIMEOUT_MS)


def test_pick_a_bundled_example(page, server):
    pick_example(page, next(iter(server[1])))
    page.locator("#patches_frames img").wait_for()


def test_webcam_and_microphone_recording(page):
    page.locator("#input_video button[aria-label='Capture from camera']").click()
    page.get_by_text("Click to Access Webcam").click()
    record = page.locator("#input_video button[aria-label='start recording']")
    record.click()
    page.wait_for_timeout(2500)
    page.locator("#input_video button[aria-label='stop recording'], #input_video button[aria-label='start recording']").first.click()
    page.locator("#input_video video[src*='.webm']").wait_for()
    page.locator("#input_audio button[aria-label='Record audio']").click()
    page.locator("#input_audio button.record-button").click()
    page.wait_for_timeout(1500)
    page.locator("#input_audio button.stop-button").first.click()
    page.locator("#input_audio a[download]").wait_for()
    page.locator("#input_load").click()
    status = page.locator("#input_status")
    status.get_by_text("Loaded").wait_for()
    assert "replaces" in status.inner_text()  # the microphone track replaced the webcam's
    # a browser recording states no duration: the frames must still spread over it, not collapse to one
    sampled = int(re.search(r"(\d+) frames sampled", status.inner_text()).group(1))
    assert sampled > 1
    page.locator("#patches_frames img").wait_for()
