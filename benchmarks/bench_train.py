"""Training-step throughput: the project's training path vs the common notebook recipe it replaces.

Both sides run a plain loop of forward / backward / clip / AdamW step on the same model, the same machine, the
same batch size and the same examples; they differ only in what the project changed:

  baseline  every example right-padded to a fixed --max-length; labels = input_ids (loss on the prompt and on
            the padding too); eager attention; fp32; batches in random order
  project   qrewrite.prompt.encode_records (loss on the clean answer + end-of-turn only);
            DataCollatorForSeq2Seq dynamic padding (to a multiple of 8 on CUDA, as qrewrite.train does);
            length-grouped batches (transformers' LengthGroupedSampler over one mega-batch of 50 x batch);
            SDPA attention; on CUDA bf16 + fused AdamW; optional gradient checkpointing

Examples: a seeded sample of one mega-batch (--pool, default 50 x batch size) is encoded and grouped by length
into batches as the Trainer would; --warmup + --steps of those batches are drawn (seeded). The project trains
on them as grouped; the baseline trains on the same examples, reshuffled into random batches (warm-up and timed
examples kept apart), so both sides time exactly the same examples and the same supervised tokens.

Every (side, repeat) runs in a fresh subprocess, interleaved baseline, project, baseline, project, ..., so
that a slow spell of a shared machine hits both sides and peak memory is per side. Reported: medians over
repeats of examples/s and target tokens/s (the project's supervised tokens: clean answer + end-of-turn, the
same count for both sides), peak memory (RSS on CPU, torch.cuda.max_memory_allocated on GPU), each as
project / baseline; on GPU also model FLOPs utilisation (6 x parameters x tokens / time / --peak-tflops).

    python benchmarks/bench_train.py                        # SmolLM2-135M on this machine's CPU
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

from benchmarks import common  # noqa: E402
from benchmarks.common import ROOT, default_data, fmt_ratio, markdown_table, median, ratio  # noqa: E402

import torch  # noqa: E402

SIDES = ("baseline", "project")
CPU_TARGET = 1.5  # project examples/s >= 1.5 x baseline on CPU
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
    p.add_argument("--method", choices=["full", "lora", "qlora"], default="full",
                   help="full fine-tune, or LoRA r=16 / QLoRA on all projections (both sides alike)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=6, help="timed optimizer steps per repeat")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before the timed ones")
    p.add_argument("--repeats", type=int, default=3, help="fresh-process repeats per side, interleaved")
    p.add_argument("--data", help="training split (default dataset/train.json; --smoke: dataset/sample)")
    p.add_argument("--max-length", type=int, default=256,
                   help="baseline: the fixed padded length; both sides: truncation limit")
    p.add_argument("--pool", type=int, default=0, help="examples grouped by length (default 50 x batch size, "
                                                       "one LengthGroupedSampler mega-batch)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="project side only")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="device peak dense TFLOP/s for MFU (e.g. 989 for H100 SXM bf16); GPU only")
    p.add_argument("--smoke", action="store_true", help="tiny model, sample data, 2 steps, 1 repeat; "
                                                        "checks the plumbing, makes no timing claim")
    p.add_argument("--out", help="results directory (default benchmarks/results; --smoke: a temp dir)")
    p.add_argument("--name", help="results file stem (default train_<device>[_<method>][_<arch>][_smoke])")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. machine shared)")
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
    return args


# ---- data plan (identical in every process) ----------------------------------------------------------------

def plan_batches(tokenizer, args):
    """Encoded pool + the project's and the baseline's batches (lists of pool indices), warm-up then timed."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from qrewrite.data import load_split
    from qrewrite.prompt import encode_records

    records = load_split(default_data(args, "train"))
    bs, need = args.batch_size, args.warmup + args.steps
    pool_size = max(args.pool or 50 * bs, need * bs)
    if len(records) < need * bs:
        raise SystemExit(f"{default_data(args, 'train')} has {len(records)} examples; {need} steps of batch {bs} need "
                         f"{need * bs}. Use fewer --steps / --warmup or a smaller --batch-size.")
    pool = random.Random(args.seed).sample(records, min(pool_size, len(records)))
    dataset, n_truncated = encode_records(tokenizer, pool, args.max_length)
    rows = dataset.to_list()
    sampler = LengthGroupedSampler(bs, lengths=[r["length"] for r in rows],
                                   generator=torch.Generator().manual_seed(args.seed))
    order = list(sampler)
    grouped = [order[i:i + bs] for i in range(0, len(order) - bs + 1, bs)]
    chosen = [grouped[i] for i in random.Random(args.seed + 1).sample(range(len(grouped)), need)]
    project = {"warmup": chosen[:args.warmup], "timed": chosen[args.warmup:]}
    baseline = {}
    for phase, batches in project.items():
        ids = [i for b in batches for i in b]
        random.Random(args.seed + 2).shuffle(ids)
        baseline[phase] = [ids[i:i + bs] for i in range(0, len(ids), bs)]
    # how representative the timed batches are: padded tokens per batch over every grouped batch of the pool
    padded = [bs * max(rows[i]["length"] for i in b) for b in grouped]
    stats = {"pool_grouped_padded_tokens_per_batch_mean": sum(padded) / len(padded),
             "pool_mean_length": sum(r["length"] for r in rows) / len(rows)}
    return pool, rows, n_truncated, {"project": project, "baseline": baseline, "stats": stats}


