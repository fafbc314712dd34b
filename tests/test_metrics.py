"""Metrics against values worked out by hand (no network: rouge_score and sacrebleu are local)."""

import math

import pytest

from qrewrite.metrics import (
    bleu_score,
    bleu_signature,
    compute_metrics,
    exact_match,
    normalize_whitespace,
    per_example,
    per_example_rouge_l,
    rouge_scores,
)


def f1(p, r):
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


# ----------------------------------------------------------------------------------------------- basics

def test_normalize_whitespace():
    assert normalize_whitespace("  What  is\tthe\n capital? ") == "What is the capital?"
    assert normalize_whitespace("") == ""
    assert normalize_whitespace(" \n\t ") == ""


def test_exact_match_whitespace_but_case_sensitive():
    assert exact_match("What is  the capital?\n", " What is the capital?")
    assert not exact_match("what is the capital?", "What is the capital?")
    assert not exact_match("What is the capital", "What is the capital?")


# ----------------------------------------------------------------------------------------------- ROUGE

# A) ref "The cat sat on the mat."  pred "the cat is on the mat"  (lower-cased, punctuation dropped;
#    all tokens <= 3 chars so the stemmer leaves them alone)
#    unigrams: ref the*2 cat sat on mat; pred the*2 cat is on mat -> clipped overlap the2+cat+on+mat = 5
#              P = R = 5/6 -> F1 = 5/6
#    bigrams:  ref the-cat cat-sat sat-on on-the the-mat; pred the-cat cat-is is-on on-the the-mat
#              overlap the-cat, on-the, the-mat = 3 of 5 each -> F1 = 3/5
#    LCS:      "the cat on the mat" = 5 -> F1 = 5/6
A_REF, A_PRED = "The cat sat on the mat.", "the cat is on the mat"
A = {"rouge1": 5 / 6, "rouge2": 3 / 5, "rougeL": 5 / 6}

# B) stemming: ref "Who hosted the Olympic games?"  pred "who will host the games"
#    Porter: hosted -> host, games -> game.  ref: who host the olymp(ic) game; pred: who will host the game
#    unigrams: who host the game = 4 of 5 each -> F1 = 4/5  (without stemming only who, the, games = 3/5)
#    bigrams:  ref who-host host-the the-olympic olympic-game; pred who-will will-host host-the the-game
#              overlap host-the = 1 of 4 each -> F1 = 1/4
#    LCS:      who host the game = 4 -> F1 = 4/5
B_REF, B_PRED = "Who hosted the Olympic games?", "who will host the games"
B = {"rouge1": 4 / 5, "rouge2": 1 / 4, "rougeL": 4 / 5}

# C) unequal lengths: ref "What is the capital of France?" (6 tokens)  pred "capital of France" (3 tokens)
#    unigrams: 3 matches: P = 3/3, R = 3/6 -> F1 = 2/3
#    bigrams:  pred capital-of of-france both in ref: P = 2/2, R = 2/5 -> F1 = 2*1*0.4/1.4 = 4/7
#    LCS:      capital of france = 3: P = 1, R = 1/2 -> F1 = 2/3
C_REF, C_PRED = "What is the capital of France?", "capital of France"
C = {"rouge1": 2 / 3, "rouge2": f1(1.0, 2 / 5), "rougeL": 2 / 3}


@pytest.mark.parametrize("pred,ref,expected", [(A_PRED, A_REF, A), (B_PRED, B_REF, B), (C_PRED, C_REF, C)])
def test_rouge_single_pairs_by_hand(pred, ref, expected):
    got = rouge_scores([pred], [ref])
    assert set(got) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=1e-9), k
    assert got["rougeLsum"] == pytest.approx(expected["rougeL"])  # one line: Lsum == L


def test_rouge_c_fmeasure_value():
    assert C["rouge2"] == pytest.approx(4 / 7)


def test_rouge_corpus_is_mean_over_examples():
    got = rouge_scores([A_PRED, B_PRED, C_PRED], [A_REF, B_REF, C_REF])
    for k in ("rouge1", "rouge2", "rougeL"):
        assert got[k] == pytest.approx((A[k] + B[k] + C[k]) / 3)
    # e.g. rouge1 = (5/6 + 4/5 + 2/3) / 3 = 0.7666...
    assert got["rouge1"] == pytest.approx(0.766666666, abs=1e-6)


