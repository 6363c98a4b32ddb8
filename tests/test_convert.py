"""Conversion of original zinengtang/TVLT checkpoints, on synthetic state dicts written in the original layout."""

import pytest
import torch
from torch import nn

from tvlt.config import TvltConfig
from tvlt.convert import convert_original_checkpoint, infer_config, load_original_checkpoint
from tvlt.modeling import TvltForAudioVisualClassification, TvltForPreTraining

MAX_FRAMES, MAX_AUDIO_PATCHES = 64, 1020  # row counts of the original position tables


def params(prefix: str, module: nn.Module) -> dict:
    """Weight (and bias) of a Linear / Conv / LayerNorm under an original name."""
    out = {f"{prefix}.weight": module.weight.detach().clone()}
    if module.bias is not None:
        out[f"{prefix}.bias"] = module.bias.detach().clone()
    return out


def longer(table: torch.Tensor, rows: int) -> torch.Tensor:
    """A position table (1, n, D) extended to `rows` rows with junk, as the original stores them."""
    return torch.cat([table.detach(), torch.randn(1, rows - table.shape[1], table.shape[2])], dim=1)


def original_blocks(prefix: str, blocks: nn.ModuleList, fused_bias: bool = True) -> dict:
    out = {}
    for i, block in enumerate(blocks):
        attn = block.attention.attention
        out.update(params(f"{prefix}.{i}.norm1", block.layernorm_before))
        out.update(params(f"{prefix}.{i}.norm2", block.layernorm_after))
        fused = torch.cat([attn.query.weight, attn.key.weight, attn.value.weight])
        out[f"{prefix}.{i}.attn.qkv.weight"] = fused.detach()
        if fused_bias:
            out[f"{prefix}.{i}.attn.qkv.bias"] = torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]).detach()
        else:  # MAE-style separate biases; the key has none
            out[f"{prefix}.{i}.attn.q_bias"] = attn.query.bias.detach().clone()
            out[f"{prefix}.{i}.attn.v_bias"] = attn.value.bias.detach().clone()
        out.update(params(f"{prefix}.{i}.attn.proj", block.attention.output.dense))
        out.update(params(f"{prefix}.{i}.mlp.fc1", block.intermediate.dense))
        out.update(params(f"{prefix}.{i}.mlp.fc2", block.output.dense))
    return out


def original_encoder(tvlt: nn.Module, fused_bias: bool = True) -> dict:
    pix, aud = tvlt.pixel_embeddings, tvlt.audio_embeddings
    return {
        "cls_token": tvlt.cls_embedding.detach().clone(),
        **params("patch_embed_v.proj", pix.patch_embeddings.projection),
        "pos_embed_v": pix.pos_embed_v.detach().clone(),
        "temporal_embed": longer(pix.temporal_embed, MAX_FRAMES),
        "type_embed_v": pix.type_embed_v.detach().clone(),
        **params("patch_embed_a.proj", aud.patch_embeddings.projection),
        "pos_embed_a": longer(aud.pos_embed_a, MAX_AUDIO_PATCHES),
        "freq_embed": aud.freq_embed.detach().clone(),
        "type_embed_a": aud.type_embed_a.detach().clone(),
        **original_blocks("blocks", tvlt.encoder.layer, fused_bias),
        **params("norm", tvlt.layernorm),
    }