def collate(side: str, rows: list[dict], tokenizer, max_length: int, cuda: bool) -> dict:
    if side == "project":
        from transformers import DataCollatorForSeq2Seq
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100,
                                          pad_to_multiple_of=8 if cuda else None, return_tensors="pt")
        return collator([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in rows])
    # The notebook recipe: tokenizer(text, padding="max_length", truncation=True); labels = input_ids.copy().
    pad = tokenizer.pad_token_id
    ids = [r["input_ids"] + [pad] * (max_length - len(r["input_ids"])) for r in rows]
    mask = [[1] * len(r["input_ids"]) + [0] * (max_length - len(r["input_ids"])) for r in rows]
    input_ids = torch.tensor(ids)
    return {"input_ids": input_ids, "attention_mask": torch.tensor(mask), "labels": input_ids.clone()}


# ---- one side, one repeat (a subprocess) -------------------------------------------------------------------

def count_params(model) -> int:
    n = 0
    for p in model.parameters():
        n += p.numel() * (2 if p.dtype == torch.uint8 else 1)  # bitsandbytes packs two 4-bit weights a byte
    return n


def worker(args) -> dict:
    from qrewrite.models import apply_lora, load_model, load_tokenizer, pick_dtype, resolve_model_source
    from qrewrite.config import QWEN2_TARGETS

    side, project = args._worker, args._worker == "project"
    torch.manual_seed(args.seed)
    dev = common.device()
    cuda = dev.type == "cuda"
    source = resolve_model_source(args.model)
    tokenizer = load_tokenizer(source)
    pool, rows, n_truncated, plans = plan_batches(tokenizer, args)
    plan = plans[side]

    dtype = pick_dtype("auto") if project else torch.float32
    attn = "sdpa" if project else "eager"
    qlora = args.method == "qlora"
    model = load_model(source, dtype=dtype, quantize_4bit=qlora, attn_implementation=attn, tokenizer=tokenizer)
    if not qlora:
        model.to(dev)
    gc = project and args.gradient_checkpointing
    if args.method in ("lora", "qlora"):
        targets = [t for t in QWEN2_TARGETS]
        model = apply_lora(model, r=LORA["r"], alpha=LORA["alpha"], dropout=LORA["dropout"], targets=targets,
                           quantized=qlora, gradient_checkpointing=gc)
    if gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    fused = project and cuda and all(p.is_cuda and p.is_floating_point() for p in params)
    optimizer = torch.optim.AdamW(params, lr=args.lr, fused=True if fused else None)
    autocast = project and cuda and dtype == torch.bfloat16 and not qlora  # as Trainer(bf16=True)
    attn_used = getattr(getattr(model, "config", None), "_attn_implementation", attn)

    memory_method = common.reset_peak_memory()
    times, losses, shapes = {"warmup": [], "timed": []}, [], []
    processed = real = supervised = 0
    for phase in ("warmup", "timed"):
        for step, idx in enumerate(plan[phase]):
            t0 = common.now()
            batch = collate(side, [rows[i] for i in idx], tokenizer, args.max_length, cuda)
            batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            dt = common.now() - t0
            times[phase].append(dt)
            if phase == "timed":
                losses.append(loss.detach().item())
                shapes.append(list(batch["input_ids"].shape))
                processed += batch["input_ids"].numel()
                real += int(batch["attention_mask"].sum())
                supervised += sum(sum(1 for t in rows[i]["labels"] if t != -100) for i in idx)
            print(f"  {side} repeat {args._repeat + 1} {phase} step {step + 1}/{len(plan[phase])}: "
                  f"{dt:.2f} s, batch {tuple(batch['input_ids'].shape)}, loss {loss.detach().item():.3f}", flush=True)
    timed_ids = sorted(pool[i]["id"] for b in plan["timed"] for i in b)
    return {
        "side": side, "repeat": args._repeat, "device": str(dev), "dtype": str(dtype).replace("torch.", ""),
        "attn_implementation": attn_used, "autocast_bf16": autocast, "fused_adamw": fused,
        "gradient_checkpointing": gc, "method": args.method,
        "parameters": count_params(model), "trainable_parameters": sum(p.numel() for p in params),
        "step_times_s": times["timed"], "warmup_times_s": times["warmup"],
        "examples": len(timed_ids), "timed_example_ids": timed_ids, "supervised_tokens": supervised,
        "tokens_processed": processed, "real_tokens": real, "batch_shapes": shapes, "losses": losses,
        "peak_memory_mb": round(common.peak_memory_mb(), 1), "memory_method": memory_method,
        "truncated_in_pool": n_truncated, "pool_size": len(pool), **plans["stats"],
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
            "--lr", args.lr, "--seed", args.seed, "--_worker", side, "--_repeat", repeat, "--_result", result]
    if args.gradient_checkpointing:
        argv.append("--gradient-checkpointing")
    return [str(a) for a in argv]


