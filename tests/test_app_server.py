"""Every endpoint through gradio_client against a live in-process server on tiny random models."""

from __future__ import annotations

from components import settings  # noqa: F401  (first: temp dir, analytics off)

import threading

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.components import helpers


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    pre, sent = helpers.save_tiny_models(root)
    media = helpers.make_media_set(root / "media")
    big = root / "media" / "big.mp4"
    big.write_bytes(b"\0" * (2 * 1024 * 1024))
    return {"pretrain": pre, "sentiment": sent, "big": big, **media}


@pytest.fixture(scope="module")
def server(files):
    import app

    demo = app.build_demo(files["pretrain"], files["sentiment"], examples=helpers.examples(files))
    demo.queue(default_concurrency_limit=2, max_size=16)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=helpers.free_port(), prevent_thread_lock=True, quiet=True,
                            ssr_mode=False, max_file_size="1mb")
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(server, files):
    c = Client(server, verbose=False)
    c.predict(handle_file(str(files["clip"])), None, 0.0, 2.0, api_name="/load_clip")
    return c


def test_api_lists_every_view(server):
    names = set(Client(server, verbose=False).view_api(return_format="dict")["named_endpoints"])
    assert {"/load_model", "/load_clip", "/pick_example", "/load_example_clip", "/patches", "/mae", "/mae_explicit",
            "/attention", "/attention_audio_to_video", "/attention_video_to_audio", "/retrieval", "/retrieval_add",
            "/retrieval_swap", "/sentiment", "/model_info"} <= names
    # patch clicks need the browser's event data; scripts reach the same results through the endpoints above
    assert not {"/mae_click_video", "/mae_click_audio", "/attention_click_frame", "/attention_click_spectrogram"} & names


def test_load_clip_and_patches(client):
    frames, spec, layout, counts = client.predict(api_name="/patches")
    assert all(isinstance(p, dict) and p.get("plot") for p in (frames, spec, layout))
    assert "| **total** |" in counts


def test_mae_endpoints(client):
    video_img, audio_img, original, vocoded, recon, stats, video_text, audio_text = client.predict(
        0.5, "tube", 0.3, "frequency", 1, api_name="/mae")
    assert video_img.endswith(".png") and audio_img.endswith(".png")
    assert all(sound.endswith(".wav") for sound in (original, vocoded, recon))
    assert "The encoder saw" in stats and video_text
    out = client.predict("0-3", "2", api_name="/mae_explicit")
    assert out[6] == "0-3" and out[7] == "2"


def test_attention_endpoints(client):
    cls_f, cls_s, roll_f, roll_s, notes = client.predict(1, "mean of heads", api_name="/attention")
    assert all(p.endswith(".png") for p in (cls_f, cls_s, roll_f, roll_s)) and "Layer 1" in notes
    image, note = client.predict(0, "0", 0.0, 0.3, api_name="/attention_audio_to_video")  # s into the file
    assert image.endswith(".png") and "Audio 0.00" in note
    image, note = client.predict(0, "1", 1, 0, 1, 0, api_name="/attention_video_to_audio")
    assert image.endswith(".png") and "Frame 1" in note


def test_retrieval_endpoints(client, files):
    gallery, summary = client.predict(None, api_name="/retrieval")
    assert len(gallery) == 2 and "rank" in summary  # the current clip (also example one) + example two
    assert all(item["image"] for item in gallery)
    note = client.predict(handle_file(str(files["other"])), api_name="/retrieval_add")
    assert "Your gallery (1)" in note
    gallery, summary = client.predict(handle_file(str(files["tone"])), api_name="/retrieval")
    assert len(gallery) == 3 and "uploaded / recorded audio" in summary
    table = client.predict("current clip", "square two", api_name="/retrieval_swap")
    assert "swapped" in table


def test_files_stay_in_the_app_temp_dir(client):
    import os
    from pathlib import Path

    upload_dir = Path(os.environ["GRADIO_TEMP_DIR"])
    assert upload_dir.is_relative_to(settings.TEMP_ROOT) or "TVLT_TEMP_DIR" in os.environ
    assert list(upload_dir.rglob("clip.mp4")) and list(upload_dir.rglob("*.png"))  # the upload and our images


def test_sentiment_and_model_endpoints(client):
    text, seven, binary, plot = client.predict(api_name="/sentiment")
    assert "Score" in text and len(seven["confidences"]) == 7 and plot["plot"]
    info, card = client.predict(api_name="/model_info")
    assert "Main model" in info


def test_examples_and_model_picker(server, files):
    c = Client(server, verbose=False)
    video = c.predict("square two", api_name="/pick_example")
    path = video["video"] if isinstance(video, dict) else video
    assert path.endswith(".mp4")
    status = c.predict(handle_file(path), None, 0.0, 2.0, api_name="/load_example_clip")
    assert "Loaded" in status
    key_banner = c.predict(str(files["sentiment"]), api_name="/load_model")
    assert "TvltForAudioVisualClassification" in key_banner
    with pytest.raises(AppError, match="No checkpoint found"):
        c.predict("/definitely/not/here", api_name="/load_model")


def test_errors_reach_the_client_as_sentences(server, files):
    c = Client(server, verbose=False)
    with pytest.raises(AppError, match="Load a clip first"):
        c.predict(api_name="/patches")
    with pytest.raises(AppError, match="notes.mp4"):
        c.predict(handle_file(str(files["text"])), None, 0.0, 2.0, api_name="/load_clip")
    with pytest.raises(ValueError, match="(?i)size|large|413"):  # over max_file_size: refused at upload
        c.predict(handle_file(str(files["big"])), None, 0.0, 2.0, api_name="/load_clip")
    # the session still works after the failures
    c.predict(handle_file(str(files["clip"])), None, 0.0, 2.0, api_name="/load_clip")
    assert "| **total** |" in c.predict(api_name="/patches")[3]


def test_two_users_at_once_get_their_own_results(server, files):
    results: dict[str, tuple] = {}

    def user(name: str, video: str) -> None:
        c = Client(server, verbose=False)
        status = c.predict(handle_file(video), None, 0.0, 2.0, api_name="/load_clip")
        _, summary = c.predict(None, api_name="/retrieval")
        stats = c.predict("0-1", "", api_name="/mae_explicit")[5]
        results[name] = (status, summary, stats)

    threads = [threading.Thread(target=user, args=("a", str(files["clip"]))),
               threading.Thread(target=user, args=("b", str(files["other"])))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert "`clip.mp4`" in results["a"][0] and "`other.mp4`" in results["b"][0]
    assert "current clip `clip.mp4`" in results["a"][1] and "current clip `other.mp4`" in results["b"][1]
    assert all("14 of 16 video" in r[2] for r in results.values())
