"""The TRL side of the training benchmark: ``trl.SFTTrainer`` with its recommended completion-only settings.

Issue #12 asks to benchmark TRL's ``SFTTrainer`` against the project's training path on the same model, the
same examples and the same number of steps. This module builds that trainer; the side-by-side benchmark wires
it in. Everything below was read off the installed trl 1.16.0 / transformers 5.23.0 (file:line references are to
``site-packages/trl`` and ``site-packages/transformers``):

Data: conversational prompt/completion, ``{"prompt": [system, user], "completion": [assistant]}``.
  * ``completion_only_loss=True`` (its default ``None`` already means True for prompt/completion data,
    trainer/sft_trainer.py:961-964). SFTTrainer tokenises ``prompt`` with ``add_generation_prompt=True`` and
    ``prompt + completion`` through the chat template, and masks the common prefix (sft_trainer.py:1322-1369,
    data_utils.py:406 ``common_prefix_length``); labels are built once in dataset preparation
    (sft_trainer.py:1411-1434) and the collator only pads them with -100 (sft_trainer.py:168-227).
  * ``messages`` + ``assistant_only_loss`` is the other route; it needs ``{% generation %}`` markers, which
    SmolLM2's template lacks (TRL would swap in a training template, sft_trainer.py:939-944). Prompt/completion
    uses the model's own template unchanged, so it is the one chosen here.
  * EOS: for conversational data TRL appends no EOS (sft_trainer.py:1286-1308 only touches non-conversational
    data); the end of turn comes from the chat template. SmolLM2's ChatML template renders the assistant turn
    as ``answer<|im_end|>\\n``, so TRL supervises the answer, ``<|im_end|>`` AND the template's trailing ``\\n``.
    The project (qrewrite.prompt.completion_text) stops at ``<|im_end|>``: TRL supervises one more token per
    example. ``match_project_tokens=True`` drops that trailing token from TRL's prepared dataset so both sides
    train on identical input_ids and labels (off by default: stock TRL behaviour).
Loss: ``loss_type="nll"`` (the default, sft_config.py:283-290). SFTTrainer patches the model with a fused LM
  head (sft_trainer.py:1144-1147, trainer/utils.py:1548) that never builds the (batch, seq, vocab) logits: it
  projects hidden states in tiles of 4096 tokens x 32768 vocabulary entries (kernels/chunked_logprob.py:31,
  utils.py:1506). On CUDA/XPU with Triton it scores only the supervised positions; elsewhere (CPU) it scores
  every position, masked afterwards (utils.py:1640-1660, kernels/chunked_logprob.py:48). No ``logits_to_keep``.
  The loss is the sum over supervised tokens / their number in the batch (sft_trainer.py:1610-1618), the same
  per-token mean as the project's.
padding_free: flattens the batch into one row with ``position_ids`` (and cu_seq_lens for varlen kernels) and no
  attention mask (sft_trainer.py:177-218). TRL documents it as FlashAttention-2/3 only (sft_config.py:83-88) but
  does not check the attention implementation; with SDPA/eager, transformers detects the packed sequences from
  ``position_ids`` when there is no attention mask and builds a block-diagonal causal mask
  (transformers/masking_utils.py:873-881), so it is correct on CPU too (tests/test_trl_side.py checks the loss
  equals the padded one) -- but SDPA then attends over one (sum of lengths)^2 masked matrix. ``padding_free=None``
  enables it only for flash_attention_* models (where TRL supports it); pass True to force it. TRL refuses
  ``padding_free`` with ``max_length`` set and no packing (sft_trainer.py:999-1004: "provide already truncated
  inputs"), so in that case we give TRL ``max_length=None`` and truncate the prepared dataset ourselves exactly as
  TRL does (sft_trainer.py:1439-1463: keep_start, then drop examples left without supervised tokens).
Order: ``train_sampling_strategy="sequential"`` (transformers/training_args.py:638-647, trainer.py:1142: a
  ``SequentialSampler``) and ``shuffle_dataset=False`` (TRL's default, sft_config.py:218-221), so batch k is
  records[k*B:(k+1)*B]: pass the records in the project side's batch order and both sides see the same batches.
Defaults changed from TRL's, to run the same computation as the project side:
  * ``bf16``: TRL defaults to True whenever fp16 is off, CPU included (trainer/base_config.py:68-75, 107-108),
    i.e. bf16 autocast on CPU. Here bf16 follows the model's dtype, as qrewrite.train.trainer does
    (``bf16=dtype == torch.bfloat16``): fp32 on CPU, unless the caller passes ``bf16=True`` (bench_train.py
    ``--precision bf16-mixed`` does: TRL's own default, next to the project's ``precision: bf16-mixed``).
  * ``gradient_checkpointing``: TRL defaults to True (base_config.py:62-67); the project trains without it
    unless asked, so it is a parameter, default False.
  * ``lr_scheduler_type="constant"``, no warm-up, no weight decay, ``max_grad_norm=1.0``, fused AdamW
    (``adamw_torch_fused``):
    the project benchmark's plain loop (constant-lr AdamW, clip 1.0). Override through ``**config_overrides``.
  * no eval, no saving, ``report_to="none"``, logging every step, ``use_cpu`` when there is no CUDA.

Checked on SmolLM2-135M-Instruct (offline GGUF conversion), dataset/sample/train.json (300 records), fp32 CPU:
  * supervised tokens: stock TRL 3,253 vs the project's 2,953 -- the project's tokens (clean question +
    ``<|im_end|>``) are a prefix of TRL's in every example, and TRL adds exactly one ``"\\n"`` per example. With
    ``match_project_tokens=True`` all 300 input_ids and labels are identical.
  * same first 4 batches of 16, lr 1e-5: TRL (matched) step losses equal the project Trainer path's to ~1e-5
    relative (0.679993 / 0.844572 / 0.690288 / 0.541197 vs 0.679985 / 0.844562 / 0.690280 / 0.541189): the same
    optimisation. Stock TRL logs lower losses (0.6218 / 0.7617 / ...) because the near-free newline token is
    averaged in: compare mean losses only with ``match_project_tokens=True``.
  * padding_free=True on SDPA: the same losses as padded to ~1e-6.
"""