def original_pretraining(model: TvltForPreTraining, fused_bias: bool = True) -> dict:
    """TVLT.ckpt layout: encoder + MAE decoder + matching head."""
    return {
        **original_encoder(model.tvlt, fused_bias),
        **params("decoder_embed", model.encoder_to_decoder),
        "mask_token_v": model.pixel_mask_token.detach().clone(),
        "mask_token_a": model.audio_mask_token.detach().clone(),
        "decoder_pos_embed_v": model.decoder_pixel_pos_embed.detach().clone(),
        "decoder_temporal_embed": longer(model.decoder_temporal_embed, MAX_FRAMES),
        "decoder_type_embed_v": model.decoder_pixel_type_embed.detach().clone(),
        "decoder_pos_embed_a": longer(model.decoder_audio_pos_embed, MAX_AUDIO_PATCHES),
        "decoder_freq_embed": model.decoder_freq_embed.detach().clone(),
        "decoder_type_embed_a": model.decoder_audio_type_embed.detach().clone(),
        **original_blocks("decoder_blocks", model.decoder.decoder_layers, fused_bias),
        **params("decoder_norm", model.decoder.layernorm),
        **params("mae_score_video.decoder", model.pixel_mae_head.decoder),
        **params("mae_score_audio.decoder", model.audio_mae_head.decoder),
        **params("matching_score.pooler.dense", model.matching_head.pooler.dense),
        **params("matching_score.fc", model.matching_head.fc),
    }


def original_classifier(model: TvltForAudioVisualClassification) -> dict:
    """TVLT-MOSEI-*.ckpt layout: Sequential(Pooler, Linear, LayerNorm, GELU, Linear)."""
    return {
        **original_encoder(model.tvlt),
        **params("classifier.0.dense", model.classifier_pooler.dense),
        **params("classifier.1", model.classifier[0]),
        **params("classifier.2", model.classifier[1]),
        **params("classifier.4", model.classifier[3]),
    }


