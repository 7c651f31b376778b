"""Optional semantic search: vectors from the model endpoint's `/v1/embeddings`, fused with
the keyword ranking by reciprocal rank fusion. Nothing is downloaded: the endpoint embeds."""

from __future__ import annotations

from collections.abc import Sequence

from openai import AsyncOpenAI, OpenAIError

BATCH = 64
RRF_K = 60  # the usual constant: rank 1 and rank 10 differ, rank 50 and 60 barely


class EmbeddingError(RuntimeError):
    """The endpoint could not embed; search falls back to keywords alone."""


class Embedder:
    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self.client = client
        self.model = model

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = [t[:8000] or " " for t in texts[start:start + BATCH]]
            try:
                resp = await self.client.embeddings.create(model=self.model, input=batch)
            except OpenAIError as exc:
                raise EmbeddingError(f"embeddings with {self.model!r} failed: {exc}") from exc
            out.extend(list(d.embedding) for d in sorted(resp.data, key=lambda d: d.index))
        return out


def rrf(*rankings: Sequence[int], k: int = RRF_K) -> list[int]:
    """Item ids ordered by the sum of 1/(k + rank) over the rankings they appear in."""
    score: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            score[item] = score.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(score, key=lambda i: score[i], reverse=True)
