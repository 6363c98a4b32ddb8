import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tvlt import modeling
from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout
from tvlt.modeling import (
    TvltForAudioVisualClassification,
    TvltForPreTraining,
    TvltModel,
    explicit_ids_shuffle,
    keep_tokens,
    restore_tokens,
)

MODEL_FIXTURES = Path(__file__).parent / "fixtures" / "model"
CASES = {
    "tiny": "TvltModel",
    "odd": "TvltModel",
    "regression": "TvltForAudioVisualClassification",
    "multiclass": "TvltForAudioVisualClassification",
    "pretraining": "TvltForPreTraining",
}


def fixture_inputs(io: dict) -> dict[str, torch.Tensor]:
    return {k.removeprefix("input."): v for k, v in io.items() if k.startswith("input.")}


def call(model, inputs: dict, padded: bool, **flags):
    """Same calls as tests/fixtures/make_model_fixtures.py."""
    kwargs = dict(flags)
    if padded:
        kwargs.update(pixel_mask=inputs["pixel_mask"], audio_mask=inputs["audio_mask"])
    if isinstance(model, TvltForPreTraining):
        kwargs.update(labels=inputs["labels"], pixel_values_mixed=inputs["pixel_values_mixed"])
        if padded:
            kwargs["pixel_mask_mixed"] = inputs["pixel_mask"]
    return model(inputs["pixel_values"], inputs["audio_values"], **kwargs)


def reference_value(outputs: dict, key: str) -> torch.Tensor:
    run, attribute, *index = key.split(".")
    value = getattr(outputs[run], attribute)
    return value[int(index[0])] if index else value


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("case", CASES)
def test_matches_transformers(case, fmt):
    io = load_file(MODEL_FIXTURES / case / "io.safetensors")
    inputs = fixture_inputs(io)
    model = getattr(modeling, CASES[case]).from_pretrained(MODEL_FIXTURES / case / fmt)
    with torch.no_grad():
        outputs = {
            "padded": call(model, inputs, True, output_attentions=True, output_hidden_states=True),
            "plain": call(model, inputs, False, output_hidden_states=True),
        }
    checked = set()
    for key, expected in io.items():
        if key.split(".")[0] not in outputs:
            continue
        tolerance = 1e-5 if ".attentions." in key else 1e-4
        actual = reference_value(outputs, key).reshape(expected.shape)
        assert (actual - expected).abs().max() < tolerance, key
        checked.add(key.split(".")[1])
    head = {"TvltModel": "last_hidden_state", "TvltForAudioVisualClassification": "logits"}.get(CASES[case], "matching_logits")
    assert {head, "hidden_states", "attentions"} <= checked


def test_training_mae_matches_transformers_under_the_same_seed():
    io = load_file(MODEL_FIXTURES / "pretraining" / "io.safetensors")
    inputs = fixture_inputs(io)
    inputs["pixel_mask"] = torch.ones_like(inputs["pixel_mask"])
    model = TvltForPreTraining.from_pretrained(MODEL_FIXTURES / "pretraining" / "safetensors").train()
    torch.manual_seed(1234)
    with torch.no_grad():
        output = call(model, inputs, True)
    for name in ("loss", "matching_logits", "pixel_logits", "audio_logits"):
        expected = io[f"train.{name}"]
        assert (getattr(output, name).reshape(expected.shape) - expected).abs().max() < 1e-4, name


@pytest.fixture
def pretraining(tiny_config) -> TvltForPreTraining:
    torch.manual_seed(0)
    return TvltForPreTraining(tiny_config).eval()


def test_explicit_masks_hide_exactly_the_requested_tokens(pretraining, tiny_inputs):
    layout = TokenLayout.from_config(pretraining.config)
    pixel_is_masked = torch.zeros(2, layout.num_video_tokens, dtype=torch.bool)
    pixel_is_masked[0, [0, 3, 5]] = True
    pixel_is_masked[1, [1, 2, 7]] = True
    audio_is_masked = torch.zeros(2, layout.num_audio_tokens, dtype=torch.bool)
    audio_is_masked[:, 1] = True
    with torch.no_grad():
        out = pretraining.tvlt(**tiny_inputs, pixel_is_masked=pixel_is_masked, audio_is_masked=audio_is_masked)
        full = pretraining.tvlt(**tiny_inputs)
    visible = (layout.num_video_tokens - 3) + (layout.num_audio_tokens - 1)
    assert out.last_hidden_state.shape == (2, 1 + visible, 32)
    assert torch.equal(out.pixel_label_masks, pixel_is_masked.float())
    assert torch.equal(out.audio_label_masks, audio_is_masked.float())
    # the encoder saw the visible tokens, in ascending order: re-running on only them changes nothing
    embedded = pretraining.tvlt.pixel_embeddings(tiny_inputs["pixel_values"])
    kept = keep_tokens(embedded, *explicit_ids_shuffle(pixel_is_masked), None)
    assert torch.equal(kept.tokens[0], embedded[0, ~pixel_is_masked[0]])
    assert not torch.allclose(out.last_hidden_state[:, 0], full.last_hidden_state[:, 0])


def test_explicit_masks_need_equal_counts(pretraining, tiny_inputs):
    is_masked = torch.zeros(2, 8, dtype=torch.bool)
    is_masked[0, 0] = True
    with pytest.raises(ValueError, match="same number"):
        pretraining.tvlt(**tiny_inputs, pixel_is_masked=is_masked)
    with pytest.raises(ValueError, match="pixel_is_masked"):
        pretraining.tvlt(**tiny_inputs, pixel_is_masked=is_masked[:, :5])


