"""Training-step throughput of the project's training path, side by side with the alternatives.

Every side trains the same model on the same examples, in the same batches and order, for the same number of
steps, through a ``transformers.Trainer`` (sequential sampler, constant learning rate, no eval / saving):

  naive    the common notebook recipe: every example right-padded to --max-length, labels = input_ids (loss on
           the prompt and the padding too), eager attention, chat prompt with the system instruction, AdamW
  before   the project's path before the efficiency work: chat prompt, dynamic padding, completion-only labels,
           SDPA, logits at every position, one AdamW kernel per parameter (``prompt_format: chat,
           supervised_logits: false, optim: adamw_torch``)
  project  the project's path now: ``qrewrite.train.trainer.build_trainer`` with the minimal prompt format, logits only
           at supervised positions and fused AdamW, padded batches (``--padding-free``: padding-free instead)
  padfree  the same with padding-free batches (``padding_free: true``)
  trl      TRL's ``SFTTrainer`` with its recommended completion-only settings (benchmarks/trl_side.py): its
           default NLL loss (chunked), padding-free only where TRL supports it (flash attention), on the same
           minimal prompts as the project, given as prompt/completion text

Examples: a seeded sample of one mega-batch (--pool, default 50 x batch size) grouped by length into batches
(transformers' LengthGroupedSampler, as the Trainer groups them); --warmup + --steps of those batches are drawn
(seeded) and every side trains on exactly those, in that order. Every (side, repeat) runs in a fresh
subprocess, interleaved (side 1, side 2, ..., side 1, side 2, ...), so a slow spell of a shared machine hits
every side and peak memory is per side. Reported: medians over repeats of examples/s and supervised tokens/s,
peak memory (qrewrite.memory: RSS high-water mark on CPU, max_memory_allocated on GPU), the mean training loss
over the timed steps; ratios against --reference.

    python benchmarks/bench_train.py --sides naive project --name train_cpu            # vs the notebook recipe
    python benchmarks/bench_train.py --sides before project trl --reference trl --name train_vs_trl_cpu
    python benchmarks/bench_train.py --arch qwen2-0.5b --peak-tflops 989   # random-weight Qwen2-0.5B, GPU
    python benchmarks/bench_train.py --smoke --out /tmp/b   # tiny Qwen2, sample data, 2 steps: plumbing only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.common import ROOT, default_data, fmt_ratio, markdown_table, median, ratio  # noqa: E402

SIDES = ("naive", "before", "project", "padfree", "compiled", "trl")
CPU_TARGETS = {"naive": 1.5, "before": 2.0, "trl": 1.5}  # project examples/s >= this x the side's, on CPU
LORA = dict(r=16, alpha=32, dropout=0.05)

# Qwen2-0.5B (Qwen/Qwen2-0.5B-Instruct config.json), written out because the hub is unreachable here.
QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                 rope_theta=1000000.0, rms_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=True,
                 sliding_window=None, use_sliding_window=False, bos_token_id=151643, eos_token_id=151645)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", help="model source for qrewrite.models.resolve_model_source (default: smollm2; "
                                   "in --smoke a tiny random Qwen2)")
    p.add_argument("--arch", choices=["qwen2-0.5b"],
                   help="instead of --model, build this architecture with random weights (for GPU runs)")
    p.add_argument("--tokenizer", help="tokenizer directory for --arch (default: the offline SmolLM2 one; "
                                       "its 49k ids are all valid for Qwen2's 152k vocabulary)")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=["naive", "project"],
                   help="sides to run, in this order within each repeat (default: naive project)")
    p.add_argument("--reference", choices=SIDES, help="side the ratios divide by (default: the first side)")
    p.add_argument("--method", choices=["full", "lora", "qlora"], default="full",
                   help="full fine-tune, or LoRA r=16 / QLoRA on all projections (every side alike)")
    p.add_argument("--padding-free", action="store_true", help="project side: padding-free batches")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=6, help="timed optimizer steps per repeat")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before the timed ones")
    p.add_argument("--repeats", type=int, default=3, help="fresh-process repeats per side, interleaved")
    p.add_argument("--data", help="training split (default dataset/train.json; --smoke: dataset/sample)")
    p.add_argument("--max-length", type=int, default=256,
                   help="naive: the fixed padded length; every side: truncation limit")
    p.add_argument("--pool", type=int, default=0, help="examples grouped by length (default 50 x batch size, "
                                                       "one LengthGroupedSampler mega-batch)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="every side but naive")
    p.add_argument("--precision", choices=["auto", "bf16-mixed", "bf16", "fp32"], default="auto",
                   help="project, padfree, compiled and trl: auto (the model's dtype: fp32 on CPU) or bf16-mixed (fp32 "
                        "weights, bf16 autocast; for trl its own default, bf16=True), bf16 (pure bf16 weights), "
                        "fp32; naive and before stay as the project had them (fp32 on CPU)")
    p.add_argument("--optim", help="project, padfree and compiled: this transformers optimizer instead of the "
                                   "project's default (e.g. adamw_bnb_8bit, adamw_torch_8bit)")
    p.add_argument("--optim-args", default="", help="with --optim: its options (e.g. bf16_stochastic_round=True)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="device peak dense TFLOP/s for MFU (e.g. 989 for H100 SXM bf16); GPU only")
    p.add_argument("--smoke", action="store_true", help="tiny model, sample data, 2 steps, 1 repeat; "
                                                        "checks the plumbing, makes no timing claim")
    common.add_output_options(p, "train_<device>[_<method>][_<arch>][_smoke]")
    p.add_argument("--render", metavar="JSON", help="only rewrite the .md beside an existing results .json from its "
                                                    "measurements (after a change of the table's layout)")
    p.add_argument("--_worker", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--_repeat", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.repeats = 2, 1, 1
    for name in ("batch_size", "steps", "repeats", "max_length"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.arch and args.model:
        p.error("give --model or --arch, not both")
    if len(set(args.sides)) != len(args.sides):
        p.error("--sides: name each side once")
    args.reference = args.reference or args.sides[0]
    if args.reference not in args.sides:
        p.error(f"--reference {args.reference} is not one of --sides")
    return args


# ---- data plan (identical in every process) ----------------------------------------------------------------

def plan_records(tokenizer, args) -> tuple[list[dict], dict]:
    """The records every side trains on, in batch order (warm-up batches first), and how they were chosen."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from qrewrite.data.records import load_split
    from qrewrite.prompt import PromptSpec, encode_records

    records = load_split(default_data(args, "train"))
    bs, need = args.batch_size, args.warmup + args.steps
    pool_size = max(args.pool or 50 * bs, need * bs)
    if len(records) < need * bs:
        raise SystemExit(f"{default_data(args, 'train')} has {len(records)} examples; {need} steps of batch {bs} need "
                         f"{need * bs}. Use fewer --steps / --warmup or a smaller --batch-size.")
    pool = random.Random(args.seed).sample(records, min(pool_size, len(records)))
    lengths = encode_records(tokenizer, pool, args.max_length, PromptSpec("minimal"))[0]["length"]
    order = list(LengthGroupedSampler(bs, lengths=lengths, generator=torch.Generator().manual_seed(args.seed)))
    grouped = [order[i:i + bs] for i in range(0, len(order) - bs + 1, bs)]
    chosen = [grouped[i] for i in random.Random(args.seed + 1).sample(range(len(grouped)), need)]
    plan = [pool[i] for batch in chosen for i in batch]
    return plan, {"pool_size": len(pool), "pool_mean_length_minimal": sum(lengths) / len(lengths)}


