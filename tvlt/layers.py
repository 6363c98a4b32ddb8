"""TVLT building blocks. Attribute names mirror transformers 4.40.2 so state-dict keys are identical."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from tvlt.config import TvltConfig

class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), transformers' `quick_gelu`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _tanh_gelu() -> nn.Module:  # gelu_new / gelu_fast / gelu_pytorch_tanh: the same tanh approximation
    return nn.GELU(approximate="tanh")


ACT_LAYERS = {  # the names of tvlt.config.ACTIVATIONS, defined as transformers 4.40.2 defines them
    "gelu": nn.GELU, "gelu_python": nn.GELU, "gelu_new": _tanh_gelu, "gelu_fast": _tanh_gelu,
    "gelu_pytorch_tanh": _tanh_gelu, "quick_gelu": QuickGELU, "relu": nn.ReLU, "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU, "swish": nn.SiLU, "mish": nn.Mish,
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "linear": nn.Identity,
}

Tensors = tuple[torch.Tensor, ...]


def additive_attention_mask(is_valid: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    """bool (B, N) True = attend -> additive (B, 1, 1, N): 0 where valid, the dtype's minimum elsewhere.

    The same numbers as transformers' extended attention mask."""
    if is_valid is None:
        return None
    return (~is_valid)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


def add_grid_embeddings(
    x: torch.Tensor, inner: torch.Tensor, outer: torch.Tensor, type_embed: torch.Tensor
) -> torch.Tensor:
    """Add factorised position embeddings to grid tokens ordered outer-major.

    x (B, n_outer*n_inner, D); inner (1, n_inner, D) repeats for every outer step; outer (1, >=n_outer, D) is
    shared by the n_inner tokens of a step; type_embed (1, 1, D). Video: inner = patch position, outer = frame.
    Audio: inner = frequency patch, outer = time patch.
    """
    n_outer = x.shape[1] // inner.shape[1]
    x = x + inner.repeat(1, n_outer, 1)
    x = x + torch.repeat_interleave(outer[:, :n_outer], inner.shape[1], dim=1)
    return x + type_embed