def test_rouge_perfect_and_disjoint():
    got = rouge_scores(["Where is Paris?"], ["where is paris"])
    assert all(v == pytest.approx(1.0) for v in got.values())
    got = rouge_scores(["alpha beta"], ["gamma delta"])
    assert all(v == 0.0 for v in got.values())


def test_rouge_lsum_splits_sentences_on_newlines():
    # tokens: ref "the cat sat the dog ran", pred "the dog ran the cat sat": LCS = 3 -> rougeL = 3/6 = 0.5
    # rougeLsum per ref sentence: "the cat sat" and "the dog ran" each fully covered by a pred line -> 1.0
    got = rouge_scores(["the dog ran\nthe cat sat"], ["the cat sat\nthe dog ran"])
    assert got["rougeL"] == pytest.approx(0.5)
    assert got["rougeLsum"] == pytest.approx(1.0)


def test_per_example_rouge_l():
    got = per_example_rouge_l([A_PRED, B_PRED, C_PRED], [A_REF, B_REF, C_REF])
    assert got == pytest.approx([5 / 6, 4 / 5, 2 / 3])
    assert per_example_rouge_l([], []) == []


def test_rouge_errors():
    with pytest.raises(ValueError):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError):
        rouge_scores([], [])
    with pytest.raises(TypeError):
        rouge_scores("abc", "abc")


# ----------------------------------------------------------------------------------------------- BLEU

