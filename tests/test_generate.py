"""Batched generation with a shared prompt prefix gives what one-question-at-a-time generation gives."""

import pytest
import torch

from qrewrite.errors import ConfigError
from qrewrite.infer.decoding import Decoding, InOrderBonus, question_token_ids, question_token_sequence
from qrewrite.prompt import PromptSpec

QUESTIONS = ["What year no sorry which city hosted the 2004 games?", "Who", "how many legs does a a spider hav",
             "When did um when was the treaty signed", "Which river, no, which lake is the largest by volume?"]


@pytest.fixture(scope="module")
def lively(tiny_model):
    """The tiny Qwen2 with large random weights, in float64. Its greedy output depends on every input token and
    position (the stock init always emits the same token), so a layout that shifted a position or let padding
    leak into attention would change what it generates."""
    from qrewrite.models import load_for_inference
    model, tokenizer, _ = load_for_inference(str(tiny_model))
    model = model.to(torch.float64)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    return model, tokenizer


def test_prefix_is_the_prompt_before_the_question(lively):
    from qrewrite.infer.generate import prompt_ids, shared_prefix
    model, tok = lively
    prefix = shared_prefix(model, tok)
    assert prefix is not None and tok.decode(prefix.ids).endswith("<|im_start|>user\n")
    for q, ids in zip(QUESTIONS, prompt_ids(tok, QUESTIONS)):
        assert ids[:len(prefix.ids)] == prefix.ids
        assert tok.decode(ids[len(prefix.ids):]).startswith(q)
    assert prefix.cache.get_seq_length() == len(prefix.ids)


@pytest.mark.parametrize("prompt_format", ["chat", "minimal"])
def test_batched_with_prefix_matches_one_at_a_time(lively, prompt_format):
    from qrewrite.infer.generate import generate_ids, prompt_ids, shared_prefix
    model, tok = lively
    spec = PromptSpec(prompt_format)
    rows = prompt_ids(tok, QUESTIONS, spec)
    assert len({len(r) for r in rows}) == len(rows)  # every row padded differently
    prefix = shared_prefix(model, tok, spec)
    assert prefix is not None
    alone = [generate_ids(model, tok, [r], max_new_tokens=8)[0].tolist() for r in rows]
    with_prefix = generate_ids(model, tok, rows, max_new_tokens=8, prefix=prefix).tolist()
    left_padded = generate_ids(model, tok, rows, max_new_tokens=8).tolist()
    assert len({tuple(a) for a in alone}) == len(rows)  # the outputs depend on the question
    assert with_prefix == alone
    assert left_padded == alone
    # the shared cache is copied per batch, never extended
    assert prefix.cache.get_seq_length() == len(prefix.ids)
    assert generate_ids(model, tok, rows[:2], max_new_tokens=8, prefix=prefix).tolist() == alone[:2]


def test_prefix_skipped_for_rows_that_do_not_start_with_it(lively):
    from qrewrite.infer.generate import generate_ids, prompt_ids, shared_prefix
    model, tok = lively
    rows = prompt_ids(tok, QUESTIONS[:3], PromptSpec(system_prompt="Fix the question."))
    other = shared_prefix(model, tok)  # the default system prompt's prefix
    assert rows[0][:len(other.ids)] != other.ids
    assert (generate_ids(model, tok, rows, max_new_tokens=6, prefix=other).tolist()
            == generate_ids(model, tok, rows, max_new_tokens=6).tolist())


def test_rewrite_in_input_order_and_training_mode_restored(lively):
    from qrewrite.infer.generate import rewrite, rewrite_batch
    model, tok = lively
    one_by_one = [rewrite_batch(model, tok, [q], max_new_tokens=6)[0] for q in QUESTIONS]
    model.train()
    try:
        got = list(rewrite(model, tok, QUESTIONS, batch_size=2, max_new_tokens=6))
        assert model.training
    finally:
        model.eval()
    assert [i for i, _ in got] == list(range(len(QUESTIONS)))
    assert [t for _, t in got] == one_by_one


