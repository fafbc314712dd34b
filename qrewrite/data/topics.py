"""Topic-disjoint validation: hold out whole topics (SQuAD articles) so validation measures unseen topics.

Disfl-QA's dev questions come from the same SQuAD articles as its training questions; its test questions come
from other articles. A validation split drawn at random (or Disfl-QA dev) rewards memorised names; one drawn
by topic does not. The records carry no article, so :func:`topic_groups` recovers one in two steps:

1. **Paragraphs from ids.** SQuAD ids are MongoDB ObjectIds: 8 hex digits of creation time (seconds), 10 of the
   writing process, 6 of a counter. The questions of one paragraph were written by one process in one sitting,
   so within a process, ordered by counter, a pause of more than ``gap_s`` seconds starts a new paragraph.
   Records without ObjectId ids are each their own paragraph.
2. **Articles from words.** Paragraphs are merged by average-linkage agglomerative clustering of their TF-IDF
   word vectors (the question texts), down to ``n_topics`` groups; paragraphs of one article share names and
   rare words, paragraphs of different articles rarely do.

:func:`topic_split` then holds out whole groups (a seeded shuffle, about ``size`` questions). The share of the
held-out references' capitalised words that also occur in the training references (:func:`seen_name_share`)
shows how unseen the held-out topics are: 92 % for Disfl-QA dev against train, 51 % for Disfl-QA test.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter

import numpy as np

from qrewrite.errors import DataError

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_WORD = re.compile(r"[a-z][a-z0-9'-]+")
_TOKEN = re.compile(r"[A-Za-z][\w'&-]*")
_STOP = frozenset(
    "what which when where who whom whose why how does did do is are was were the a an of in on at to for from by "
    "with and or not that this these those it its as be been has have had can could would should will may might "
    "than then there their they them into about after before during over under between through also other more "
    "most many much some any such only one two first new no sorry mean rather actually um uh".split())


def _paragraphs(records: list[dict], gap_s: int) -> list[list[int]]:
    """Record indices grouped into paragraphs: ObjectId runs of one process without a pause over ``gap_s``."""
    by_process: dict[str, list[int]] = {}
    singles = []
    for i, r in enumerate(records):
        rid = str(r["id"]).split("#")[0].lower()
        if _OBJECT_ID.match(rid):
            by_process.setdefault(rid[8:18], []).append(i)
        else:
            singles.append([i])
    paragraphs = []
    for process in sorted(by_process):
        members = sorted(by_process[process], key=lambda i: (int(records[i]["id"][18:24], 16), records[i]["id"]))
        current = [members[0]]
        for a, b in zip(members, members[1:]):
            if abs(int(records[b]["id"][:8], 16) - int(records[a]["id"][:8], 16)) > gap_s:
                paragraphs.append(current)
                current = []
            current.append(b)
        paragraphs.append(current)
    return paragraphs + singles


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP]


def _tfidf(paragraphs: list[list[int]], records: list[dict]) -> np.ndarray:
    docs = [Counter(w for i in p for w in _content_words(records[i]["target"])) for p in paragraphs]
    df = Counter(w for d in docs for w in d)
    vocab = {w: j for j, w in enumerate(sorted(w for w, n in df.items() if n >= 2))}
    x = np.zeros((len(docs), max(1, len(vocab))), dtype=np.float32)
    n = len(docs)
    for row, d in enumerate(docs):
        for w, count in d.items():
            if w in vocab:
                x[row, vocab[w]] = (1 + math.log(count)) * math.log(n / df[w])
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-9
    return x


def _average_linkage(x: np.ndarray, n_groups: int) -> list[list[int]]:
    """Agglomerative clustering of the rows of ``x`` (cosine, average linkage); deterministic: ties by index."""
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    size = np.ones(len(x))
    members = {i: [i] for i in range(len(x))}
    while len(members) > n_groups:
        i, j = sorted(np.unravel_index(int(np.argmax(sim)), sim.shape))
        merged = (sim[i] * size[i] + sim[j] * size[j]) / (size[i] + size[j])
        sim[i, :] = merged
        sim[:, i] = merged
        sim[i, i] = -np.inf
        sim[j, :] = -np.inf
        sim[:, j] = -np.inf
        size[i] += size[j]
        members[i] += members.pop(j)
    return [sorted(m) for _, m in sorted(members.items())]


def topic_groups(records: list[dict], *, n_topics: int | None = None, gap_s: int = 300) -> list[list[int]]:
    """Record indices grouped by topic (see the module docstring), largest group first; the same groups whatever
    the records' order when their ids are ObjectIds."""
    if not records:
        return []
    paragraphs = _paragraphs(records, gap_s)
    if n_topics is None:  # about 25 paragraphs an article, as in SQuAD
        n_topics = max(2, round(len(paragraphs) / 25))
    n_topics = min(n_topics, len(paragraphs))
    clusters = _average_linkage(_tfidf(paragraphs, records), n_topics)
    groups = [sorted(i for p in c for i in paragraphs[p]) for c in clusters]
    return sorted(groups, key=lambda g: (-len(g), min(str(records[i]["id"]) for i in g)))