def randomise(model: nn.Module) -> nn.Module:
    """Every parameter random (zero-initialised tables and biases too), so a misplaced weight shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


def inputs(config: TvltConfig, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(batch, config.num_frames, 3, config.image_size, config.image_size, generator=g)
    audio = torch.randn(batch, 1, config.spectrogram_length, config.frequency_length, generator=g)
    return pixels, audio


def same_pretraining_outputs(a: TvltForPreTraining, b: TvltForPreTraining) -> None:
    pixels, audio = inputs(a.config)
    with torch.no_grad():
        out_a, out_b = a.tvlt(pixels, audio), b.tvlt(pixels, audio)
        torch.testing.assert_close(out_a.last_hidden_state, out_b.last_hidden_state)
        torch.testing.assert_close(a.matching_head(out_a.last_hidden_state), b.matching_head(out_b.last_hidden_state))
        for x, y in zip(a.decode(out_a), b.decode(out_b)):
            torch.testing.assert_close(x, y)


@pytest.fixture
def config() -> TvltConfig:
    return TvltConfig.tiny()


@pytest.fixture
def reference(config) -> TvltForPreTraining:
    return randomise(TvltForPreTraining(config))


def test_pretraining_checkpoint_loads_strictly_and_matches(config, reference):
    state_dict, out_config, report = convert_original_checkpoint(original_pretraining(reference), config)
    model = TvltForPreTraining(out_config)
    model.load_state_dict(state_dict, strict=True)
    same_pretraining_outputs(reference, model.eval())
    assert report.model_class == "TvltForPreTraining"
    assert report.renamed["blocks.1.attn.proj.weight"] == "tvlt.encoder.layer.1.attention.output.dense.weight"
    assert report.truncated["tvlt.pixel_embeddings.temporal_embed"] == ((1, MAX_FRAMES, 32), (1, config.num_frames, 32))
    assert report.ignored == []


def test_qkv_rows_split_in_query_key_value_order(config, reference):
    state_dict, _, _ = convert_original_checkpoint(original_pretraining(reference), config)
    attn = reference.tvlt.encoder.layer[0].attention.attention
    for name in ("query", "key", "value"):
        converted = state_dict[f"tvlt.encoder.layer.0.attention.attention.{name}.weight"]
        assert torch.equal(converted, getattr(attn, name).weight)


def test_separate_q_and_v_biases_get_a_zero_key_bias(config, reference):
    with torch.no_grad():
        for block in [*reference.tvlt.encoder.layer, *reference.decoder.decoder_layers]:
            block.attention.attention.key.bias.zero_()
    state_dict, _, _ = convert_original_checkpoint(original_pretraining(reference, fused_bias=False), config)
    model = TvltForPreTraining(config)
    model.load_state_dict(state_dict, strict=True)
    same_pretraining_outputs(reference, model.eval())


def test_lightning_nesting_and_transformer_prefix(config, reference, tmp_path):
    flat = original_pretraining(reference)
    path = tmp_path / "TVLT.ckpt"
    torch.save({"epoch": 3, "state_dict": {f"transformer.{k}": v for k, v in flat.items()}}, path)
    model, report = load_original_checkpoint(path, config)
    assert isinstance(model, TvltForPreTraining) and not model.training
    same_pretraining_outputs(reference, model)


def test_text_and_vqa_heads_are_ignored_with_a_warning(config, reference):
    original = original_pretraining(reference)
    original["text_embeddings.word_embeddings.weight"] = torch.zeros(10, 32)
    original["vqa_classifier.1.weight"] = torch.zeros(64, 32)
    with pytest.warns(UserWarning, match="vqa_classifier.1.weight"):
        state_dict, _, report = convert_original_checkpoint(original, config)
    assert sorted(report.ignored) == ["text_embeddings.word_embeddings.weight", "vqa_classifier.1.weight"]
    assert not any("vqa" in k or "text" in k for k in state_dict)


def test_bad_shape_names_key_and_both_shapes(config, reference):
    original = original_pretraining(reference)
    original["blocks.0.mlp.fc1.weight"] = torch.zeros(65, 32)
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp\.fc1\.weight.*\(65, 32\).*\(64, 32\)"):
        convert_original_checkpoint(original, config)


def test_missing_weights_are_reported(config, reference):
    original = original_pretraining(reference)
    del original["matching_score.fc.weight"]
    with pytest.raises(ValueError, match="matching_head.fc.weight"):
        convert_original_checkpoint(original, config)


def test_config_is_inferred_from_shapes():
    sizes = dict(hidden_size=128, num_attention_heads=2, intermediate_size=96, decoder_hidden_size=64,
                 decoder_num_attention_heads=2, decoder_intermediate_size=80)
    reference = randomise(TvltForPreTraining(TvltConfig.tiny(**sizes)))
    original = original_pretraining(reference)
    inferred = infer_config(original)
    for name, value in {**sizes, "num_hidden_layers": 2, "decoder_num_hidden_layers": 1, "image_size": 32,
                        "frequency_length": 32, "image_patch_size": [16, 16], "num_frames": 8,
                        "spectrogram_length": 2048, "task_mae": True, "task_matching": True}.items():
        assert getattr(inferred, name) == value, name
    model, _ = load_original_checkpoint(original)  # strict load with the inferred config
    pixels, audio = inputs(reference.config)
    with torch.no_grad():
        expected = reference.tvlt(pixels, audio).last_hidden_state
        torch.testing.assert_close(model.tvlt(pixels, audio).last_hidden_state, expected)


@pytest.mark.parametrize("num_labels, loss_type", [(1, "regression"), (6, "classification")])
def test_mosei_classifier_with_pooler(num_labels, loss_type):
    config = TvltConfig.tiny(hidden_size=64, num_attention_heads=1, classifier_pooler=True, num_labels=num_labels)
    reference = randomise(TvltForAudioVisualClassification(config))
    model, report = load_original_checkpoint(original_classifier(reference))
    assert report.model_class == "TvltForAudioVisualClassification"
    loaded = model.config
    assert (loaded.num_labels, loaded.loss_type, loaded.classifier_pooler) == (num_labels, loss_type, True)
    assert report.renamed["classifier.4.weight"] == "classifier.3.weight"
    pixels, audio = inputs(TvltConfig.tiny())
    with torch.no_grad():
        torch.testing.assert_close(model(pixels, audio).logits, reference(pixels, audio).logits)