def summarise(runs: dict, args, cuda: bool) -> dict:
    summary = {}
    for side in SIDES:
        rs = runs[side]
        eps = [r["examples"] / sum(r["step_times_s"]) for r in rs]
        tps = [r["supervised_tokens"] / sum(r["step_times_s"]) for r in rs]
        s = {"examples_per_s": eps, "target_tokens_per_s": tps,
             "examples_per_s_median": median(eps), "target_tokens_per_s_median": median(tps),
             "step_time_s_median": median([t for r in rs for t in r["step_times_s"]]),
             "peak_memory_mb_median": median([r["peak_memory_mb"] for r in rs]),
             "tokens_processed_per_step": rs[0]["tokens_processed"] / args.steps,
             "padding_fraction": 1 - rs[0]["real_tokens"] / rs[0]["tokens_processed"],
             "supervised_fraction_of_processed": rs[0]["supervised_tokens"] / rs[0]["tokens_processed"]}
        if cuda and args.peak_tflops:
            flops = [6 * r["parameters"] * r["tokens_processed"] / sum(r["step_times_s"]) for r in rs]
            useful = [6 * r["parameters"] * r["real_tokens"] / sum(r["step_times_s"]) for r in rs]
            s["mfu_median"] = median(flops) / (args.peak_tflops * 1e12)
            s["mfu_real_tokens_median"] = median(useful) / (args.peak_tflops * 1e12)
        summary[side] = s
    b, p = summary["baseline"], summary["project"]
    ratios = {
        "examples_per_s": ratio(p["examples_per_s_median"], b["examples_per_s_median"]),
        "examples_per_s_paired_median": median([ratio(x, y) for x, y in zip(p["examples_per_s"],
                                                                              b["examples_per_s"])]),
        "target_tokens_per_s": ratio(p["target_tokens_per_s_median"], b["target_tokens_per_s_median"]),
        "peak_memory": ratio(p["peak_memory_mb_median"], b["peak_memory_mb_median"]),
        "tokens_processed_per_step": ratio(p["tokens_processed_per_step"], b["tokens_processed_per_step"]),
    }
    if "mfu_median" in p:
        ratios["mfu"] = ratio(p["mfu_median"], b["mfu_median"])
    return {"sides": summary, "ratios": ratios}


