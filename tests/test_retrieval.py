import pytest
import torch

from tvlt.config import TvltConfig
from tvlt.modeling import TvltForPreTraining
from tvlt.retrieval import (
    Ranking,
    embed_audio,
    embed_video,
    embed_videos,
    first_stage_recall,
    matching_logits,
    median_rank,
    rank_videos,
    recall_at_k,
    target_ranks,
)

N = 5  # candidate videos


@pytest.fixture(scope="module")
def model() -> TvltForPreTraining:
    torch.manual_seed(0)
    model = TvltForPreTraining(TvltConfig.tiny(task_mae=False)).eval()
    with torch.no_grad():  # spread the scores so that orderings are not ties
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 1, 32, 32, generator=g), torch.randn(N, 2, 3, 32, 32, generator=g)


def test_matching_logits_equal_direct_pair_scores(model, data):
    audio, videos = data
    logits = matching_logits(model, audio[:1], videos, batch_size=2)
    assert logits.shape == (N,)
    with torch.no_grad():
        for i in range(N):
            direct = model.matching_head(model.tvlt(videos[i : i + 1], audio[:1]).last_hidden_state)[0, 0]
            torch.testing.assert_close(logits[i], direct, atol=1e-5, rtol=0)


def test_full_ranking_is_sorted_by_logits(model, data):
    audio, videos = data
    ranking = rank_videos(model, audio[:1], videos, batch_size=3)
    assert sorted(ranking.indices.tolist()) == list(range(N))
    ordered = ranking.logits[ranking.indices]
    assert (ordered[:-1] >= ordered[1:]).all()
    torch.testing.assert_close(ranking.probabilities, ranking.logits.sigmoid())
    assert ranking.cosine is None


def test_batching_does_not_change_results(model, data):
    audio, videos = data
    one = rank_videos(model, audio[:1], videos, batch_size=1)
    all_at_once = rank_videos(model, audio[:1], videos, batch_size=N)
    torch.testing.assert_close(one.logits, all_at_once.logits, atol=1e-5, rtol=0)
    assert torch.equal(one.indices, all_at_once.indices)
    torch.testing.assert_close(embed_videos(model, videos, batch_size=2), embed_videos(model, videos, batch_size=N))


def test_first_stage_with_k_equal_n_is_full_scoring(model, data):
    audio, videos = data
    full = rank_videos(model, audio[:1], videos)
    staged = rank_videos(model, audio[:1], videos, first_stage_k=N)
    assert torch.equal(staged.indices, full.indices)
    torch.testing.assert_close(staged.logits, full.logits, atol=1e-5, rtol=0)


def test_first_stage_reranks_only_the_cosine_top_k(model, data):
    audio, videos = data
    ranking = rank_videos(model, audio[:1], videos, first_stage_k=2)
    by_cosine = torch.argsort(ranking.cosine, descending=True)
    assert set(ranking.indices[:2].tolist()) == set(by_cosine[:2].tolist())
    assert ranking.indices[2:].tolist() == by_cosine[2:].tolist()
    assert torch.isnan(ranking.logits).sum() == N - 2
    top = ranking.logits[ranking.indices[:2]]
    assert top[0] >= top[1]
    with torch.no_grad():
        expected = embed_videos(model, videos) @ embed_audio(model, audio[:1])[0]
    torch.testing.assert_close(ranking.cosine, expected)


def test_embeddings_are_unit_norm_and_ignore_padding(model, data):
    audio, videos = data
    pixel_mask = torch.ones(N, 8)
    pixel_mask[:, 4:] = 0  # second frame is padding
    altered = videos.clone()
    altered[:, 1] = torch.randn_like(altered[:, 1])
    with torch.no_grad():
        embedded = embed_video(model, videos, pixel_mask)
        torch.testing.assert_close(embedded, embed_video(model, altered, pixel_mask), atol=1e-5, rtol=0)
        assert not torch.allclose(embed_video(model, videos), embed_video(model, altered))
        torch.testing.assert_close(embedded.norm(dim=-1), torch.ones(N))
        audio_mask = torch.tensor([[1.0, 1, 0, 0]]).expand(3, -1)
        noisy = audio.clone()
        noisy[:, :, 16:] = torch.randn_like(noisy[:, :, 16:])
        torch.testing.assert_close(
            embed_audio(model, audio, audio_mask), embed_audio(model, noisy, audio_mask), atol=1e-5, rtol=0
        )
        assert embed_audio(model, audio).shape == (3, 32)


def test_video_embedding_ignores_the_audio_stand_in(model, data):
    _, videos = data
    with torch.no_grad():
        single = torch.cat([embed_video(model, videos[i : i + 1]) for i in range(N)])
        torch.testing.assert_close(embed_video(model, videos), single, atol=1e-5, rtol=0)


def test_rank_metrics():
    orders = ([2, 0, 1], [0, 1, 2], [1, 2, 0])
    rankings = [Ranking(torch.tensor(order), torch.zeros(3), torch.zeros(3)) for order in orders]
    ranks = target_ranks(rankings, torch.tensor([0, 0, 0]))
    assert ranks.tolist() == [2, 1, 3]
    assert recall_at_k(ranks, 1) == pytest.approx(1 / 3) and recall_at_k(ranks, 2) == pytest.approx(2 / 3)
    assert median_rank(ranks) == 2.0 and median_rank(torch.tensor([1, 2, 4, 9])) == 3.0


def test_first_stage_recall(model, data):
    audio, videos = data
    assert first_stage_recall(model, audio, videos, k=N, batch_size=2) == 1.0
    with torch.no_grad():
        cosine = embed_audio(model, audio) @ embed_videos(model, videos).T  # (3, N)
    best = [rank_videos(model, audio[q : q + 1], videos).indices[0] for q in range(3)]
    expected = sum(int(b in torch.argsort(c, descending=True)[:2]) for b, c in zip(best, cosine)) / 3
    assert first_stage_recall(model, audio, videos, k=2) == pytest.approx(expected)


def test_errors_name_bad_values(model, data):
    audio, videos = data
    with pytest.raises(ValueError, match="batch of 3"):
        matching_logits(model, audio, videos)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        matching_logits(model, audio[:1], videos, batch_size=0)
    with pytest.raises(ValueError, match="first_stage_k must be a positive int, got 0"):
        rank_videos(model, audio[:1], videos, first_stage_k=0)
    no_head = TvltForPreTraining(TvltConfig.tiny(task_matching=False)).eval()
    with pytest.raises(ValueError, match="no matching head"):
        matching_logits(no_head, audio[:1], videos)
