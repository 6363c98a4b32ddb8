import math

import pytest
import torch

from tvlt.config import TvltConfig
from tvlt.layers import (
    AudioEmbeddings,
    Block,
    PixelEmbeddings,
    SelfAttention,
    add_grid_embeddings,
    additive_attention_mask,
)


@pytest.fixture
def attention() -> SelfAttention:
    torch.manual_seed(0)
    return SelfAttention(hidden_size=24, num_heads=3, qkv_bias=True, dropout=0.0).eval()


def test_additive_mask():
    mask = additive_attention_mask(torch.tensor([[True, False]]), torch.float32)
    assert mask.shape == (1, 1, 1, 2)
    assert mask[0, 0, 0, 0] == 0 and mask[0, 0, 0, 1] == torch.finfo(torch.float32).min
    assert additive_attention_mask(None, torch.float32) is None


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_and_explicit_paths_agree(attention, masked):
    x = torch.randn(2, 7, 24)
    is_valid = torch.ones(2, 7, dtype=torch.bool)
    is_valid[1, 4:] = False
    mask = additive_attention_mask(is_valid, x.dtype) if masked else None
    fast, none = attention(x, mask)
    slow, probs = attention(x, mask, output_attentions=True)
    assert none is None and probs.shape == (2, 3, 7, 7)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 3, 7), atol=1e-6)
    if masked:
        assert probs[1, :, :, 4:].abs().max() == 0


def test_forward_hook_can_recompute_the_weights():
    torch.manual_seed(0)
    block = Block(TvltConfig.tiny(), hidden_size=32, num_heads=2, intermediate_size=64).eval()
    seen = {}
    handle = block.attention.attention.register_forward_hook(lambda m, args, out: seen.update(args=args))
    x = torch.randn(2, 5, 32)
    mask = additive_attention_mask(torch.tensor([[True] * 5, [True, True, True, False, False]]), x.dtype)
    _, probs = block(x, mask, output_attentions=True)
    handle.remove()
    hidden, hook_mask = seen["args"]
    module = block.attention.attention
    d = module.query.out_features // module.num_attention_heads
    q = module.query(hidden).view(2, 5, -1, d).transpose(1, 2)
    k = module.key(hidden).view(2, 5, -1, d).transpose(1, 2)
    recomputed = (q @ k.transpose(-1, -2) / math.sqrt(d) + hook_mask).softmax(-1)
    assert torch.allclose(recomputed, probs, atol=1e-6)


def test_grid_embeddings_are_outer_major():
    x = torch.zeros(1, 6, 1)
    inner = torch.tensor([[[1.0], [2.0]]])  # 2 inner positions
    outer = torch.tensor([[[10.0], [20.0], [30.0], [40.0]]])  # only the first 3 are used
    out = add_grid_embeddings(x, inner, outer, torch.full((1, 1, 1), 100.0))
    assert out.flatten().tolist() == [111, 112, 121, 122, 131, 132]


def test_embeddings_shapes_and_errors():
    config = TvltConfig.tiny()
    pixels = PixelEmbeddings(config)(torch.randn(2, 1, 3, 32, 32))  # fewer frames than the maximum
    assert pixels.shape == (2, 4, 32)
    audio = AudioEmbeddings(config)(torch.randn(2, 1, 16, 32))  # shorter spectrogram
    assert audio.shape == (2, 2, 32)
    with pytest.raises(ValueError, match="pixel_values"):
        PixelEmbeddings(config)(torch.randn(2, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="audio_values"):
        AudioEmbeddings(config)(torch.randn(2, 1, 24, 32))


def test_every_config_activation_has_a_layer():
    from tvlt.config import ACTIVATIONS
    from tvlt.layers import ACT_LAYERS

    assert set(ACT_LAYERS) == set(ACTIVATIONS)
    x = torch.linspace(-4, 4, 81)
    torch.testing.assert_close(ACT_LAYERS["quick_gelu"]()(x), x * torch.sigmoid(1.702 * x))
    torch.testing.assert_close(ACT_LAYERS["gelu_fast"]()(x),  # transformers' FastGELU formula
                               0.5 * x * (1 + torch.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x))))
