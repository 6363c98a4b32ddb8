import pytest
import torch

import tvlt
from tvlt.config import TvltConfig
from tvlt.weights import CheckpointError


def _inputs(config: TvltConfig, batch: int = 2):
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(batch, config.num_frames, 3, config.image_size, config.image_size, generator=g) * 2 - 1
    audio = torch.rand(batch, 1, config.spectrogram_length, config.frequency_length, generator=g) * 2 - 1
    return pixels, audio


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return tvlt.TvltForAudioVisualClassification(TvltConfig.tiny(num_labels=3)).eval()


def test_linears_become_int8_and_the_original_is_untouched(classifier):
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    fast = tvlt.quantize_for_cpu(classifier)
    query = fast.tvlt.encoder.layer[0].attention.attention.query
    assert isinstance(query, torch.ao.nn.quantized.dynamic.Linear)
    assert isinstance(classifier.tvlt.encoder.layer[0].attention.attention.query, torch.nn.Linear)
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())
    assert not fast.training


def test_outputs_stay_close_to_fp32(classifier):
    pixels, audio = _inputs(classifier.config)
    with torch.no_grad():
        exact = classifier(pixels, audio).logits
        approx = tvlt.quantize_for_cpu(classifier)(pixels, audio).logits
    assert approx.shape == exact.shape
    assert not torch.equal(approx, exact)  # really a different (quantized) computation
    assert (approx - exact).abs().max() < 0.05 * exact.abs().max() + 1e-3


def test_attention_capture_still_works(classifier):
    pixels, audio = _inputs(classifier.config, batch=1)
    maps = tvlt.layer_attention(tvlt.quantize_for_cpu(classifier), pixels, audio, layer=0)
    assert torch.allclose(maps.weights.sum(-1), torch.ones(()), atol=1e-5)


def test_quantized_model_refuses_to_save(classifier, tmp_path):
    with pytest.raises(CheckpointError, match="quantize_for_cpu"):
        tvlt.quantize_for_cpu(classifier).save_pretrained(tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_meta_model_is_refused():
    with torch.device("meta"):
        model = tvlt.TvltModel(TvltConfig.tiny())
    with pytest.raises(ValueError, match="on the CPU"):
        tvlt.quantize_for_cpu(model)
