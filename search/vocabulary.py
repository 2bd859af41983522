"""Looking mistyped name words up in the name vocabulary (``NameWord``).

A word nothing else matched is turned into the known name words most similar to it,
which are then searched exactly with the tsvector index: trigram-matching a few
tens of thousands of words is cheap, trigram-matching a million name texts is not
(12-41 ms for one common family name, PERFORMANCE-NOTES.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connections

from mpi.db import read_alias

SIMILAR_PER_WORD = 8


def similar_words(words: Iterable[str]) -> dict[str, list[str]]:
    """The known name words most similar to each typed word (trigram similarity)."""
    words = list(dict.fromkeys(words))
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(
            """
            SELECT q.word, v.word FROM unnest(%s::text[]) AS q(word)
            CROSS JOIN LATERAL (
                SELECT n.word FROM search_nameword n WHERE n.word %% q.word
                ORDER BY similarity(n.word, q.word) DESC, n.word LIMIT %s
            ) v
            """,
            [words, SIMILAR_PER_WORD],
        )
        similar: dict[str, list[str]] = {w: [] for w in words}
        for typed, word in cursor.fetchall():
            similar[typed].append(word)
    return similar
