"""The TRL side of the training benchmark (benchmarks/trl_side.py) on the tiny Qwen2: trl.SFTTrainer trains,
feeds the records in order, and supervises the project's tokens -- plus, stock, the chat template's newline."""

import json
import math
import sys

import pytest
import torch
from helpers import ROOT, SAMPLE

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.trl_side import (  # noqa: E402
    build_trl_trainer,
    mean_training_loss,
    step_losses,
    supervised_token_count,
    supervised_token_ids,
)
from qrewrite.models import load_model, load_tokenizer  # noqa: E402
from qrewrite.prompt import END_OF_TURN, PromptSpec, encode_records  # noqa: E402

BATCH = 4


@pytest.fixture(scope="module")
def records():
    return json.loads((SAMPLE / "train.json").read_text())[:2 * BATCH]


def make(tiny_model, records, tmp_path, **kw):
    tok = load_tokenizer(str(tiny_model))
    model = load_model(str(tiny_model), tokenizer=tok)
    trainer = build_trl_trainer(model, tok, records, batch_size=BATCH, max_steps=2, learning_rate=1e-3, seed=0,
                                output_dir=tmp_path / "trl", **kw)
    return trainer, tok


def test_trl_trainer_runs_two_steps(tiny_model, records, tmp_path):
    trainer, _ = make(tiny_model, records, tmp_path)
    assert trainer.trl_settings["completion_only_loss"] and trainer.trl_settings["loss_type"] == "nll"
    assert trainer.args.train_sampling_strategy == "sequential" and not trainer.args.bf16
    result = trainer.train()
    assert trainer.state.global_step == 2
    losses = step_losses(trainer)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)  # one log entry per step
    assert mean_training_loss(trainer) == pytest.approx(sum(losses) / 2)
    assert mean_training_loss(trainer.state.log_history) == pytest.approx(result.training_loss, rel=1e-4)
    assert not list((tmp_path / "trl").glob("checkpoint-*"))  # no saving


def test_batches_are_the_records_in_order(tiny_model, records, tmp_path):
    trainer, tok = make(tiny_model, records, tmp_path)
    assert trainer.train_dataset["id"] == [r["id"] for r in records]
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == 2
    for k, batch in enumerate(batches):
        for row, ex in zip(batch["input_ids"].tolist(), trainer.train_dataset.select(range(k * BATCH,
                                                                                           (k + 1) * BATCH))):
            assert row[:len(ex["input_ids"])] == ex["input_ids"]
            assert all(t == tok.pad_token_id for t in row[len(ex["input_ids"]):])


def test_stock_trl_supervises_project_tokens_plus_template_newline(tiny_model, records, tmp_path):
    """Stock TRL (conversational prompt/completion, completion_only_loss) supervises what the project does --
    the clean question and <|im_end|> -- and one more token: the newline the ChatML template puts after
    <|im_end|>. Its sequences are the project's plus that token."""
    trainer, tok = make(tiny_model, records, tmp_path)
    project, n_truncated = encode_records(tok, records, 256, PromptSpec("chat"))
    assert n_truncated == 0
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1
    trl_ids, proj_ids = supervised_token_ids(trainer.train_dataset), supervised_token_ids(project)
    for t, p, r in zip(trl_ids, proj_ids, records):
        assert tok.decode(p) == r["target"] + END_OF_TURN
        assert t == p + newline
    for t, p in zip(trainer.train_dataset, project):
        assert t["input_ids"] == p["input_ids"] + newline
    assert supervised_token_count(trainer.train_dataset) == supervised_token_count(project) + len(records)


def test_matched_trl_supervises_exactly_the_project_tokens(tiny_model, records, tmp_path):
    trainer, tok = make(tiny_model, records, tmp_path, match_project_tokens=True)
    project, _ = encode_records(tok, records, 256, PromptSpec("chat"))
    assert trainer.train_dataset["input_ids"] == project["input_ids"]
    assert trainer.train_dataset["labels"] == project["labels"]
    assert supervised_token_count(trainer.train_dataset) == supervised_token_count(project)
    trainer.train()
    assert trainer.state.global_step == 2


def test_custom_system_prompt_and_truncation_match_the_project(tiny_model, records, tmp_path):
    prompt = PromptSpec("chat", "Fix the question.")
    trainer, tok = make(tiny_model, records, tmp_path, prompt=prompt, max_length=85,
                        match_project_tokens=True)
    project, n_truncated = encode_records(tok, records, 85, prompt)
    assert n_truncated == len(records)  # every example cut inside its answer: both cut from the right alike
    assert trainer.train_dataset["input_ids"] == project["input_ids"]
    assert trainer.train_dataset["labels"] == project["labels"]


def _first_batch_loss(trainer):
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, batch)), batch


def test_padding_free_on_sdpa_gives_the_padded_loss(tiny_model, records, tmp_path):
    """TRL documents padding_free for FlashAttention only; on SDPA transformers builds a block-diagonal mask from
    position_ids, so the flattened batch must give the same loss as the padded one."""
    padded, _ = make(tiny_model, records, tmp_path / "a")
    free, _ = make(tiny_model, records, tmp_path / "b", padding_free=True)
    assert padded.trl_settings["padding_free"] is False  # None = only where TRL supports it (flash attention)
    assert free.trl_settings["attn_implementation"] == "sdpa"
    assert free.train_dataset["input_ids"] == padded.train_dataset["input_ids"]  # truncated by us, not by TRL
    loss_padded, batch_padded = _first_batch_loss(padded)
    loss_free, batch_free = _first_batch_loss(free)
    assert batch_free["input_ids"].shape[0] == 1 and "attention_mask" not in batch_free
    assert batch_free["input_ids"].shape[1] == int(batch_padded["attention_mask"].sum())
    assert loss_free == pytest.approx(loss_padded, rel=1e-5)
    free.train()
    assert free.state.global_step == 2


def test_minimal_prompt_text_supervises_exactly_the_project_tokens(tiny_model, records, tmp_path):
    """In the minimal format TRL gets the project's prompt and completion as text: the same sequences and
    labels with no token to drop."""
    trainer, tok = make(tiny_model, records, tmp_path, prompt=PromptSpec("minimal"))
    project, _ = encode_records(tok, records, 256, PromptSpec("minimal"))
    assert trainer.train_dataset["input_ids"] == project["input_ids"]
    assert trainer.train_dataset["labels"] == project["labels"]
    assert "system" not in tok.decode(trainer.train_dataset[0]["input_ids"])