def naive_collator(tokenizer, max_length: int):
    """The notebook recipe: tokenizer(text, padding="max_length", truncation=True); labels = input_ids.copy()."""
    def collate(features):
        pad = tokenizer.pad_token_id
        ids = [f["input_ids"] + [pad] * (max_length - len(f["input_ids"])) for f in features]
        mask = [[1] * len(f["input_ids"]) + [0] * (max_length - len(f["input_ids"])) for f in features]
        input_ids = torch.tensor(ids)
        return {"input_ids": input_ids, "attention_mask": torch.tensor(mask), "labels": input_ids.clone()}
    return collate


# ---- one side, one repeat (a subprocess) -------------------------------------------------------------------

def count_params(model) -> int:
    n = 0
    for p in model.parameters():
        n += p.numel() * (2 if p.dtype == torch.uint8 else 1)  # bitsandbytes packs two 4-bit weights a byte
    return n


def side_config(side: str, args, source: str):
    """The TrainConfig a side trains with: the project's fields, with the sides' differences."""
    from qrewrite.config import load_config

    overrides = dict(model=source, method=args.method, batch_size=args.batch_size, learning_rate=args.lr,
                     max_steps=args.warmup + args.steps, lr_scheduler="constant", warmup_ratio=0.0,
                     max_length=args.max_length, eval_steps=0, save_steps=0, logging_steps=1, report_to="none",
                     seed=args.seed, group_by_length=False, lora_r=LORA["r"], lora_alpha=LORA["alpha"],
                     lora_dropout=LORA["dropout"], gradient_checkpointing=args.gradient_checkpointing,
                     precision=args.precision)
    if side == "naive":
        overrides.update(prompt_format="chat", supervised_logits=False, attn_implementation="eager",
                         precision="fp32", gradient_checkpointing=False, optim="adamw_torch")
    elif side == "before":  # the project's path before the efficiency issue
        overrides.update(prompt_format="chat", supervised_logits=False, optim="adamw_torch", precision="auto")
    else:
        if args.optim:
            overrides.update(optim=args.optim, optim_args=args.optim_args)
        overrides.update(prompt_format="minimal", supervised_logits=True,
                         padding_free=side == "padfree" or (args.padding_free and side == "project"),
                         torch_compile=side == "compiled")
    return load_config(None, overrides)