def test_beam_search_on_a_padded_batch_matches_one_at_a_time_and_ignores_the_prefix(lively):
    from qrewrite.infer.generate import generate_ids, prompt_ids, rewrite, shared_prefix
    model, tok = lively
    rows = prompt_ids(tok, QUESTIONS, PromptSpec("minimal"))
    beams = Decoding(num_beams=3)
    alone = [generate_ids(model, tok, [r], max_new_tokens=8, decoding=beams)[0].tolist() for r in rows]
    greedy = [generate_ids(model, tok, [r], max_new_tokens=8)[0].tolist() for r in rows]
    assert alone != greedy  # the beams find other continuations on this model: the option is not a no-op
    prefix = shared_prefix(model, tok, PromptSpec("minimal"))
    assert generate_ids(model, tok, rows, max_new_tokens=8, decoding=beams, prefix=prefix).tolist() == alone
    texts = dict(rewrite(model, tok, QUESTIONS, batch_size=2, max_new_tokens=8, prompt=PromptSpec("minimal"),
                         decoding=Decoding(num_beams=3)))
    assert [texts[i] for i in range(len(QUESTIONS))] == [
        t.strip() for t in tok.batch_decode(alone, skip_special_tokens=True)]


# ---- the copy bonus --------------------------------------------------------------------------------------------

def _new_tokens(tok, rows):
    return [[t for t in row if t != tok.pad_token_id] for row in rows.tolist()]


def test_copy_bonus_steers_toward_the_questions_own_tokens(lively):
    """A bonus far above the logits' range leaves only the question's tokens (and end-of-turn, whose score the
    bonus never touches, so a rewrite can still stop); greedy on this model writes other tokens."""
    from qrewrite.infer.generate import generate_ids, prompt_ids
    from qrewrite.prompt import end_of_turn_ids
    model, tok = lively
    prompt = PromptSpec("minimal")
    rows = prompt_ids(tok, QUESTIONS, prompt)
    allowed = [set(question_token_ids(tok, q)) | set(end_of_turn_ids(tok)) for q in QUESTIONS]
    greedy = _new_tokens(tok, generate_ids(model, tok, rows, max_new_tokens=8))
    steered = _new_tokens(tok, generate_ids(model, tok, rows, max_new_tokens=8, decoding=Decoding(copy_bonus=1e6),
                                          questions=QUESTIONS))
    assert any(set(g) - a for g, a in zip(greedy, allowed))
    assert all(s and set(s) <= a for s, a in zip(steered, allowed))
    assert not set(question_token_ids(tok, "Who")) & set(tok.all_special_ids)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_copy_bonus_on_a_padded_batch_matches_one_at_a_time(lively, num_beams):
    """Each row gets its own question's bonus, beams included, with or without the shared prefix."""
    from qrewrite.infer.generate import rewrite, rewrite_batch
    model, tok = lively
    decoding = Decoding(num_beams=num_beams, copy_bonus=3.0)
    prompt = PromptSpec("minimal")
    alone = [rewrite_batch(model, tok, [q], max_new_tokens=8, prompt=prompt, decoding=decoding)[0] for q in QUESTIONS]
    batched = dict(rewrite(model, tok, QUESTIONS, batch_size=3, max_new_tokens=8, prompt=prompt, decoding=decoding))
    assert [batched[i] for i in range(len(QUESTIONS))] == alone
    plain = [rewrite_batch(model, tok, [q], max_new_tokens=8, prompt=prompt, decoding=Decoding(num_beams))[0]
             for q in QUESTIONS]
    assert plain != alone  # the bonus changed something: the test is not comparing greedy with greedy


# ---- the order bonus -------------------------------------------------------------------------------------------

def _is_in_order_copy(tokens, sequence):
    ids, aliases = sequence
    at = -1
    for k, t in enumerate(tokens):
        later = [j for j, u in enumerate(ids) if u == t and j > at] + ([0] if k == 0 and t in aliases else [])
        if not later:
            return False
        at = min(later)
    return True


