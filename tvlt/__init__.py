"""TVLT (Textless Vision-Language Transformer) in plain PyTorch.

Loads and saves transformers-format TVLT checkpoints (same keys, call signatures and outputs as
transformers 4.40.2) and adds what an inspection app needs: inference-time MAE with controllable masks,
attention capture, retrieval, media decoding and the original repository's checkpoints.
"""

from tvlt.audio import log_mel_spectrogram, mel_to_waveform
from tvlt.config import TvltConfig
from tvlt.layout import TokenLayout, patchify_audio, patchify_video, unpatchify_audio, unpatchify_video
from tvlt.media import (
    AudioClip,
    CorruptMediaError,
    EmptyMediaError,
    InvalidArrayError,
    MediaError,
    MediaNotFoundError,
    MediaTooLongError,
    NoAudioStreamError,
    NotMediaError,
    NoVideoStreamError,
    VideoClip,
    load_audio,
    load_video,
    save_clip,
)
from tvlt.modeling import (
    TvltClassifierOutput,
    TvltForAudioVisualClassification,
    TvltForPreTraining,
    TvltForPreTrainingOutput,
    TvltModel,
    TvltModelOutput,
)
from tvlt.processing import TvltFeatureExtractor, TvltImageProcessor, TvltProcessor
from tvlt.weights import CheckpointError, HubUnavailableError, LoadingInfo
from tvlt.attention import (
    AttentionMaps,
    attention_rollout,
    audio_to_video_attention,
    cls_attention,
    layer_attention,
    record_attention,
    video_to_audio_attention,
)
from tvlt.convert import ConversionReport, convert_original_checkpoint, load_original_checkpoint
from tvlt.fast import quantize_for_cpu
from tvlt.mae import MaeResult, default_masking, reconstruct
from tvlt.masking import AUDIO_MASK_TYPES, VIDEO_MASK_TYPES, MaskSpec, encoder_masks
from tvlt.retrieval import Ranking, embed_audio, embed_video, rank_videos, recall_at_k
