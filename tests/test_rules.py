"""The rule-based rewriter (qrewrite.infer.rules): one behaviour per rule, odd input, determinism. No model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qrewrite.infer.rules import RulesRewriter, rewrite_question, rewrite_questions
from qrewrite.metrics import normalize_whitespace

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("noisy, clean", [
    # "no": the last word before the cue is the reparandum, the repair takes its place.
    ("What is the capital of France no Germany?", "What is the capital of Germany?"),
    # "no" + "sorry" before a new question: the new question replaces the old one.
    ("What year no sorry which city hosted the 2012 Olympics?", "Which city hosted the 2012 Olympics?"),
    ("What was the black death known sorry originally blamed on?",
     "What was the black death originally blamed on?"),
    # "I mean" (with a filler and a comma in the block).
    ("Which historic empire used social, umm I mean cultural imperialism to sway local elites?",
     "Which historic empire used cultural imperialism to sway local elites?"),
    ("What academy did Tugh Temur destroy or no I mean found?", "What academy did Tugh Temur found?"),
    # "rather" / "or rather", as a fragment and as a new question.
    ("What is the capital of Germany or rather France?", "What is the capital of France?"),
    ("Who needs rather what needs to be made to ensure growth?", "What needs to be made to ensure growth?"),
    # Other cues: "make that", "scratch that", "wait", "actually", "oops".
    ("Who or no make that what is never involved in a review?", "What is never involved in a review?"),
    ("At what size can drugs scratch that what is the study of proteins?", "What is the study of proteins?"),
    ("What territory no wait what was the significance of the British win?",
     "What was the significance of the British win?"),
])
def test_corrections(noisy, clean):
    assert rewrite_question(noisy) == clean


@pytest.mark.parametrize("noisy, clean", [
    # The repair's first word repeats a word shortly before the cue: cut there, not just one word back.
    ("What group does not reflect the balance of parties in MSPs, oops no, in Parliament?",
     "What group does not reflect the balance of parties in Parliament?"),
    # A determiner anchors on another determiner ("a ... no an ...").
    ("If a closed particle no an internal force acts on the system, what happens?",
     "If an internal force acts on the system, what happens?"),
    # A short repair sharing its last words with a span before the cue is swapped in there.
    ("What is another name for the east side of Fresno no west side?",
     "What is another name for the west side of Fresno?"),
    # A wh-repair keeps what came before the wh-word it repeats.
    ("Albert Einstein formulated what theory, or sorry, what law?", "Albert Einstein formulated what law?"),
    # Several cues, one after another.
    ("When did the Spanish no actually the um German no French construct Kings Road?",
     "When did the French construct Kings Road?"),
])
def test_grafting_the_repair(noisy, clean):
    assert rewrite_question(noisy) == clean


@pytest.mark.parametrize("noisy, clean", [
    ("Where was When was Al-Banna born?", "When was Al-Banna born?"),  # capitalised wh-word mid-question
    ("What is the intrinsic what is the principle about spin?", "What is the principle about spin?"),
    ("Who stated or who ordered the Stern Review?", "Who ordered the Stern Review?"),  # "or" + wh-word
    ("When governing tribe or just tell me what rule did some natives live under?",
     "What rule did some natives live under?"),
])
def test_restarts(noisy, clean):
    assert rewrite_question(noisy) == clean


@pytest.mark.parametrize("noisy, clean", [
    ("Um, what is the capital of France?", "What is the capital of France?"),
    ("Umm so what type of professionals do pharmacists lack?",
     "What type of professionals do pharmacists lack?"),
    ("What is the uh capital of France?", "What is the capital of France?"),  # a determiner is kept
    ("What umm well type of climate does Jacksonville have?",
     "What type of climate does Jacksonville have?"),
    # As in Disfl-QA, a filler after a content word marks that word as abandoned.
    ("What interfered with Kublai's invasion of Burma erm Japan?",
     "What interfered with Kublai's invasion of Japan?"),
])
def test_fillers(noisy, clean):
    assert rewrite_question(noisy) == clean


@pytest.mark.parametrize("question", [
    "What is the capital of France?",
    "  How many   people live in\tWarsaw ?  ",
    "Which country is no longer a member of the union?",  # cue words used for their meaning
    "Why did they choose gold rather than silver?",
    "What is used instead of sugar in the recipe?",
    "In which year did the war end?",
    "Name the river that flows through Paris",
])
def test_questions_without_a_cue_are_unchanged_apart_from_whitespace(question):
    assert rewrite_question(question) == normalize_whitespace(question)


def test_first_letter_is_capitalised_and_question_mark_kept():
    assert rewrite_question("what is, no wait, which river flows in Paris?") == "Which river flows in Paris?"
    assert rewrite_question("what is the capital of France?") == "What is the capital of France?"
    # The cue block at the very end carried the "?": it is put back.
    assert rewrite_question("What is the capital of France no?") == "What is the capital of France?"


@pytest.mark.parametrize("text", [
    "", " ", "\t\n", "?", "!!!", "no", "um uh", "sorry sorry sorry", "no no no?", "or", "What is X no",
    "Who I mean", "I mean what?", "\u00bfQu\u00e9 es esto?", "what \u2019s no who\u2019s there?",
    "- no - ?",
])
def test_odd_input_does_not_crash(text):
    out = rewrite_question(text)
    assert isinstance(out, str)
    assert out == normalize_whitespace(out)
    assert rewrite_question(out) == rewrite_question(out)  # and rewriting the output works too


def test_escaped_quotes_are_unescaped():
    assert rewrite_question('Who wrote the book \\"Capital\\"?') == 'Who wrote the book "Capital"?'


def test_long_input_with_many_cues():
    text = " ".join(["what is the capital of Spain no"] * 200) + " Germany?"
    assert rewrite_question(text) == "What is the capital of Germany?"
    assert rewrite_question(" ".join(["uh no sorry"] * 300) + " what is it?") == "What is it?"


def test_only_cues_give_empty_string():
    assert rewrite_question("") == ""
    assert rewrite_question("   ") == ""
    assert rewrite_question("um no") == ""


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError):
        rewrite_question(None)
    with pytest.raises(TypeError):
        rewrite_questions(["What?", 3])


QUESTIONS = [
    "What is the capital of France no Germany?",
    "Who needs rather what needs to be made?",
    "Um, what is the capital of France?",
    "What is the capital of France?",
    "",
]


def test_list_api_and_class_match_the_single_question_function():
    expected = [rewrite_question(q) for q in QUESTIONS]
    assert rewrite_questions(QUESTIONS) == expected
    rewriter = RulesRewriter()
    assert rewriter.name == "rules"
    assert rewriter.rewrite(QUESTIONS) == expected
    assert rewriter.rewrite([]) == []


def test_deterministic_across_calls_and_processes():
    first = rewrite_questions(QUESTIONS)
    assert rewrite_questions(QUESTIONS) == first
    assert rewrite_questions(list(reversed(QUESTIONS))) == list(reversed(first))  # no state between questions
    code = ("import json, sys; from qrewrite.infer.rules import rewrite_questions; "
            "print(json.dumps(rewrite_questions(json.loads(sys.argv[1])))); "
            "assert 'torch' not in sys.modules, 'qrewrite.infer.rules imported torch'")
    for seed in ("1", "2"):  # different set/dict hash orders must not change anything
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(QUESTIONS)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == first


def test_rules_from_the_command_line():
    from helpers import run_cli
    r = run_cli("rewrite", "--model", "rules", "What is the capital of France no Germany?")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "What is the capital of Germany?"