class StepTimer:
    """Trainer callback: wall time of every optimizer step (data loading included), end to end."""

    def __init__(self):
        from transformers import TrainerCallback
        self.callback = type("Timer", (TrainerCallback,), {
            "on_train_begin": lambda _, *a, **k: self._mark(),
            "on_step_end": lambda _, *a, **k: self._step()})()
        self.times: list[float] = []

    def _mark(self):
        self.last = common.now()

    def _step(self):
        now = common.now()
        self.times.append(now - self.last)
        self.last = now


def build_side_trainer(side: str, args, cfg, model, tokenizer, records: list[dict], output_dir: Path):
    from transformers import Trainer

    from qrewrite.models import pick_dtype
    from qrewrite.prompt import PromptSpec, encode_records
    from qrewrite.train.trainer import build_trainer, training_arguments

    if side == "trl":
        from benchmarks.trl_side import build_trl_trainer
        return build_trl_trainer(model, tokenizer, records, batch_size=args.batch_size, max_steps=cfg.max_steps,
                                 learning_rate=args.lr, seed=args.seed, output_dir=str(output_dir),
                                 max_length=args.max_length, prompt=PromptSpec("minimal"),
                                 gradient_checkpointing=args.gradient_checkpointing,
                                 **({"bf16": True} if args.precision == "bf16-mixed" else {}))
    dataset = encode_records(tokenizer, records, args.max_length, PromptSpec.of_config(cfg))[0]
    if side == "naive":
        return Trainer(model=model, args=training_arguments(cfg, output_dir, pick_dtype(cfg.precision)),
                       train_dataset=dataset, data_collator=naive_collator(tokenizer, args.max_length))
    return build_trainer(cfg, model, tokenizer, dataset, None, output_dir)


def batch_counts(trainer, batch_size: int, skip_batches: int, naive: bool = False) -> dict:
    """Tokens of the timed batches, counted by running the side's own collator over them again."""
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    processed = real = supervised = 0
    shapes = []
    for start in range(skip_batches * batch_size, len(rows), batch_size):
        batch = trainer.data_collator(rows[start:start + batch_size])
        ids = batch["input_ids"]
        processed += ids.numel()
        real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel()
        if naive:  # its labels are every token; count the project's definition: answer + end-of-turn
            supervised += sum(sum(1 for t in r["labels"] if t != -100) for r in rows[start:start + batch_size])
        else:
            supervised += int((batch["labels"][:, 1:] != -100).sum())
        shapes.append(list(ids.shape))
    return {"tokens_processed": processed, "real_tokens": real, "supervised_tokens": supervised,
            "batch_shapes": shapes}