def test_bleu_perfect_and_disjoint():
    assert bleu_score(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu_score(["a b c d"], ["e f g h"]) == 0.0


def test_bleu_partial_by_hand():
    # pred "the cat sat on the mat", ref "the cat sat on a mat"; equal length -> BP = 1
    # p1 = 5/6 (the clipped to 1, cat sat on mat), p2 = 3/5 (the-cat cat-sat sat-on),
    # p3 = 2/4 (the-cat-sat cat-sat-on), p4 = 1/3 (the-cat-sat-on)
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25  # = 53.728...
    assert bleu_score(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(expected)
    assert expected == pytest.approx(53.73, abs=0.01)


def test_bleu_brevity_penalty_by_hand():
    # pred "the cat sat on" (c = 4) vs ref "the cat sat on the mat" (r = 6): all precisions 1,
    # BP = exp(1 - r/c) = exp(1 - 6/4)
    assert bleu_score(["the cat sat on"], ["the cat sat on the mat"]) == pytest.approx(100 * math.exp(-0.5))


def test_bleu_exp_smoothing_by_hand():
    # pred "the cat sat on the mat", ref "the dog sat on a mat"
    # p1 = 4/6 (the, sat, on, mat), p2 = 1/5 (sat-on), p3 = 0/4, p4 = 0/3.
    # exp smoothing: the k-th zero-count order gets 1 / (2^k * total): p3 = 1/(2*4), p4 = 1/(4*3)
    expected = 100 * (4 / 6 * 1 / 5 * 1 / 8 * 1 / 12) ** 0.25
    assert bleu_score(["the cat sat on the mat"], ["the dog sat on a mat"]) == pytest.approx(expected)


def test_bleu_is_corpus_level_not_sentence_mean():
    # the two pairs above together: counts are summed before dividing.
    # c = 6 + 4 = 10, r = 6 + 6 = 12 -> BP = exp(1 - 12/10)
    # p1 = (5+4)/(6+4), p2 = (3+3)/(5+3), p3 = (2+2)/(4+2), p4 = (1+1)/(3+1)
    expected = 100 * math.exp(1 - 12 / 10) * (9 / 10 * 6 / 8 * 4 / 6 * 2 / 4) ** 0.25  # = 56.39
    preds = ["the cat sat on the mat", "the cat sat on"]
    refs = ["the cat sat on a mat", "the cat sat on the mat"]
    got = bleu_score(preds, refs)
    assert got == pytest.approx(expected)
    sentence_mean = (100 * (1 / 12) ** 0.25 + 100 * math.exp(-0.5)) / 2  # 57.19: what it must not be
    assert abs(got - sentence_mean) > 0.5


def test_bleu_signature():
    sig = bleu_signature()
    assert "tok:13a" in sig and "smooth:exp" in sig and "nrefs:1" in sig and "version:" in sig


def test_bleu_errors():
    with pytest.raises(ValueError):
        bleu_score(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        bleu_score([], [])


# ----------------------------------------------------------------------------------------------- compute_metrics

def test_compute_metrics_keys_and_shares():
    inputs = ["What is the um capital of France?", "Who  wrote Hamlet?", "Where is Paris?", "Waht is it?"]
    preds = ["What is the capital of France?", "Who wrote Hamlet?", "where is Paris?", "What is it?"]
    refs = ["What is the capital of France?", "Who wrote Hamlet?", "Where is Paris?", "What is it?"]
    m = compute_metrics(inputs, preds, refs)
    assert set(m) == {"n", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "exact_match", "changed_input",
                      "negation_dropped"}
    assert m["n"] == 4
    # exact: 1 yes, 2 yes, 3 no (case), 4 yes -> 3/4
    assert m["exact_match"] == pytest.approx(0.75)
    # changed: 1 yes, 2 no (only whitespace differs), 3 yes (case), 4 yes -> 3/4
    assert m["changed_input"] == pytest.approx(0.75)
    assert m["rouge1"] == pytest.approx(1.0)  # rouge lower-cases: all four are perfect
    assert 0 < m["bleu"] < 100  # sacrebleu is case-sensitive: "where" != "Where"


def test_compute_metrics_copy_baseline_changes_nothing():
    inputs = ["What is the um capital?", "Who wrote it?"]
    m = compute_metrics(inputs, list(inputs), ["What is the capital?", "Who wrote it?"])
    assert m["changed_input"] == 0.0
    assert m["exact_match"] == pytest.approx(0.5)


@pytest.mark.parametrize("inputs,preds,refs", [
    (["a"], ["a", "b"], ["a", "b"]),
    (["a", "b"], ["a"], ["a", "b"]),
    (["a", "b"], ["a", "b"], ["a"]),
    ([], [], []),
])
def test_compute_metrics_errors(inputs, preds, refs):
    with pytest.raises(ValueError):
        compute_metrics(inputs, preds, refs)


def test_per_example_rows():
    rows = per_example([A_REF, "x"], [A_PRED, "Who  wrote Hamlet? "], [A_REF, "Who wrote Hamlet?"], ids=["q1", "q2"])
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert set(rows[0]) == {"id", "input", "prediction", "reference", "rougeL", "exact_match"}
    assert rows[0]["rougeL"] == pytest.approx(5 / 6)
    assert rows[0]["exact_match"] is False
    assert rows[1]["exact_match"] is True and rows[1]["rougeL"] == pytest.approx(1.0)
    assert rows[1]["prediction"] == "Who  wrote Hamlet? "  # kept as generated
    assert [r["id"] for r in per_example(["a", "b"], ["a", "b"], ["a", "b"])] == [0, 1]
    with pytest.raises(ValueError):
        per_example(["a"], ["a"], ["a"], ids=[1, 2])


@pytest.mark.parametrize("prediction, reference, dropped", [
    ("What do online pharmacies allow?", "What do no online pharmacies allow?", True),
    ("What do ctenophores have that other animals have?", "What do ctenophores have that no other animals have?",
     True),
    ("Why isn't it sold?", "Why is it not sold?", False),  # "n't" and "not" are one negation
    ("Why is it sold?", "Why isn't it sold?", True),
    ("Who never lost?", "Who never lost?", False),
    ("Which is not a no?", "Which is not a no?", False),
    ("Which is not a no or not?", "Which is not a no?", False),  # adding one is not dropping one
])
def test_drops_negation(prediction, reference, dropped):
    from qrewrite.metrics import drops_negation
    assert drops_negation(prediction, reference) is dropped


def test_compute_metrics_counts_negations_dropped():
    from qrewrite.metrics import compute_metrics
    refs = ["What do no shops sell?", "Who is it?", "Why not stay?", "When did it not rain?"]
    preds = ["What do shops sell?", "Who is it?", "Why stay?", "When did it not rain?"]
    assert compute_metrics(refs, preds, refs)["negation_dropped"] == 0.5