@pytest.mark.parametrize("seed", range(3))
def test_restore_undoes_keep(seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(3, 10, 4, generator=g)
    ids_shuffle = torch.argsort(torch.rand(3, 10, generator=g), dim=1)
    kept = keep_tokens(tokens, ids_shuffle, 6, None)
    assert kept.tokens.shape == (3, 6, 4) and torch.equal(kept.label_masks.sum(1), torch.full((3,), 4.0))
    restored = restore_tokens(kept.tokens, kept.ids_restore, torch.full((1, 1, 4), float("nan")))
    visible = kept.label_masks == 0
    assert torch.equal(restored[visible], tokens[visible]) and restored[~visible].isnan().all()


def test_random_masking_counts(pretraining, tiny_inputs):
    out = pretraining.tvlt(**tiny_inputs, mask_pixel=True, mask_audio=True)
    assert out.last_pixel_hidden_state.shape[1] == int(8 * (1 - 0.75))
    assert out.last_audio_hidden_state.shape[1] == int(4 * (1 - 0.15))
    assert out.pixel_ids_restore.shape == (2, 8) and out.audio_label_masks.shape == (2, 4)


def test_patch_level_audio_masking_runs(tiny_config, tiny_inputs):
    model = TvltModel(dataclasses.replace(tiny_config, audio_mask_type="patch_level", audio_mask_ratio=0.5))
    out = model(**tiny_inputs, mask_audio=True)
    assert out.audio_label_masks.sum(1).tolist() == [2.0, 2.0]


def test_decode_in_eval_mode(pretraining, tiny_inputs):
    assert not pretraining.training
    with torch.no_grad():
        pixels, audio = pretraining.decode(pretraining.tvlt(**tiny_inputs, mask_pixel=True, mask_audio=True))
        unmasked_pixels, _ = pretraining.decode(pretraining.tvlt(**tiny_inputs))
    assert pixels.shape == unmasked_pixels.shape == (2, 8, 16 * 16 * 3)
    assert audio.shape == (2, 4, 16 * 16)


def test_pretraining_without_matching_runs_mae_in_eval(tiny_config, tiny_inputs):
    model = TvltForPreTraining(dataclasses.replace(tiny_config, task_matching=False)).eval()
    out = model(**tiny_inputs)
    assert out.matching_logits is None and out.pixel_logits.shape == (2, 8, 768) and out.loss.ndim == 0
    assert not hasattr(model, "matching_head")
    with pytest.raises(ValueError, match="labels"):
        TvltForPreTraining(tiny_config)(**tiny_inputs)
    no_task = dataclasses.replace(tiny_config, task_matching=False, task_mae=False)  # fine for classification
    with pytest.raises(ValueError, match="task_matching or task_mae"):
        TvltForPreTraining(no_task)


def test_classification_losses_and_pooler(tiny_config, tiny_inputs):
    regression = TvltForAudioVisualClassification(dataclasses.replace(tiny_config, num_labels=1))
    out = regression(**tiny_inputs, labels=torch.tensor([0.5, -1.0]))
    assert out.logits.shape == (2, 1) and out.loss > 0
    classifier = TvltForAudioVisualClassification(dataclasses.replace(tiny_config, num_labels=6, classifier_pooler=True))
    assert "classifier_pooler.dense.weight" in classifier.state_dict()
    out = classifier(**tiny_inputs, labels=torch.tensor([0, 5]), return_dict=False)
    assert out.logits.shape == (2, 6) and out.loss > 0


def test_one_padding_mask_implies_the_other(pretraining, tiny_inputs):
    audio_mask = torch.ones(2, 4)
    audio_mask[1, 2:] = 0
    with torch.no_grad():
        out = pretraining.tvlt(**tiny_inputs, audio_mask=audio_mask, output_attentions=True)
    assert out.attentions[0][1, :, :, -2:].abs().max() == 0
    assert out.attentions[0][0, :, :, -2:].abs().min() > 0


def test_init_randomises_embeddings_and_tokens(pretraining):
    for name in ("tvlt.cls_embedding", "tvlt.pixel_embeddings.temporal_embed", "pixel_mask_token", "decoder_freq_embed"):
        parameter = pretraining.get_parameter(name)
        assert 0 < parameter.std() < 0.05 and parameter.abs().max() <= 0.04 + 1e-6, name
    assert torch.equal(pretraining.tvlt.layernorm.weight, torch.ones(32))


def test_config_presets_build(tiny_config):
    small = TvltConfig.small(num_hidden_layers=1, decoder_num_hidden_layers=1)
    model = TvltForPreTraining(small)
    layout = TokenLayout.from_config(small)
    assert model.decoder_pixel_pos_embed.shape[1] == layout.patches_per_frame == 36


def test_attention_weights_only_when_asked_and_sdpa_by_default(pretraining, tiny_inputs, monkeypatch):
    from tvlt import layers

    calls = []
    sdpa = layers.F.scaled_dot_product_attention
    monkeypatch.setattr(layers.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    with torch.no_grad():
        plain = pretraining.tvlt(**tiny_inputs)
        assert plain.attentions is None and len(calls) == pretraining.config.num_hidden_layers
        weighted = pretraining.tvlt(**tiny_inputs, output_attentions=True)
    assert len(calls) == pretraining.config.num_hidden_layers  # the explicit-softmax path ran instead
    assert len(weighted.attentions) == pretraining.config.num_hidden_layers
    torch.testing.assert_close(weighted.last_hidden_state, plain.last_hidden_state, atol=1e-5, rtol=0)