def test_order_bonus_steers_toward_an_in_order_copy_of_the_question(lively):
    """A bonus far above the logits' range leaves only question tokens that come after the last one copied and
    end-of-turn: each rewrite is the question with words left out, never reordered or repeated, then ends."""
    from qrewrite.infer.generate import generate_ids, prompt_ids
    from qrewrite.prompt import end_of_turn_ids
    model, tok = lively
    rows = prompt_ids(tok, QUESTIONS, PromptSpec("minimal"))
    stop = set(end_of_turn_ids(tok)) | {tok.pad_token_id}
    sequences = [question_token_sequence(tok, q) for q in QUESTIONS]
    greedy = _new_tokens(tok, generate_ids(model, tok, rows, max_new_tokens=8))
    steered = _new_tokens(tok, generate_ids(model, tok, rows, max_new_tokens=8, decoding=Decoding(order_bonus=1e6),
                                          questions=QUESTIONS))
    assert not all(_is_in_order_copy([t for t in g if t not in stop], s) for g, s in zip(greedy, sequences))
    assert all(_is_in_order_copy([t for t in row if t not in stop], s) for row, s in zip(steered, sequences))
    assert all(row[-1] in stop for row in steered)
    assert any(len([t for t in row if t not in stop]) > 1 for row in steered)


def test_order_bonus_goes_to_the_tokens_after_the_last_one_copied():
    """Question tokens 5 6 7 6 (alias 9 for the first word at the answer's start): the bonus moves past each
    token copied, matched at its earliest position; a token that is not next in the question leaves it."""
    bonus = InOrderBonus([([5, 6, 7, 6], {9: 0}), ([8], {})], 1.0, special_ids={8, 4}, end_ids=[4])
    prompt = torch.tensor([[1, 2], [1, 2]])
    scores = torch.zeros(2, 10)

    def after(*new):
        rows = torch.cat([prompt, torch.tensor([list(new), [3] * len(new)])], dim=1)
        return {i for i, v in enumerate(bonus(rows, scores)[0].tolist()) if v}

    assert after() == {5, 6, 7, 9, 4}  # 4: end-of-turn, after every question token
    assert bonus(prompt, scores)[1].tolist() == [0.0] * 4 + [1.0] + [0.0] * 5  # a special token: never
    assert after(9) == after(5) == {6, 7, 4}
    assert after(6) == {6, 7, 4}  # first 6 (position 1): 7 and the second 6 still ahead
    assert after(6, 6) == {4}  # the last token copied: only the end ahead
    assert after(5, 3, 7) == {6, 4}  # 3 is not the question's: the position stays at 5


@pytest.mark.parametrize("num_beams", [1, 3])
def test_order_bonus_on_a_padded_batch_matches_one_at_a_time(lively, num_beams):
    from qrewrite.infer.generate import rewrite, rewrite_batch
    model, tok = lively
    decoding = Decoding(num_beams=num_beams, copy_bonus=1.0, order_bonus=3.0)
    prompt = PromptSpec("minimal")
    alone = [rewrite_batch(model, tok, [q], max_new_tokens=8, prompt=prompt, decoding=decoding)[0] for q in QUESTIONS]
    batched = dict(rewrite(model, tok, QUESTIONS, batch_size=3, max_new_tokens=8, prompt=prompt, decoding=decoding))
    assert [batched[i] for i in range(len(QUESTIONS))] == alone
    copy_only = [rewrite_batch(model, tok, [q], max_new_tokens=8, prompt=prompt,
                               decoding=Decoding(num_beams, copy_bonus=1.0))[0] for q in QUESTIONS]
    assert copy_only != alone


def test_decoding_names_and_refuses_impossible_settings():
    assert Decoding().name == "greedy" and Decoding(num_beams=4).name == "beam search, 4 beams"
    assert Decoding(copy_bonus=1).name == "greedy, copy bonus 1.0"
    assert Decoding(num_beams=2, copy_bonus=0.5).name == "beam search, 2 beams, copy bonus 0.5"
    assert Decoding(order_bonus=2).name == "greedy, order bonus 2.0"
    assert Decoding(copy_bonus=1, order_bonus=1).name == "greedy, copy bonus 1.0, order bonus 1.0"
    for bad in ({"num_beams": 0}, {"num_beams": 2.0}, {"copy_bonus": -1.0}, {"copy_bonus": float("nan")},
                {"copy_bonus": float("inf")}, {"copy_bonus": "1"}, {"order_bonus": -1.0},
                {"order_bonus": float("nan")}, {"order_bonus": True}):
        with pytest.raises(ConfigError):
            Decoding(**bad)