def worker(args) -> dict:
    from qrewrite.memory import peak_memory_mb, reset_peak_memory
    from qrewrite.models import load_tokenizer, resolve_model_source
    from qrewrite.train.trainer import load_for_training

    side = args._worker
    torch.manual_seed(args.seed)
    source = resolve_model_source(args.model)
    cfg = side_config(side, args, source)
    records, plan_stats = plan_records(load_tokenizer(source), args)
    model, tokenizer = load_for_training(cfg, source)
    tmp = Path(tempfile.mkdtemp(prefix=f"qrewrite-bench-{side}-"))
    try:
        trainer = build_side_trainer(side, args, cfg, model, tokenizer, records, tmp)
        trainer.args.train_sampling_strategy = "sequential"  # every side: the planned batches, in order
        timer = StepTimer()
        trainer.add_callback(timer.callback)
        memory_method = reset_peak_memory()
        trainer.train()
        peak = peak_memory_mb()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    n_timed = args.steps * args.batch_size
    counts = batch_counts(trainer, args.batch_size, args.warmup, naive=side == "naive")
    params = [p for p in model.parameters() if p.requires_grad]
    return {
        "side": side, "repeat": args._repeat, "device": str(trainer.args.device),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "autocast": trainer.args.mixed_precision,
        "attn_implementation": getattr(getattr(model, "config", None), "_attn_implementation", None),
        "prompt_format": "minimal" if side == "trl" else cfg.prompt_format,
        "supervised_logits": bool(cfg.supervised_logits) if side != "trl" else False,
        "padding_free": bool(cfg.padding_free) if side != "trl" else bool(trainer.args.padding_free),
        "trl_settings": getattr(trainer, "trl_settings", None),
        "gradient_checkpointing": cfg.gradient_checkpointing, "method": args.method,
        "parameters": count_params(model), "trainable_parameters": sum(p.numel() for p in params),
        "step_times_s": timer.times[args.warmup:], "warmup_times_s": timer.times[:args.warmup],
        "examples": n_timed, "timed_example_ids": sorted(r["id"] for r in records[args.warmup * args.batch_size:]),
        "losses": losses[args.warmup:], "mean_loss": sum(losses[args.warmup:]) / max(1, len(losses[args.warmup:])),
        **counts,
        "peak_memory_mb": round(peak, 1), "memory_method": memory_method, **plan_stats,
        "peak_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1) if torch.cuda.is_available() else None,
        "optim": trainer.args.optim.value if hasattr(trainer.args.optim, "value") else str(trainer.args.optim),
    }


# ---- orchestration ------------------------------------------------------------------------------------------

