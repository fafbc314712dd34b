"""Synthetic disfluent copies of training questions (qrewrite.data.synthetic) and their place in training data."""

import random

import pytest
from helpers import SAMPLE

from qrewrite.config import load_config
from qrewrite.data.records import load_split
from qrewrite.data.synthetic import SYNTHETIC_CUES, synthetic_disfluency, synthetic_variant
from qrewrite.errors import ConfigError
from qrewrite.train.trainer import training_records

RECORDS = [{"id": r["id"], "input": r["input"], "target": r["target"], "kind": "x"}
           for r in load_split(SAMPLE / "train.json")]


def _words(text: str) -> list[str]:
    return [w.strip(",").lower() for w in text.split() if w.strip(",")]


def _cut(messy: str, clean: str) -> list[str] | None:
    """The words that deleting one contiguous block of ``messy`` must remove to leave ``clean``, or None."""
    m, c = _words(messy), _words(clean)
    for i in range(len(c) + 1):
        j = len(m) - (len(c) - i)
        if j > i and m[:i] == c[:i] and m[j:] == c[i:]:
            return m[i:j]
    return None


def test_copies_are_seeded_keep_targets_and_other_fields():
    a, b = synthetic_variant(RECORDS, seed=3), synthetic_variant(RECORDS, seed=3)
    assert a == b
    other = synthetic_variant(RECORDS, seed=4)
    assert sum(x["input"] != y["input"] for x, y in zip(a, other)) > len(RECORDS) // 2
    for new, old in zip(a, RECORDS):
        assert new["id"] == old["id"] + "#synth"
        assert new["target"] == old["target"] and new["kind"] == "x"
        assert new["input"] != new["target"]


def test_copies_do_not_depend_on_record_order():
    shuffled = RECORDS[:]
    random.Random(0).shuffle(shuffled)
    by_id = {r["id"]: r for r in synthetic_variant(RECORDS, seed=1, id_suffix="#s1")}
    for r in synthetic_variant(shuffled, seed=1, id_suffix="#s1"):
        assert by_id[r["id"]] == r


def test_clean_question_is_the_input_minus_one_block_with_a_cue():
    cue_words = {w.lower() for cue in SYNTHETIC_CUES for w in cue.split()}
    for r in synthetic_variant(RECORDS, seed=0):
        cut = _cut(r["input"], r["target"])
        assert cut, (r["input"], r["target"])
        assert cue_words & set(cut), (r["input"], cut)


def test_wrong_spans_and_starts_come_from_the_pool():
    pool = ["Which river flows through Budapest?", "Who founded Microsoft in Albuquerque?"]
    pool_words = {w.strip("?,").lower() for q in pool for w in q.split()}
    cue_words = {w.lower() for cue in SYNTHETIC_CUES for w in cue.split()}
    rng = random.Random(0)
    for _ in range(50):
        clean = "What is the capital city of Peru?"
        messy = synthetic_disfluency(clean, pool, rng)
        cut = _cut(messy, clean)
        assert cut is not None and messy != clean
        borrowed = [w for w in cut if w not in cue_words and w not in {"the", "of", "city", "capital"}]
        assert borrowed and set(borrowed) <= pool_words, (messy, borrowed)
    with pytest.raises(ValueError, match="pool"):
        synthetic_disfluency("What is it?", [], rng)


def test_training_records_add_synthetic_copies_after_the_originals():
    cfg = load_config(None, {"train_file": str(SAMPLE / "train.json"), "valid_file": str(SAMPLE / "valid.json"),
                             "synthetic_copies": 2, "typo_copies": 1, "batch_size": 1})
    originals = load_split(SAMPLE / "train.json")
    records, _ = training_records(cfg)
    assert records[:len(originals)] == originals
    assert len(records) == 4 * len(originals)
    first = [r for r in records if r["id"].endswith("#synth1")]
    second = [r for r in records if r["id"].endswith("#synth2")]
    assert len(first) == len(second) == len(originals)
    assert [r["target"] for r in first] == [r["target"] for r in originals]
    assert sum(a["input"] != b["input"] for a, b in zip(first, second)) > len(originals) // 2


def test_negative_synthetic_copies_are_refused():
    with pytest.raises(ConfigError, match="synthetic_copies"):
        load_config(None, {"synthetic_copies": -1})
