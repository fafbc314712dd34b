"""Training batches: logits only at supervised positions and padding-free rows change nothing the loss sees."""

import pytest
import torch

from qrewrite.data.collator import make_collator
from qrewrite.models import apply_lora, load_model, load_tokenizer
from qrewrite.prompt import PromptSpec, encode_records

PAIRS = [("um who wrote it?", "Who wrote it?"),
         ("where no when was it built, the tower on the hill?", "When was the tower on the hill built?"),
         ("How many no how much water", "How much water?"),
         ("Which team won the cup, no wait, the league?", "Which team won the league?")]


def _features(tok, prompt_format="minimal"):
    records = [{"id": str(i), "input": q, "target": a} for i, (q, a) in enumerate(PAIRS)]
    return encode_records(tok, records, 512, PromptSpec(prompt_format))[0].to_list()


def _model(tiny_model, method):
    torch.manual_seed(0)
    model = load_model(str(tiny_model), dtype=torch.float64)
    if method == "lora":
        model = apply_lora(model, r=4, alpha=8, dropout=0.0, targets=["q_proj", "v_proj", "down_proj"])
        with torch.no_grad():  # peft starts B at zero; make the adapter matter for the gradient check
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.1)
    return model.train()


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_supervised_logits_give_the_full_logits_loss_and_gradients(tiny_model, method):
    tok = load_tokenizer(str(tiny_model))
    feats = _features(tok)
    model = _model(tiny_model, method)
    full = make_collator(tok, supervised_logits=False)(feats)
    lean = make_collator(tok, supervised_logits=True)(feats)
    assert "logits_to_keep" not in full
    n_supervised = int((full["labels"][:, 1:] != -100).sum())
    assert int(lean["logits_to_keep"].sum()) == len(lean["shift_labels"]) == n_supervised
    assert n_supervised < full["input_ids"].numel() / 2  # most positions need no logits
    loss_full, grads_full = _loss_and_grads(model, full)
    out = model(**lean)
    assert out.logits.shape[:-1] == (n_supervised,)  # never batch x length x vocab
    loss_lean, grads_lean = _loss_and_grads(model, lean)
    # transformers' causal-LM loss upcasts logits to float32, so "equal" means to float32 precision
    assert torch.allclose(loss_lean, loss_full, rtol=1e-6, atol=0)
    assert grads_full.keys() == grads_lean.keys() and grads_full
    for name in grads_full:
        assert torch.allclose(grads_lean[name], grads_full[name], rtol=1e-5, atol=1e-8), name


@pytest.mark.parametrize("supervised_logits", [False, True])
def test_padding_free_batches_give_the_padded_loss(tiny_model, supervised_logits):
    tok = load_tokenizer(str(tiny_model))
    feats = _features(tok)
    model = _model(tiny_model, "full").eval()
    padded = make_collator(tok, supervised_logits=supervised_logits)(feats)
    flat = make_collator(tok, padding_free=True, supervised_logits=supervised_logits)(feats)
    assert flat["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in feats))  # no padding at all
    assert padded["attention_mask"].sum() == flat["input_ids"].numel() < padded["input_ids"].numel()
    with torch.no_grad():  # training never uses the KV cache (with one, transformers ignores the packing)
        assert torch.allclose(model(**flat, use_cache=False).loss, model(**padded).loss, rtol=1e-6, atol=0)
        # without position_ids the examples would attend to each other and the loss would change
        leaked = model(**{k: v for k, v in flat.items() if k != "position_ids"}, use_cache=False).loss
    assert not torch.allclose(leaked, model(**padded).loss, rtol=1e-6)


def test_minimal_prompt_has_no_system_turn(tiny_model):
    from qrewrite.prompt import build_prompt, completion_text
    tok = load_tokenizer(str(tiny_model))
    question = "um who wrote it?"
    minimal = build_prompt(tok, question, PromptSpec("minimal"))
    chat = build_prompt(tok, question, PromptSpec("chat"))
    assert minimal == f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    assert chat.endswith(minimal) and "system" in chat and "system" not in minimal
    assert completion_text(tok, question, "Who wrote it?", PromptSpec("minimal")) == "Who wrote it?<|im_end|>"
    short, long = _features(tok, "minimal"), _features(tok, "chat")
    for a, b in zip(short, long):
        assert [t for t in a["labels"] if t != -100] == [t for t in b["labels"] if t != -100]  # same answer
        assert a["length"] < b["length"]


def test_minimal_prompt_drops_a_template_injected_system_prompt():
    """SmolLM2's and Qwen2's templates add a default system turn when none is given; minimal has none."""
    from qrewrite.models import ensure_offline_model
    from qrewrite.prompt import build_prompt
    tok = load_tokenizer(str(ensure_offline_model()))
    plain = tok.apply_chat_template([{"role": "user", "content": "Who?"}], tokenize=False,
                                    add_generation_prompt=True)
    assert "SmolLM" in plain  # the template injects its own system prompt
    minimal = build_prompt(tok, "Who?", PromptSpec("minimal"))
    assert minimal == "<|im_start|>user\nWho?<|im_end|>\n<|im_start|>assistant\n"


def test_minimal_format_with_a_system_prompt_is_refused():
    from qrewrite.errors import ConfigError
    with pytest.raises(ConfigError, match="system_prompt"):
        PromptSpec("minimal", "Fix it.")
    with pytest.raises(ConfigError, match="prompt_format"):
        PromptSpec("short")