def build_arch(args, tmp: Path) -> Path:
    """Random-weight Qwen2-0.5B saved (bf16) with a tokenizer, so both sides load it like any checkpoint."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from qrewrite.models import load_tokenizer, offline_model_dir, resolve_model_source

    tok_dir = args.tokenizer or (offline_model_dir() if (offline_model_dir() / "tokenizer.json").exists()
                                 else resolve_model_source("smollm2"))
    tokenizer = load_tokenizer(str(tok_dir))
    config = Qwen2Config(**QWEN2_05B, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(args.seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = tmp / args.arch
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    return out


def worker_argv(args, side: str, repeat: int, result: Path) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--model", args.model, "--method", args.method,
            "--batch-size", args.batch_size, "--steps", args.steps, "--warmup", args.warmup,
            "--data", str(default_data(args, "train")), "--max-length", args.max_length, "--pool", args.pool,
            "--lr", args.lr, "--seed", args.seed, "--precision", args.precision,
            "--_worker", side, "--_repeat", repeat, "--_result", result]
    if args.optim:
        argv += ["--optim", args.optim, "--optim-args", args.optim_args]
    for flag in ("gradient_checkpointing", "padding_free"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    return [str(a) for a in argv]


def summarise(runs: dict, args, cuda: bool) -> dict:
    summary = {}
    for side, rs in runs.items():
        eps = [r["examples"] / sum(r["step_times_s"]) for r in rs]
        tps = [r["supervised_tokens"] / sum(r["step_times_s"]) for r in rs]
        s = {"examples_per_s": eps, "target_tokens_per_s": tps,
             "examples_per_s_median": median(eps), "target_tokens_per_s_median": median(tps),
             "step_time_s_median": median([t for r in rs for t in r["step_times_s"]]),
             "peak_memory_mb_median": median([r["peak_memory_mb"] for r in rs]),
             "mean_loss": median([r["mean_loss"] for r in rs]),
             "tokens_processed_per_step": rs[0]["tokens_processed"] / args.steps,
             "padding_fraction": 1 - rs[0]["real_tokens"] / rs[0]["tokens_processed"],
             "supervised_fraction_of_processed": rs[0]["supervised_tokens"] / rs[0]["tokens_processed"]}
        if cuda and args.peak_tflops:
            flops = [6 * r["parameters"] * r["tokens_processed"] / sum(r["step_times_s"]) for r in rs]
            useful = [6 * r["parameters"] * r["real_tokens"] / sum(r["step_times_s"]) for r in rs]
            s["mfu_median"] = median(flops) / (args.peak_tflops * 1e12)
            s["mfu_real_tokens_median"] = median(useful) / (args.peak_tflops * 1e12)
        summary[side] = s
    ref = summary[args.reference]
    ratios = {}
    for side, s in summary.items():
        if side == args.reference:
            continue
        ratios[side] = {
            "examples_per_s": ratio(s["examples_per_s_median"], ref["examples_per_s_median"]),
            "examples_per_s_paired_median": median([ratio(x, y) for x, y in zip(s["examples_per_s"],
                                                                                  ref["examples_per_s"])]),
            "target_tokens_per_s": ratio(s["target_tokens_per_s_median"], ref["target_tokens_per_s_median"]),
            "peak_memory": ratio(s["peak_memory_mb_median"], ref["peak_memory_mb_median"]),
            "tokens_processed_per_step": ratio(s["tokens_processed_per_step"], ref["tokens_processed_per_step"]),
        }
        if "mfu_median" in s:
            ratios[side]["mfu"] = ratio(s["mfu_median"], ref["mfu_median"])
    return {"sides": summary, "reference": args.reference, "ratios_vs_reference": ratios,
            # the headline: project against the reference (what docs/speed.md quotes)
            "ratios": ratios.get("project", next(iter(ratios.values()), {}))}


SIDE_TEXT = {
    "naive": "every example right-padded to {max_length} tokens, labels = input_ids (loss on prompt and padding), "
             "eager attention, fp32, chat prompt with the system instruction, AdamW (`adamw_torch`)",
    "before": "the project's path before this change: chat prompt with the system instruction, completion-only "
              "labels, dynamic padding, SDPA, logits at every position, AdamW (`adamw_torch`)",
    "project": "`qrewrite.train.trainer.build_trainer`: minimal prompt (no system turn), completion-only labels, "
               "logits and loss only at supervised positions (`logits_to_keep` mask + `shift_labels`), {padding}, "
               "SDPA, fused AdamW (`adamw_torch_fused`)",
    "padfree": "the project's path with padding-free batches (`padding_free: true`: one row per batch, "
               "position_ids restart per example)",
    "compiled": "the project's path with `torch_compile: true` (`torch.compile`, inductor); compilation happens "
                "in the warm-up steps, whose times are reported apart",
    "trl": "TRL `SFTTrainer` (benchmarks/trl_side.py): the same minimal prompts as prompt/completion text, "
           "`completion_only_loss`, its default `nll` loss (computed in chunks, every position on CPU), padding-free "
           "off (TRL supports it with flash attention only), fused AdamW (its default), otherwise the project's "
           "optimiser settings",
}


def precision_text(run: dict) -> str:
    """A side's precision as the table shows it, e.g. ``float32`` or ``float32, bf16 autocast``.

    Results written before ``autocast`` was recorded ran without it."""
    autocast = run.get("autocast", "no")
    return run["dtype"] + ("" if autocast == "no" else f", {autocast} autocast")


def _table(result: dict) -> str:
    """Each side's medians side by side, with their ratios to the reference side."""
    setup, summary = result["setup"], result["summary"]
    sides, ref = summary["sides"], summary["reference"]
    mem = "peak GPU memory allocated (MB)" if setup["device"] == "cuda" else "peak RSS (MB)"
    header = ["metric"] + list(sides) + [f"{s} / {ref}" for s in sides if s != ref]
    ratios = summary["ratios_vs_reference"]

    def row(label, key, fmt=lambda v: v, ratio_key=None):
        cells = [fmt(sides[s][key]) for s in sides]
        return [label] + cells + [fmt_ratio(ratios[s].get(ratio_key)) if ratio_key else "" for s in ratios]
    rows = [row(f"examples/s (median of {setup['repeats']})", "examples_per_s_median", ratio_key="examples_per_s"),
            row("supervised tokens/s (clean answer + end-of-turn)", "target_tokens_per_s_median",
                ratio_key="target_tokens_per_s"),
            row("step time (s, median)", "step_time_s_median"),
            row(mem, "peak_memory_mb_median", ratio_key="peak_memory"),
            row("mean training loss over the timed steps", "mean_loss"),
            row("tokens processed per step (incl. padding)", "tokens_processed_per_step",
                ratio_key="tokens_processed_per_step"),
            row("padding share of processed tokens", "padding_fraction", lambda v: f"{v:.1%}")]
    rows.append(["precision (weights, autocast)"] + [precision_text(result["runs"][s][0]) for s in sides]
                + [""] * len(ratios))
    if all("mfu_median" in s for s in sides.values()):
        rows.append(row(f"MFU (6 x params x tokens / time / {setup['peak_tflops']} TFLOP/s)", "mfu_median",
                        lambda v: f"{v:.1%}", "mfu"))
    return markdown_table(header, rows)