def render_markdown(result: dict) -> str:
    s, r, setup = result["summary"]["sides"], result["summary"]["ratios"], result["setup"]
    b, p = s["baseline"], s["project"]
    mem = "peak GPU memory allocated (MB)" if setup["device"] == "cuda" else "peak RSS (MB)"
    rows = [
        [f"examples/s (median of {setup['repeats']})", b["examples_per_s_median"], p["examples_per_s_median"],
         fmt_ratio(r["examples_per_s"])],
        ["target tokens/s (clean answer + end-of-turn)", b["target_tokens_per_s_median"],
         p["target_tokens_per_s_median"], fmt_ratio(r["target_tokens_per_s"])],
        ["step time (s, median)", b["step_time_s_median"], p["step_time_s_median"],
         fmt_ratio(ratio(p["step_time_s_median"], b["step_time_s_median"]))],
        [mem, b["peak_memory_mb_median"], p["peak_memory_mb_median"], fmt_ratio(r["peak_memory"])],
        ["tokens processed per step (incl. padding)", b["tokens_processed_per_step"],
         p["tokens_processed_per_step"], fmt_ratio(r["tokens_processed_per_step"])],
        ["padding share of processed tokens", f"{b['padding_fraction']:.1%}", f"{p['padding_fraction']:.1%}", ""],
    ]
    if "mfu_median" in p:
        rows.append([f"MFU (6 x params x tokens incl. padding / time / {setup['peak_tflops']} TFLOP/s)",
                     f"{b['mfu_median']:.1%}", f"{p['mfu_median']:.1%}", fmt_ratio(r["mfu"])])
        rows.append(["MFU on non-padding tokens", f"{b['mfu_real_tokens_median']:.1%}",
                     f"{p['mfu_real_tokens_median']:.1%}", ""])
    table = markdown_table(["metric", "baseline", "project", "project / baseline"], rows)
    if setup["smoke"]:
        verdict = "smoke run: plumbing check only, no timing claim"
    elif setup["device"] == "cpu":
        met = r["examples_per_s"] is not None and r["examples_per_s"] >= CPU_TARGET
        verdict = (f"target: project >= {CPU_TARGET}x the baseline's examples/s on CPU -> "
                   f"{'met' if met else 'NOT met'} ({fmt_ratio(r['examples_per_s'])}; per-repeat paired "
                   f"ratios' median {fmt_ratio(r['examples_per_s_paired_median'])})")
    else:
        verdict = (f"CPU target ({CPU_TARGET}x) does not apply on GPU; measured "
                   f"{fmt_ratio(r['examples_per_s'])}")
    pb, pp = result["runs"]["baseline"][0], result["runs"]["project"][0]
    return f"""# Training step: project vs notebook baseline ({setup['model_label']}, {setup['method']}, {setup['device']})

{table}

**{verdict}.**

Both sides timed the same {pb['examples']} examples ({setup['steps']} steps x batch {setup['batch_size']}, after \
{setup['warmup']} warm-up step(s)) and the same {pb['supervised_tokens']} supervised target tokens, in \
{setup['repeats']} fresh-process repeats each, interleaved baseline, project, baseline, project, ...; medians \
are over repeats. Examples: a seeded sample of {pb['pool_size']} from `{setup['data']}`, \
{pb['truncated_in_pool']} truncated at {setup['max_length']} tokens; mean length {pb['pool_mean_length']:.1f} \
tokens; grouped into batches of the whole pool the project would process \
{pp['pool_grouped_padded_tokens_per_batch_mean']:.0f} tokens per batch on average (timed batches: \
{p['tokens_processed_per_step']:.0f}).

- baseline: every example right-padded to {setup['max_length']} tokens, labels = input_ids (loss on prompt \
and padding), `{pb['attn_implementation']}` attention, {pb['dtype']}, random batches
- project: `encode_records` completion-only labels, `DataCollatorForSeq2Seq` dynamic padding, \
`LengthGroupedSampler` batches, `{pp['attn_implementation']}` attention, {pp['dtype']}\
{', bf16 autocast' if pp['autocast_bf16'] else ''}{', fused AdamW' if pp['fused_adamw'] else ''}\
{', gradient checkpointing' if pp['gradient_checkpointing'] else ''}
- both: same model weights, {setup['method']} ({pb['trainable_parameters']:,} trainable of \
{pb['parameters']:,} parameters), AdamW lr {setup['lr']}, grad-norm clip 1.0, forward/backward/step in a plain loop
- memory: {pb['memory_method']}, over warm-up + timed steps (model, gradients, optimizer state, activations)

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


def main(argv=None) -> int:
    args = parse_args(argv)
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
            from qrewrite.models import build_tiny_qwen2
            args.model, model_label = str(build_tiny_qwen2(tmp / "tiny-qwen2")), "tiny Qwen2 (random)"
        else:
            args.model = args.model or "smollm2"
            model_label = args.model
        runs = {side: [] for side in SIDES}
        for repeat in range(args.repeats):
            for side in SIDES:
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
                    print(f"[bench_train] the {side} worker failed (exit {proc.returncode})", file=sys.stderr)
                    return proc.returncode or 1
                runs[side].append(json.loads(result_file.read_text()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    b0, p0 = runs["baseline"][0], runs["project"][0]
    same = (b0["timed_example_ids"] == p0["timed_example_ids"]
            and b0["supervised_tokens"] == p0["supervised_tokens"])
    if not same:
        print("[bench_train] the two sides did not time the same examples: benchmark bug", file=sys.stderr)
        return 1
    for side in SIDES:  # the per-side id list is the same in every repeat; keep one copy
        for r in runs[side][1:]:
            assert r["timed_example_ids"] == runs[side][0]["timed_example_ids"]
            r["timed_example_ids"] = "same as repeat 0"
    result = {
        "benchmark": "train",
        "setup": {"model": args.model if not (args.arch or args.smoke) else model_label,
                  "model_label": model_label, "arch": args.arch, "method": args.method,
                  "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
                  "repeats": args.repeats, "max_length": args.max_length, "data": str(default_data(args, "train")),
                  "seed": args.seed, "lr": args.lr, "gradient_checkpointing": args.gradient_checkpointing,
                  "peak_tflops": args.peak_tflops or None, "device": "cuda" if cuda else "cpu",
                  "smoke": args.smoke, "order": "interleaved: baseline, project per repeat, fresh process each",
                  "target": f"CPU: project examples/s >= {CPU_TARGET}x baseline"},
        "same_examples": same,
        "summary": summarise(runs, args, cuda),
        "runs": runs,
        "machine": common.machine_info(),
        "load_average_start": load_start, "load_average_end": common.load_average(),
        "note": args.note,
        "provenance": common.provenance(),
    }
    name = args.name or ("train_" + ("cuda" if cuda else "cpu") + ("" if args.method == "full" else f"_{args.method}")
                         + (f"_{args.arch}" if args.arch else "") + ("_smoke" if args.smoke else ""))
    j, m = common.write_results(out, name, result, render_markdown(result))
    r = result["summary"]["ratios"]
    print(f"[bench_train] examples/s project/baseline = {fmt_ratio(r['examples_per_s'])}, target tokens/s "
          f"{fmt_ratio(r['target_tokens_per_s'])}, peak memory {fmt_ratio(r['peak_memory'])}")
    print(f"[bench_train] wrote {j} and {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