from __future__ import annotations

import os
from pathlib import Path

# SFTTrainer pings the hub's telemetry endpoint when it is built (trainer/base_trainer.py `_send_telemetry`);
# huggingface_hub honours HF_HUB_DISABLE_TELEMETRY (read when it is imported, hence also set below).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

IGNORE_INDEX = -100


def _disable_telemetry() -> None:
    try:
        from huggingface_hub import constants
        constants.HF_HUB_DISABLE_TELEMETRY = True
    except (ImportError, AttributeError):
        pass


def trl_dataset(records: list[dict], tokenizer=None, prompt=None):
    """``datasets.Dataset`` in one of TRL's prompt/completion formats (plus the record ``id``).

    chat format: conversational messages (system instruction + noisy question as the prompt, the clean question
    as the assistant's completion) that TRL renders with the tokenizer's chat template, as a user would give them.
    minimal format: the project's own prompt and completion text (qrewrite.prompt), given to TRL as plain
    strings, since a conversational prompt without a system turn makes SmolLM2's and Qwen2's templates inject
    their default one."""
    from datasets import Dataset

    from qrewrite.prompt import SYSTEM_PROMPT, PromptSpec, build_prompt, completion_text

    spec = prompt or PromptSpec()
    rows = []
    for r in records:
        row = {"id": str(r.get("id", len(rows)))}
        if spec.format == "chat":
            row["prompt"] = [{"role": "system", "content": spec.system_prompt or SYSTEM_PROMPT},
                             {"role": "user", "content": r["input"]}]
            row["completion"] = [{"role": "assistant", "content": r["target"]}]
        else:
            row["prompt"] = build_prompt(tokenizer, r["input"], spec)
            row["completion"] = completion_text(tokenizer, r["input"], r["target"], spec)
        rows.append(row)
    return Dataset.from_list(rows)


def _truncate(dataset, max_length: int):
    """TRL's own truncation (keep_start) and fully-masked-example filter, for the padding-free case."""
    dataset = dataset.map(lambda ex: {"input_ids": ex["input_ids"][:max_length], "labels": ex["labels"][:max_length]})
    return dataset.filter(lambda ex: any(t != IGNORE_INDEX for t in ex["labels"]))


def _drop_after_end_of_turn(dataset, end_id: int):
    """Cut each example after its last supervised end-of-turn token (the template's trailing newline goes)."""

    def cut(ex):
        ids, labels = ex["input_ids"], ex["labels"]
        ends = [i for i, (t, lab) in enumerate(zip(ids, labels)) if t == end_id and lab != IGNORE_INDEX]
        if not ends or any(lab == IGNORE_INDEX for lab in labels[ends[-1] + 1:]):
            return {"input_ids": ids, "labels": labels}
        return {"input_ids": ids[:ends[-1] + 1], "labels": labels[:ends[-1] + 1]}

    return dataset.map(cut)


def _uses_flash_attention(model) -> bool:
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None) or ""
    return "flash" in str(impl)


