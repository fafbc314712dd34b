import pytest

from qrewrite.data.kinds import KINDS, classify_input
from qrewrite.eval.breakdown import breakdown_by_kind, worst_rewrites

EXAMPLES = [
    # correction: a cue, the clean question keeps only the later part
    ("What do petrologists no what do unstable isotope studies indicate?",
     "What do unstable isotope studies indicate?", "correction"),
    ("When was the Parliament of Victoria, or rather, the Victorian Legislative Council established?",
     "When was the Victorian Legislative Council established?", "correction"),
    ("What is the capital of France, sorry, Germany?", "What is the capital of Germany?", "correction"),
    ("What is the name of the I mean what city hosted the games?", "What city hosted the games?", "correction"),
    ("How many people, make that how many cities are in Texas?", "How many cities are in Texas?", "correction"),
    ("Which team won in 1990 um no 1992?", "Which team won in 1992?", "correction"),
    ("What year did the war start, wait, end?", "What year did the war end?", "correction"),
    # filler: deleting filler words gives the clean question (case / punctuation ignored)
    ("What um is the uh name of the city?", "What is the name of the city?", "filler"),
    ("So, like, you know, who wrote Hamlet?", "Who wrote Hamlet?", "filler"),
    ("Well er when did the war end?", "When did the war end?", "filler"),
    # restart: starting over without a cue
    ("What is the what was the name of the ship?", "What was the name of the ship?", "restart"),
    ("In which year in which decade did it end?", "In which decade did it end?", "restart"),
    ("Who who founded the company?", "Who founded the company?", "restart"),
    # typo: same words, small character edits
    ("Waht is teh captial of France?", "What is the capital of France?", "typo"),
    ("Who wrote Hamlte", "Who wrote Hamlet?", "typo"),
    # other
    ("Where is Paris?", "Where is Paris?", "other"),
    ("Is there no cure?", "Is there no cure?", "other"),  # "no" in both: not a correction
    ("What does it look like?", "What does it look like?", "other"),  # "like" kept: not a filler
    ("Tell me about the thing", "What is the largest city?", "other"),
    ("Who is the president of France?", "Who is the king of Spain?", "other"),  # same length, big edits
]


@pytest.mark.parametrize("noisy,clean,kind", EXAMPLES, ids=[f"{k}-{i}" for i, (_, _, k) in enumerate(EXAMPLES)])
def test_classify_input(noisy, clean, kind):
    assert classify_input(noisy, clean) == kind


def test_examples_cover_every_kind():
    assert {k for _, _, k in EXAMPLES} == set(KINDS)


def test_precedence_filler_before_correction_before_restart():
    # filler deletion explains everything even though "well" precedes a wh-word
    assert classify_input("Well, what is the capital?", "What is the capital?") == "filler"
    # a cue and a repeated wh-word: correction wins over restart
    assert classify_input("What is the no what was the name?", "What was the name?") == "correction"
    # the same without a cue is a restart
    assert classify_input("What is the what was the name?", "What was the name?") == "restart"


def _row(i, inp, ref, rl, em):
    return {"id": i, "input": inp, "prediction": ref if em else "x", "reference": ref, "rougeL": rl,
            "exact_match": em}


ROWS = [
    _row(3, "What um is the name?", "What is the name?", 1.0, True),           # filler
    _row(1, "What uh is it?", "What is it?", 0.5, False),                      # filler
    _row(2, "Waht is teh name?", "What is the name?", 0.2, False),             # typo
    _row(5, "Who who wrote it?", "Who wrote it?", 0.2, False),                 # restart
    _row(4, "What is France, no, Germany?", "What is Germany?", 0.9, True),    # correction
]


def test_breakdown_by_kind():
    got = breakdown_by_kind(ROWS)
    assert list(got) == ["typo", "correction", "restart", "filler"]  # KINDS order, only present kinds
    assert got["filler"] == {"n": 2, "rougeL": pytest.approx(0.75), "exact_match": pytest.approx(0.5)}
    assert got["typo"] == {"n": 1, "rougeL": pytest.approx(0.2), "exact_match": 0.0}
    assert got["correction"]["exact_match"] == 1.0
    assert sum(v["n"] for v in got.values()) == len(ROWS)
    assert breakdown_by_kind([]) == {}


def test_breakdown_keeps_given_kind():
    rows = [{**ROWS[0], "kind": "other"}]
    assert list(breakdown_by_kind(rows)) == ["other"]


def test_worst_rewrites_order_and_kind():
    got = worst_rewrites(ROWS, k=3)
    # lowest rougeL first; 0.2 tie broken by id (2 before 5); then 0.5
    assert [r["id"] for r in got] == [2, 5, 1]
    assert [r["kind"] for r in got] == ["typo", "restart", "filler"]
    assert "kind" not in ROWS[2]  # input rows are not modified
    assert [r["id"] for r in worst_rewrites(ROWS)] == [2, 5, 1, 4, 3]  # k larger than the list
    assert worst_rewrites(ROWS, k=0) == []


def test_worst_rewrites_string_ids_tie():
    rows = [_row("b", "x", "y", 0.0, False), _row("a", "x", "y", 0.0, False)]
    assert [r["id"] for r in worst_rewrites(rows, k=2)] == ["a", "b"]