def topic_split(train: list[dict], size: int, seed: int, *, also_cluster: list[dict] = (),
                n_topics: int | None = None) -> tuple[list[dict], list[dict], dict]:
    """Hold out whole topics of ``train``, about ``size`` records: (train, held_out, info).

    ``also_cluster`` (e.g. Disfl-QA dev) is clustered with ``train`` so that topics are estimated from more
    paragraphs; none of it is moved. Topics are taken in a seeded shuffle, skipping one that would overshoot
    ``size`` by more than a quarter, until at least ``size`` records are held out or none is left that fits; only
    groups of at least ``size / 10`` records count as topics (smaller ones are stray paragraphs).
    """
    if size < 1:
        raise DataError(f"--valid-size must be >= 1, got {size}")
    if size > len(train) / 2:
        raise DataError(f"--valid-size {size} is more than half of the {len(train)} training records; hold out "
                        f"at most {len(train) // 2}")
    pool = list(train) + list(also_cluster)
    groups = [[i for i in g if i < len(train)] for g in topic_groups(pool, n_topics=n_topics)]
    groups = [g for g in groups if g]
    topics = [g for g in groups if len(g) >= max(1, size / 10)] or groups
    order = list(range(len(topics)))
    random.Random(seed).shuffle(order)
    held: list[int] = []
    chosen = []
    for t in order:
        if len(held) >= size:
            break
        if held and len(held) + len(topics[t]) > 1.25 * size:
            continue
        if len(held) + len(topics[t]) >= len(train):
            continue
        held += topics[t]
        chosen.append(t)
    if not held:
        raise DataError(f"cannot hold out a topic: every topic of the {len(train)} training records is too large "
                        f"to leave any for training (lower --valid-size or pass a validation file)")
    held_set = set(held)
    kept = [r for i, r in enumerate(train) if i not in held_set]
    valid = [r for i, r in enumerate(train) if i in held_set]
    info = {"method": "topic", "n_topics_found": len(groups), "n_topics_held_out": len(chosen),
            "held_out_topic_sizes": sorted((len(topics[t]) for t in chosen), reverse=True),
            "held_out_topic_words": [top_words([train[i] for i in topics[t]]) for t in chosen],
            "size_asked": size, "seed": seed, "n_train": len(kept), "n_valid": len(valid)}
    return kept, valid, info


def top_words(records: list[dict], k: int = 5) -> list[str]:
    """The ``k`` most frequent content words of the records' targets: what a topic is about."""
    return [w for w, _ in Counter(w for r in records for w in _content_words(r["target"])).most_common(k)]


def capitalised_words(text: str) -> set[str]:
    """Capitalised words of a question, its first word left out (capitalised because it starts the sentence)."""
    return {w for w in _TOKEN.findall(text)[1:] if w[0].isupper()}


def seen_name_share(eval_records: list[dict], train_records: list[dict]) -> float | None:
    """Share of the capitalised words in the evaluation targets (each occurrence) found in the training targets."""
    seen = set().union(*(capitalised_words(r["target"]) for r in train_records)) if train_records else set()
    words = [w for r in eval_records for w in capitalised_words(r["target"])]
    return round(sum(w in seen for w in words) / len(words), 4) if words else None
