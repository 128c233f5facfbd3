"""Semantic search over records: local, derived vectors (never replicated).

Each replica embeds the texts of the records it holds with the user's embedding function and
keeps the vectors in memory only; they are rebuilt (lazily, on the first search that needs
them) after a start, and re-embedded when a record's indexed text changes. Which fields a
record indexes is part of the replicated record, so every replica embeds the same texts.

Ranking follows LangGraph's ``InMemoryStore``: a record scores the best cosine similarity of
its vectors with the query; records without vectors follow the scored ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Embed", "TextsAt", "VectorIndex", "texts_at", "cosine", "rank"]

Embed = Callable[[list[str]], Sequence[Sequence[float]]]
"""An embedding function: texts in, one vector per text out."""

TextsAt = Callable[[Any, str], list[str]]
"""Texts of a document at a path (``"$"``: the whole document)."""


def texts_at(value: Any, path: str) -> list[str]:
    """The texts at a dotted ``path`` of ``value`` (``"$"`` is the whole value as JSON text).

    Strings are taken as they are, other values as JSON text; a list at the end of the path
    gives one text per element. (The LangGraph store passes LangGraph's richer path syntax.)
    """
    if path == "$":
        return [value if isinstance(value, str) else json.dumps(value, sort_keys=True)]
    node = value
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    items = node if isinstance(node, list) else [node]
    return [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in items if v is not None]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0.0 when either is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class VectorIndex:
    """Vectors of records, keyed by (namespace, key), refreshed when a record's text changes.

    Args:
        embed: the embedding function (called with every text that needs a vector at once).
        texts: how to read the texts at a path of a record's value.
    """

    def __init__(self, embed: Embed, texts: TextsAt = texts_at) -> None:
        self._embed = embed
        self._texts = texts
        self._vectors: dict[tuple[tuple[str, ...], str], tuple[Any, list[list[float]]]] = {}

    def vectors_for(self, items: list[tuple[tuple[str, ...], str, dict, Sequence[str], Any]]) -> list[list[list[float]]]:
        """The vectors of each ``(namespace, key, value, paths, version)``; embeds what is stale.

        ``version`` changes whenever the indexed text may have (the record's field values).
        """
        wanted: list[tuple[int, str]] = []
        fresh: dict[int, list[list[float]]] = {}
        for i, (namespace, key, value, paths, version) in enumerate(items):
            cached = self._vectors.get((namespace, key))
            if cached is not None and cached[0] == version:
                fresh[i] = cached[1]
                continue
            fresh[i] = []
            for path in paths:
                wanted.extend((i, text) for text in self._texts(value, path))
        if wanted:
            vectors = self._embed([text for _, text in wanted])
            if len(vectors) != len(wanted):
                raise ValueError(f"the embedding function returned {len(vectors)} vectors for {len(wanted)} texts")
            for (i, _), vector in zip(wanted, vectors):
                fresh[i].append([float(x) for x in vector])
        for i, (namespace, key, _, _, version) in enumerate(items):
            self._vectors[(namespace, key)] = (version, fresh[i])
        return [fresh[i] for i in range(len(items))]

    def forget(self, namespace: tuple[str, ...], key: str) -> None:
        """Drop a record's vectors (call when it is deleted or collected)."""
        self._vectors.pop((namespace, key), None)

    def __len__(self) -> int:
        return len(self._vectors)


def rank(candidates: list[tuple[Any, list[list[float]]]], query: Sequence[float], offset: int, limit: int) -> list[tuple[Any, float | None]]:
    """Order ``(item, vectors)`` by best cosine with ``query``; page with ``offset``/``limit``.

    Items without vectors come after the scored ones, with score None (as LangGraph does).
    """
    scored = sorted(
        ((max(cosine(query, v) for v in vectors), n, item) for n, (item, vectors) in enumerate(candidates) if vectors),
        key=lambda t: (-t[0], t[1]),
    )
    kept: list[tuple[Any, float | None]] = [(item, score) for score, _, item in scored[offset : offset + limit]]
    if len(kept) < limit:
        scoreless = [item for item, vectors in candidates if not vectors]
        kept.extend((item, None) for item in scoreless[: limit - len(kept)])
    return kept