def _verdicts(setup: dict, sides: dict) -> list[str]:
    """The speed targets' verdicts (none for a smoke run; no target on a GPU)."""
    if setup["smoke"]:
        return ["- smoke run: plumbing check only, no timing claim"]
    verdicts = []
    for side, target in CPU_TARGETS.items():
        if side in sides and "project" in sides and side != "project":
            got = ratio(sides["project"]["examples_per_s_median"], sides[side]["examples_per_s_median"])
            status = "met" if got is not None and got >= target else "NOT met"
            verdicts.append(f"- project >= {target:g}x {side}'s examples/s on CPU: **{status}** ({fmt_ratio(got)})"
                            if setup["device"] == "cpu" else f"- project / {side}: {fmt_ratio(got)} (CPU target "
                            f"{target:g}x does not apply on GPU)")
    return verdicts


def render_markdown(result: dict) -> str:
    setup, summary = result["setup"], result["summary"]
    sides, ref = summary["sides"], summary["reference"]
    table, verdicts = _table(result), _verdicts(setup, sides)
    first = result["runs"][ref][0]
    padding = "padding-free batches" if setup["padding_free"] else "dynamic padding of length-grouped batches"
    described = "\n".join(f"- {s}: " + SIDE_TEXT[s].format(max_length=setup["max_length"], padding=padding)
                          for s in sides)
    return f"""# Training step: {', '.join(sides)} ({setup['model_label']}, {setup['method']}, {setup['device']})

{table}

{chr(10).join(verdicts)}

Every side timed the same {first['examples']} examples ({setup['steps']} steps x batch {setup['batch_size']}, after \
{setup['warmup']} warm-up step(s)) and the same {first['supervised_tokens']} supervised tokens, in the same \
batches and order, through a `transformers.Trainer` (sequential sampler, constant learning rate {setup['lr']}, \
AdamW, grad-norm clip 1.0), in {setup['repeats']} fresh-process repeats each, interleaved; medians are over \
repeats. Examples: a seeded sample of {first['pool_size']} from `{setup['data']}`, grouped by length.

{described}
- memory: {first['memory_method']}, over warm-up + timed steps (model, gradients, optimizer state, activations)

## Machine
{common.machine_markdown(result)}

## Provenance
{common.provenance_markdown(result)}
"""