def attention_probs(q: torch.Tensor, k: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim) + attention_mask): q, k (B, heads, N, d); mask None or additive (B, 1, 1, N)
    -> (B, heads, N, N), rows summing to 1."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if attention_mask is not None:
        scores = scores + attention_mask
    return scores.softmax(dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention (`...attention.attention` in transformers' key names).

    forward(hidden_states (B, N, D), attention_mask) -> (context (B, N, D), probs (B, heads, N, N) or None).
    `hidden_states` is the layer-normed block input and `attention_mask` is None or additive (B, 1, 1, N)
    (0 = attend, very negative = padding); both arrive as positional arguments, so a forward hook can recompute
    the weights as softmax(q k^T / sqrt(head_dim) + attention_mask) from `query`/`key` and `num_attention_heads`.
    Probabilities are materialised only when `output_attentions=True`; otherwise SDPA runs.
    """

    def __init__(self, hidden_size: int, num_heads: int, qkv_bias: bool, dropout: float) -> None:
        super().__init__()
        self.num_attention_heads = num_heads
        self.attention_head_size = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size, bias=qkv_bias)
        self.key = nn.Linear(hidden_size, hidden_size, bias=qkv_bias)
        self.value = nn.Linear(hidden_size, hidden_size, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        return x.view(B, N, self.num_attention_heads, self.attention_head_size).transpose(1, 2)  # (B, h, N, d)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        q, k, v = (self._heads(proj(hidden_states)) for proj in (self.query, self.key, self.value))
        if output_attentions:
            probs = attention_probs(q, k, attention_mask)
            context = self.dropout(probs) @ v
        else:
            probs = None
            p = self.dropout.p if self.training else 0.0
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=p)
        B, _, N, _ = context.shape
        return context.transpose(1, 2).reshape(B, N, -1), probs  # (B, N, D)


class AttentionOutput(nn.Module):
    def __init__(self, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


class Attention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, config: TvltConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(hidden_size, num_heads, config.qkv_bias, config.attention_probs_dropout_prob)
        self.output = AttentionOutput(hidden_size, config.hidden_dropout_prob)

    def forward(
        self, x: torch.Tensor, attention_mask: Optional[torch.Tensor], output_attentions: bool
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        # mask positional, flag by keyword: a forward hook on `self.attention` sees args == (x, attention_mask)
        context, probs = self.attention(x, attention_mask, output_attentions=output_attentions)
        return self.output(context), probs


class Intermediate(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)
        self.intermediate_act_fn = ACT_LAYERS[hidden_act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(x))


class Output(nn.Module):
    def __init__(self, intermediate_size: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


class Block(nn.Module):
    """Pre-norm transformer block (transformers' `TvltLayer`)."""

    def __init__(self, config: TvltConfig, hidden_size: int, num_heads: int, intermediate_size: int) -> None:
        super().__init__()
        self.attention = Attention(hidden_size, num_heads, config)
        self.intermediate = Intermediate(hidden_size, intermediate_size, config.hidden_act)
        self.output = Output(intermediate_size, hidden_size, config.hidden_dropout_prob)
        self.layernorm_before = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, x: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        attended, probs = self.attention(self.layernorm_before(x), attention_mask, output_attentions)
        x = x + attended
        x = x + self.output(self.intermediate(self.layernorm_after(x)))
        return x, probs


def run_blocks(
    blocks: nn.ModuleList,
    x: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    output_attentions: bool = False,
    output_hidden_states: bool = False,
) -> tuple[torch.Tensor, Optional[Tensors], Optional[Tensors]]:
    """Run blocks in order -> (last (B, N, D), hidden states or None, attentions or None).

    Hidden states are the input and every block's output, as transformers returns them."""
    hidden_states, attentions = [x], []
    for block in blocks:
        x, probs = block(x, attention_mask, output_attentions)
        hidden_states.append(x)
        attentions.append(probs)
    return (
        x,
        tuple(hidden_states) if output_hidden_states else None,
        tuple(attentions) if output_attentions else None,
    )


class Encoder(nn.Module):
    def __init__(self, config: TvltConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            Block(config, config.hidden_size, config.num_attention_heads, config.intermediate_size)
            for _ in range(config.num_hidden_layers)
        )

    def forward(self, x: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, output_attentions: bool = False,
                output_hidden_states: bool = False) -> tuple[torch.Tensor, Optional[Tensors], Optional[Tensors]]:
        return run_blocks(self.layer, x, attention_mask, output_attentions, output_hidden_states)


class Decoder(nn.Module):
    """MAE decoder: blocks of decoder width, then a final layernorm (no attention mask, as transformers)."""

    def __init__(self, config: TvltConfig) -> None:
        super().__init__()
        sizes = config.decoder_hidden_size, config.decoder_num_attention_heads, config.decoder_intermediate_size
        self.decoder_layers = nn.ModuleList(Block(config, *sizes) for _ in range(config.decoder_num_hidden_layers))
        self.layernorm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, Dd) -> (B, N, Dd)."""
        x, _, _ = run_blocks(self.decoder_layers, x)
        return self.layernorm(x)


class PatchEmbeddings(nn.Module):
    """Conv patch projection: (B', C, H, W) -> (B', h*w, D), tokens row-major."""

    def __init__(self, num_channels: int, hidden_size: int, patch_size: list[int]) -> None:
        super().__init__()
        self.projection = nn.Conv2d(num_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x).flatten(2).transpose(1, 2)


class PixelEmbeddings(nn.Module):
    """pixel_values (B, T, C, H, W) -> video tokens (B, T*h*w, D) with patch, frame and type embeddings."""

    def __init__(self, config: TvltConfig) -> None:
        super().__init__()
        self.config = config
        self.num_patches_per_image = (config.image_size // config.image_patch_size[0]) * (
            config.image_size // config.image_patch_size[1]
        )
        D = config.hidden_size
        self.patch_embeddings = PatchEmbeddings(config.num_image_channels, D, config.image_patch_size)
        self.type_embed_v = nn.Parameter(torch.zeros(1, 1, D))
        self.temporal_embed = nn.Parameter(torch.zeros(1, config.num_frames, D))
        self.pos_embed_v = nn.Parameter(torch.zeros(1, self.num_patches_per_image, D))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        B, T, C, H, W = pixel_values.shape
        c = self.config
        if (C, H, W) != (c.num_image_channels, c.image_size, c.image_size) or T > c.num_frames:
            raise ValueError(
                f"pixel_values of shape {tuple(pixel_values.shape)} do not fit the model: expected"
                f" (B, <= {c.num_frames}, {c.num_image_channels}, {c.image_size}, {c.image_size})"
            )
        x = self.patch_embeddings(pixel_values.reshape(B * T, C, H, W)).reshape(B, T * self.num_patches_per_image, -1)
        return add_grid_embeddings(x, self.pos_embed_v, self.temporal_embed, self.type_embed_v)


class AudioEmbeddings(nn.Module):
    """audio_values (B, C, S, F) -> audio tokens (B, s*f, D) with frequency, time and type embeddings."""

    def __init__(self, config: TvltConfig) -> None:
        super().__init__()
        self.config = config
        self.num_freq_patches = config.frequency_length // config.audio_patch_size[1]
        D = config.hidden_size
        self.patch_embeddings = PatchEmbeddings(config.num_audio_channels, D, config.audio_patch_size)
        self.type_embed_a = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed_a = nn.Parameter(torch.zeros(1, config.spectrogram_length // config.audio_patch_size[0], D))
        self.freq_embed = nn.Parameter(torch.zeros(1, self.num_freq_patches, D))

    def forward(self, audio_values: torch.Tensor) -> torch.Tensor:
        B, C, S, F_ = audio_values.shape
        c = self.config
        fits = (C, F_) == (c.num_audio_channels, c.frequency_length) and S <= c.spectrogram_length
        if not fits or S % c.audio_patch_size[0]:
            raise ValueError(
                f"audio_values of shape {tuple(audio_values.shape)} do not fit the model: expected"
                f" (B, {c.num_audio_channels}, a multiple of {c.audio_patch_size[0]} <= {c.spectrogram_length},"
                f" {c.frequency_length})"
            )
        x = self.patch_embeddings(audio_values)  # (B, s*f, D)
        return add_grid_embeddings(x, self.freq_embed, self.pos_embed_a, self.type_embed_a)


class Pooler(nn.Module):
    """CLS token -> tanh(dense(cls)): (B, N, D) -> (B, D)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(x[:, 0]))


class MatchingHead(nn.Module):
    """Audio-video matching logit from the CLS token: (B, N, D) -> (B, 1)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.pooler = Pooler(hidden_size)
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooler(x))


class MAEHead(nn.Module):
    """Decoder tokens (B, N, Dd) -> patch values (B, N, patch_dim)."""

    def __init__(self, decoder_hidden_size: int, patch_dim: int) -> None:
        super().__init__()
        self.decoder = nn.Linear(decoder_hidden_size, patch_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(x)
