import random

import pytest

from qrewrite.data.typos import QWERTY_NEIGHBOURS, add_typos, lexicon_of, typo_variant

QUESTIONS = [
    "Which city hosted the 1996 Summer Olympics?",
    "Who founded Microsoft?",
    "Is it?",
    "a",
    "What is the capital  of   Peru ?",
    "Wie heißt die Hauptstadt von Österreich?",
]


def _records(n=40):
    return [{"id": f"q{i}", "input": f"What is question number {i} about the river Danube?",
             "target": f"What is question {i}?"} for i in range(n)]


def test_neighbour_map_is_symmetric_and_complete():
    assert set(QWERTY_NEIGHBOURS) == set("abcdefghijklmnopqrstuvwxyz")
    for c, near in QWERTY_NEIGHBOURS.items():
        assert c not in near and near
        for n in near:
            assert c in QWERTY_NEIGHBOURS[n]
    assert set(QWERTY_NEIGHBOURS["g"]) == set("fhtyvb")


def test_add_typos_deterministic_for_a_seed():
    text = QUESTIONS[0]
    assert add_typos(text, random.Random(7), 0.1) == add_typos(text, random.Random(7), 0.1)
    outs = {add_typos(text, random.Random(s), 0.1) for s in range(20)}
    assert len(outs) > 10  # different seeds give different noise


@pytest.mark.parametrize("text", QUESTIONS)
@pytest.mark.parametrize("rate", [0.01, 0.05, 0.3, 1.0])
def test_add_typos_always_edits_and_keeps_whitespace_sane(text, rate):
    for seed in range(30):
        out = add_typos(text, random.Random(seed), rate)
        assert out != text
        assert out and out == out.strip() and "  " not in out


def test_add_typos_leaves_digits_and_punctuation():
    for seed in range(50):
        out = add_typos("In 1996, who won?", random.Random(seed), 0.3)
        assert "1996" in out and out.endswith("?") and "," in out


def test_rate_zero_and_no_letters_unchanged():
    for text in QUESTIONS + ["  odd   spacing  "]:
        assert add_typos(text, random.Random(1), 0) == text
    assert add_typos("1996 ?", random.Random(1), 0.5) == "1996 ?"


def test_typo_variant_deterministic_seeded_and_target_untouched():
    recs = _records()
    a = typo_variant(recs, seed=3)
    assert a == typo_variant(recs, seed=3)
    assert a != typo_variant(recs, seed=4)
    for r, t in zip(recs, a):
        assert t["target"] == r["target"] and t["id"] == r["id"]
        assert t["input"] != r["input"]
    assert recs == _records()  # inputs not modified in place


def test_typo_variant_order_independent_and_suffix():
    recs = _records()
    fwd = {r["id"]: r for r in typo_variant(recs, seed=1)}
    rev = {r["id"]: r for r in typo_variant(list(reversed(recs)), seed=1)}
    assert fwd == rev
    alone = typo_variant([recs[5]], seed=1)[0]
    assert alone == fwd["q5"]
    c1 = typo_variant(recs, seed=1, id_suffix="#typo1")
    c2 = typo_variant(recs, seed=1, id_suffix="#typo2")
    assert [r["id"] for r in c1][:2] == ["q0#typo1", "q1#typo1"]
    assert sum(a["input"] != b["input"] for a, b in zip(c1, c2)) > len(recs) // 2


def test_typo_variant_rate_zero_returns_inputs():
    recs = _records(5)
    assert [r["input"] for r in typo_variant(recs, rate=0)] == [r["input"] for r in recs]


def test_typo_variant_keeps_extra_fields():
    out = typo_variant([{"id": "x", "input": "Where is Lima?", "target": "Where is Lima?", "kind": "typo"}])
    assert out[0]["kind"] == "typo"


LEXICON_TEXT = "Which form of the city was made from the old port? Who won the war in the north or the west?"


def test_lexicon_typos_never_spell_another_word():
    lexicon = lexicon_of([LEXICON_TEXT, "from form for fro of off on one no not to too two the then them"])
    seen_real_swaps = 0
    for seed in range(200):
        plain = add_typos(LEXICON_TEXT, random.Random(seed), 0.15)
        guarded = add_typos(LEXICON_TEXT, random.Random(seed), 0.15, lexicon=lexicon)
        original_words = set(lexicon_of([LEXICON_TEXT]))
        seen_real_swaps += bool(lexicon_of([plain]) - original_words & lexicon)
        assert not (lexicon_of([guarded]) - original_words) & lexicon, guarded
        assert guarded != LEXICON_TEXT
    assert seen_real_swaps > 10  # without the lexicon the same noise does turn words into other words


def test_lexicon_off_is_the_plain_noise():
    # an empty lexicon draws exactly the same edits (the committed typo'd files and runs stay reproducible)
    for seed in range(30):
        assert add_typos(LEXICON_TEXT, random.Random(seed), 0.1, lexicon=frozenset()) == \
            add_typos(LEXICON_TEXT, random.Random(seed), 0.1)


def test_lexicon_gives_up_rather_than_spell_a_word():
    # every edit of "a" at rate 1 that the lexicon knows is refused; unknown ones are allowed
    lexicon = lexicon_of(["a aa s q w z A"])
    for seed in range(50):
        out = add_typos("a", random.Random(seed), 1.0, lexicon=lexicon)
        assert out not in {"aa", "s", "q", "w", "z"} and out


def test_typo_variant_passes_the_lexicon():
    recs = [{"id": "q", "input": LEXICON_TEXT, "target": "t"}]
    lexicon = lexicon_of([LEXICON_TEXT, "from form for of off on the then"])
    outs = [typo_variant(recs, seed=s, rate=0.2, lexicon=lexicon)[0]["input"] for s in range(50)]
    assert all(not (lexicon_of([o]) - lexicon_of([LEXICON_TEXT])) & lexicon for o in outs)