def build_trl_trainer(model, tokenizer, records: list[dict], *, batch_size: int, max_steps: int,
                      learning_rate: float, seed: int, output_dir: str | Path, prompt=None,
                      padding_free: bool | None = None, max_length: int | None = 256,
                      gradient_checkpointing: bool = False, match_project_tokens: bool = False,
                      callbacks=(), **config_overrides):
    """A ready ``trl.SFTTrainer`` training ``model`` on ``records`` ({"id", "input", "target"}) in their order,
    prompted as ``prompt`` (a qrewrite.prompt.PromptSpec; default: the chat format).

    Batch k holds records[k * batch_size:(k + 1) * batch_size] (sequential sampler); after the last record it
    starts again from the first. See the module docstring for every setting and why.

    padding_free: None = TRL's supported case only (a flash_attention_* model); True forces it (correct with
    SDPA/eager through transformers' packed-sequence mask). match_project_tokens: drop the chat template's
    trailing newline after ``<|im_end|>`` so TRL supervises exactly the project's tokens."""
    import torch
    from trl import SFTConfig, SFTTrainer

    from qrewrite.prompt import END_OF_TURN

    _disable_telemetry()
    if padding_free is None:
        padding_free = _uses_flash_attention(model)
    try:
        param_dtype = next(model.parameters()).dtype
    except StopIteration:
        param_dtype = torch.float32
    cuda = torch.cuda.is_available()
    settings = dict(
        output_dir=str(output_dir),
        seed=seed, data_seed=seed,
        max_steps=max_steps, per_device_train_batch_size=batch_size, gradient_accumulation_steps=1,
        learning_rate=learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch_fused",  # TRL's and transformers' default, and the project's
        # the project's precision rule (qrewrite.train.trainer.training_arguments), not TRL's bf16-by-default
        bf16=param_dtype == torch.bfloat16, fp16=param_dtype == torch.float16,
        # transformers 5.23 name; gradient_checkpointing is its deprecated alias (training_args.py:1533-1545)
        activation_checkpointing=gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        # TRL's recommended completion-only setup for conversational prompt/completion data
        completion_only_loss=True, assistant_only_loss=False, loss_type="nll",
        padding_free=padding_free, packing=False,
        # TRL refuses max_length with padding_free and no packing; we truncate ourselves below instead
        max_length=None if padding_free else max_length,
        # same examples in the same batches as the caller's order
        train_sampling_strategy="sequential", shuffle_dataset=False, dataloader_num_workers=0,
        eval_strategy="no", save_strategy="no", report_to="none",
        logging_strategy="steps", logging_steps=1, logging_first_step=True, disable_tqdm=True,
        use_cpu=not cuda,
    )
    settings.update(config_overrides)
    args = SFTConfig(**settings)
    trainer = SFTTrainer(model=model, args=args, train_dataset=trl_dataset(records, tokenizer, prompt),
                         processing_class=tokenizer, callbacks=list(callbacks) or None)
    dataset = trainer.train_dataset
    if padding_free and max_length is not None:
        dataset = _truncate(dataset, max_length)
    if match_project_tokens:
        end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if end_id is None or end_id == tokenizer.unk_token_id:
            raise ValueError(f"match_project_tokens: the tokenizer has no {END_OF_TURN} token")
        dataset = _drop_after_end_of_turn(dataset, end_id)
    trainer.train_dataset = dataset
    trainer.trl_settings = {  # what the benchmark should record next to its numbers
        "padding_free": padding_free, "max_length": max_length, "match_project_tokens": match_project_tokens,
        "gradient_checkpointing": gradient_checkpointing, "bf16": settings["bf16"],
        "completion_only_loss": True, "loss_type": settings["loss_type"],
        "train_sampling_strategy": settings["train_sampling_strategy"],
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
    }
    return trainer


# ---- what the benchmark checks ----------------------------------------------------------------------------

def supervised_token_ids(dataset) -> list[list[int]]:
    """Per example, the token ids that carry loss (labels != -100), from a prepared TRL dataset or the
    project's ``encode_records`` dataset (both have ``labels``)."""
    return [[t for t in ex["labels"] if t != IGNORE_INDEX] for ex in dataset]


def supervised_token_count(dataset) -> int:
    """How many tokens carry loss in a prepared dataset (``trainer.train_dataset``, or encode_records' output).

    With padding_free TRL's collator also masks each sequence's first token (sft_trainer.py:208); that token is
    always a prompt token here, so the count is the same."""
    return sum(len(ids) for ids in supervised_token_ids(dataset))


def mean_training_loss(log_history_or_trainer) -> float:
    """Mean of the per-step ``loss`` entries of ``trainer.state.log_history`` (logging_steps=1: one per step)."""
    history = getattr(getattr(log_history_or_trainer, "state", None), "log_history", log_history_or_trainer)
    losses = [entry["loss"] for entry in history if "loss" in entry]
    if not losses:
        raise ValueError("no 'loss' entries in the log history (was the trainer trained with logging_steps=1?)")
    return sum(losses) / len(losses)


def step_losses(log_history_or_trainer) -> list[float]:
    history = getattr(getattr(log_history_or_trainer, "state", None), "log_history", log_history_or_trainer)
    return [entry["loss"] for entry in history if "loss" in entry]


def versions() -> dict:
    import importlib.metadata as md
    return {name: md.version(name) for name in ("trl", "transformers", "torch", "datasets", "accelerate")}