def _die_with_parent() -> None:
    """Linux: a worker is killed when its orchestrator dies (even by SIGKILL, e.g. a test timeout)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the orchestrator was already gone before prctl
        raise SystemExit(1)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def run_workers(args, tmp: Path) -> dict:
    runs = {side: [] for side in args.sides}
    for repeat in range(args.repeats):
        for side in args.sides:
            result_file = tmp / f"{side}-{repeat}.json"
            print(f"[bench_train] repeat {repeat + 1}/{args.repeats}: {side}", flush=True)
            proc = subprocess.Popen(worker_argv(args, side, repeat, result_file),
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
            try:
                proc.wait()
            finally:
                if proc.poll() is None:  # we were interrupted: do not leave the worker running
                    proc.terminate()
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            if proc.returncode != 0:
                raise SystemExit(f"[bench_train] the {side} worker failed (exit {proc.returncode})")
            runs[side].append(json.loads(result_file.read_text()))
    return runs


def headline(result: dict) -> dict:
    """Top-level keys of a comparison with TRL: project / TRL (medians) and both sides' mean training loss."""
    sides = result["summary"]["sides"]
    if not {"project", "trl"} <= set(sides):
        return {}
    p, t = sides["project"], sides["trl"]
    return {"ratio_examples_per_s": ratio(p["examples_per_s_median"], t["examples_per_s_median"]),
            "ratio_peak_memory": ratio(p["peak_memory_mb_median"], t["peak_memory_mb_median"]),
            "loss_project": p["mean_loss"], "loss_trl": t["mean_loss"]}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        path = Path(args.render)
        if not path.is_file():
            print(f"error: --render {path}: no such results file", file=sys.stderr)
            return 2
        path.with_suffix(".md").write_text(render_markdown(json.loads(path.read_text())))
        print(f"[bench_train] wrote {path.with_suffix('.md')}")
        return 0
    if args._worker:
        _die_with_parent()
        result = worker(args)
        Path(args._result).write_text(json.dumps(result))
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `kill` runs the cleanup below (worker, temp dir)

    cuda = torch.cuda.is_available()
    out = common.out_dir(args.out, args.smoke)
    tmp = Path(tempfile.mkdtemp(prefix="qrewrite-bench-train-"))
    load_start = common.load_average()
    try:
        if args.arch:
            model_label = f"{args.arch} (random weights)"
            args.model = str(build_arch(args, tmp))
        elif args.model is None and args.smoke:
            from qrewrite.testing import build_tiny_qwen2
            args.model, model_label = str(build_tiny_qwen2(tmp / "tiny-qwen2")), "tiny Qwen2 (random)"
        else:
            args.model = args.model or "smollm2"
            model_label = args.model
        runs = run_workers(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    first = {side: rs[0] for side, rs in runs.items()}
    same = (len({tuple(r["timed_example_ids"]) for r in first.values()}) == 1
            and len({r["supervised_tokens"] for r in first.values()}) == 1)
    if not same:
        print("[bench_train] the sides did not time the same examples and supervised tokens: "
              + ", ".join(f"{s}: {r['supervised_tokens']}" for s, r in first.items()), file=sys.stderr)
        return 1
    for side, rs in runs.items():  # the id list is the same in every repeat; keep one copy
        for r in rs[1:]:
            assert r["timed_example_ids"] == rs[0]["timed_example_ids"]
            r["timed_example_ids"] = "same as repeat 0"
    result = {
        "benchmark": "train",
        "setup": {"model": args.model if not (args.arch or args.smoke) else model_label,
                  "model_label": model_label, "arch": args.arch, "method": args.method, "sides": args.sides,
                  "reference": args.reference, "padding_free": args.padding_free,
                  "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
                  "repeats": args.repeats, "max_length": args.max_length,
                  "data": common.repo_relative(default_data(args, "train")),
                  "seed": args.seed, "lr": args.lr, "gradient_checkpointing": args.gradient_checkpointing,
                  "precision": args.precision, "peak_tflops": args.peak_tflops or None,
                  "device": "cuda" if cuda else "cpu",
                  "smoke": args.smoke, "order": "interleaved per repeat, fresh process each",
                  "targets": {f"project / {s}": t for s, t in CPU_TARGETS.items() if s in args.sides}},
        "same_examples": same,
        "summary": summarise(runs, args, cuda),
        "runs": runs,
        "machine": common.machine_info(),
        "load_average_start": load_start, "load_average_end": common.load_average(),
        "note": args.note,
        "provenance": common.provenance(),
    }
    result = {**headline(result), **result}
    name = args.name or ("train_" + ("cuda" if cuda else "cpu") + ("" if args.method == "full" else f"_{args.method}")
                         + (f"_{args.arch}" if args.arch else "") + ("_smoke" if args.smoke else ""))
    j, m = common.write_results(out, name, result, render_markdown(result))
    for side, r in result["summary"]["ratios_vs_reference"].items():
        print(f"[bench_train] {side} / {args.reference}: examples/s {fmt_ratio(r['examples_per_s'])}, "
              f"peak memory {fmt_ratio(r['peak_memory'])}")
    print(f"[bench_train] wrote {j} and {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
