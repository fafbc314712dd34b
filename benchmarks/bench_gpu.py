"""One command that measures a GPU for Qwen2-0.5B fine-tuning (scripts/gpu_bench.sh).

Qwen2-0.5B with random weights from its public config (no download) is trained at batch 16 by
benchmarks/bench_train.py (the project's training path, one fresh process per measurement) as
configs/qwen2-0.5b-{full,lora,qlora}.yaml set it up (precision, optimizer, gradient checkpointing):

  full        the full fine-tune with the config's gradient checkpointing
  full-no-gc  the same with gradient checkpointing off
  lora        LoRA r=16 on every projection
  qlora       QLoRA: 4-bit NF4 base + LoRA r=16

each reporting peak allocated and reserved GPU memory, examples/s, tokens/s and MFU against the card's dense bf16
peak (PEAK_BF16_TFLOPS, by device name; --peak-tflops otherwise); then one timed epoch of the full fine-tune over
the Disfl-QA training split. Written to benchmarks/results/train_gpu.{json,md} with the device name.

Data: the prepared training split (dataset/train.json, else dataset/topic/train.json) with the offline SmolLM2
tokenizer (its ids are all valid for Qwen2's vocabulary); where either is missing (a bare GPU box), synthetic
examples with Disfl-QA's token lengths (benchmarks/disflqa_train_lengths.json) and a word-level tokenizer, so
every batch has the shape a real one has. --dry-run: a tiny random Qwen2 on the sample data, a few steps, on
any device: checks the plumbing in seconds, makes no claim.

    python benchmarks/bench_gpu.py                  # on a GPU box, < 8 min on an H100
    python benchmarks/bench_gpu.py --dry-run --out /tmp/b
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks import bench_train, common  # noqa: E402
from benchmarks.common import ROOT, markdown_table  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets; the first pattern that
# matches torch.cuda.get_device_name() wins (the PCIe / NVL parts before the plain name).
PEAK_BF16_TFLOPS = [
    (r"H100.*PCIe", 756.0), (r"H100.*NVL", 835.0), (r"GH200", 989.0), (r"H200", 989.0), (r"H100", 989.0),
    (r"H800", 989.0), (r"A100", 312.0), (r"A800", 312.0), (r"L40S", 362.0), (r"L40\b", 181.0), (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0), (r"A6000", 155.0), (r"B200", 2250.0),
]
LENGTHS = ROOT / "benchmarks" / "disflqa_train_lengths.json"
CONFIGS = {"full": "configs/qwen2-0.5b-full.yaml", "lora": "configs/qwen2-0.5b-lora.yaml",
           "qlora": "configs/qwen2-0.5b-qlora.yaml"}


def peak_tflops(name: str) -> float | None:
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, name):
            return tflops
    return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--dry-run", action="store_true", help="tiny random Qwen2, sample data, 2 steps: plumbing only")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, kernels, autotuning)")
    p.add_argument("--repeats", type=int, default=1, help="fresh-process repeats per measurement")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--only", nargs="+", choices=["full", "full-no-gc", "lora", "qlora", "epoch"],
                   help="only these measurements (default: all)")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="the card's dense bf16 peak (default: looked up "
                                                                  "by device name)")
    p.add_argument("--data", help="training split (default: dataset/train.json, dataset/topic/train.json, else "
                                  "synthetic)")
    common.add_output_options(p, "train_gpu (--dry-run: train_gpu_dry_run)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.steps, args.warmup, args.repeats, args.batch_size = 2, 1, 1, 4
    return args


def word_level_tokenizer(out_dir: Path, n_words: int = 2000) -> Path:
    """One token per synthetic word ``w<i>``, ChatML specials and the project's chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from qrewrite.prompt import CHATML_TEMPLATE, END_OF_TURN

    specials = ["<|endoftext|>", "<|im_start|>", END_OF_TURN, "[UNK]"]
    vocab = {t: i for i, t in enumerate(specials + ["user", "assistant", "system"]
                                        + [f"w{i}" for i in range(n_words)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END_OF_TURN, pad_token="<|endoftext|>",
                                   unk_token="[UNK]", chat_template=CHATML_TEMPLATE)
    fast.add_special_tokens({"additional_special_tokens": specials[:3]})
    fast.save_pretrained(out_dir)
    return out_dir


def synthetic_split(out: Path, seed: int = 0) -> Path:
    """Disfl-QA's training pairs as synthetic words: each input and target has its real token count."""
    pairs = json.loads(LENGTHS.read_text())["pairs"]
    rng = random.Random(seed)
    words = lambda n: " ".join(f"w{rng.randrange(2000)}" for _ in range(n))  # noqa: E731
    records = [{"id": f"synthetic-{i}", "input": words(a), "target": words(b)} for i, (a, b) in enumerate(pairs)]
    out.write_text(json.dumps(records))
    return out


def pick_data(args, tmp: Path) -> tuple[Path, Path | None, str]:
    """(training split, tokenizer directory or None for bench_train's default, how the data was chosen)."""
    if args.dry_run:
        return ROOT / "dataset" / "sample" / "train.json", None, "the sample split (dry run)"
    from qrewrite.models import offline_model_dir
    tokenizer = offline_model_dir()
    real = [Path(args.data)] if args.data else [ROOT / "dataset" / d / "train.json" for d in (".", "topic")]
    data = next((d for d in real if d.is_file()), None)
    if data is not None and (tokenizer / "tokenizer.json").is_file():
        return data, tokenizer, f"{common.repo_relative(data)}, SmolLM2 tokenizer"
    return (synthetic_split(tmp / "synthetic_train.json"), word_level_tokenizer(tmp / "word-tokenizer"),
            f"synthetic: Disfl-QA train's token lengths ({common.repo_relative(LENGTHS)}), word-level tokenizer")


def build_model(args, tokenizer: Path | None, tmp: Path) -> tuple[Path, str]:
    """The model every measurement loads: random Qwen2-0.5B (bf16, the public config), or in a dry run a tiny
    random Qwen2."""
    if args.dry_run:
        from qrewrite.testing import build_tiny_qwen2
        return build_tiny_qwen2(tmp / "tiny-qwen2"), "tiny Qwen2 (random, dry run)"
    spec = argparse.Namespace(arch="qwen2-0.5b", tokenizer=str(tokenizer) if tokenizer else None, seed=0)
    return bench_train.build_arch(spec, tmp), "Qwen2-0.5B (random weights, public config)"


def measurement_argv(name: str, args, model: Path, data: Path, out: Path, peak: float | None) -> list[str]:
    """bench_train.py's arguments for one measurement, its settings from the Qwen2 config of its method."""
    from qrewrite.config import load_config

    method = "full" if name.startswith("full") else name
    cfg = load_config(ROOT / CONFIGS[method])
    argv = ["--model", model, "--sides", "project", "--method", method, "--batch-size", args.batch_size,
            "--steps", args.steps, "--warmup", args.warmup, "--repeats", args.repeats, "--data", data,
            "--max-length", cfg.max_length, "--precision", cfg.precision, "--optim", cfg.optim,
            "--optim-args", cfg.optim_args, "--out", out, "--name", name]
    if cfg.gradient_checkpointing and name != "full-no-gc":
        argv.append("--gradient-checkpointing")
    if peak:
        argv += ["--peak-tflops", peak]
    return [str(a) for a in argv]


def summarise(name: str, result: dict, peak: float | None) -> dict:
    """One measurement's medians over repeats: throughput, memory and MFU (6 x parameters x real tokens)."""
    runs = result["runs"]["project"]
    per = []
    for r in runs:
        t = sum(r["step_times_s"])
        per.append({"examples_per_s": r["examples"] / t, "tokens_per_s": r["real_tokens"] / t,
                    "supervised_tokens_per_s": r["supervised_tokens"] / t,
                    "mfu": 6 * r["parameters"] * r["real_tokens"] / t / (peak * 1e12) if peak else None})
    first = runs[0]
    return {"measurement": name, "method": result["setup"]["method"], "dtype": first["dtype"],
            "autocast": first["autocast"], "optim": first.get("optim"),
            "gradient_checkpointing": first["gradient_checkpointing"], "parameters": first["parameters"],
            "trainable_parameters": first["trainable_parameters"],
            **{k: common.median([p[k] for p in per]) for k in per[0]},
            "step_time_s": common.median([t for r in runs for t in r["step_times_s"]]),
            "peak_allocated_mb": common.median([r["peak_memory_mb"] for r in runs]),
            "peak_reserved_mb": common.median([r.get("peak_reserved_mb") for r in runs]),
            "memory_method": first["memory_method"], "mean_loss": result["summary"]["sides"]["project"]["mean_loss"],
            "tokens_per_example": first["real_tokens"] / first["examples"]}


def measure(name: str, args, model: Path, data: Path, tmp: Path, peak: float | None) -> dict:
    print(f"[bench_gpu] {name}", flush=True)
    try:
        code = bench_train.main(measurement_argv(name, args, model, data, tmp, peak))
    except SystemExit as e:  # a worker failed (e.g. bitsandbytes without CUDA kernels): say so, go on
        code = e.code if isinstance(e.code, int) else str(e.code)
    if code != 0:
        return {"measurement": name, "error": f"bench_train.py failed ({code}); see the log above"}
    return summarise(name, json.loads((tmp / f"{name}.json").read_text()), peak)


def time_epoch(args, model: Path, data: Path, tmp: Path) -> dict:
    """One epoch of the full fine-tune over ``data`` as configs/qwen2-0.5b-full.yaml trains (length-grouped
    batches, its precision, optimizer and checkpointing), timed from the first step to the last."""
    from qrewrite.config import load_config
    from qrewrite.data.records import load_split
    from qrewrite.memory import peak_memory_mb, reset_peak_memory
    from qrewrite.models import load_tokenizer
    from qrewrite.prompt import PromptSpec, encode_records
    from qrewrite.train.trainer import build_trainer, load_for_training

    print("[bench_gpu] epoch", flush=True)
    cfg = load_config(ROOT / CONFIGS["full"], dict(
        model=str(model), train_file=str(data), valid_file=str(data), max_steps=-1, num_epochs=1, eval_steps=0,
        save_steps=0, report_to="none", logging_steps=50, batch_size=args.batch_size))
    records = load_split(data)[:32 if args.dry_run else None]
    dataset = encode_records(load_tokenizer(str(model)), records, cfg.max_length, PromptSpec.of_config(cfg))[0]
    model_, tokenizer = load_for_training(cfg, str(model))
    trainer = build_trainer(cfg, model_, tokenizer, dataset, None, tmp / "epoch")
    method = reset_peak_memory()
    start = common.now()
    out = trainer.train()
    seconds = common.now() - start
    return {"measurement": "epoch", "examples": len(records), "steps": trainer.state.global_step,
            "seconds": seconds, "examples_per_s": len(records) / seconds,
            "tokens_per_s": sum(dataset["length"]) / seconds, "train_loss": out.training_loss,
            "peak_allocated_mb": round(peak_memory_mb(), 1), "memory_method": method,
            "precision": cfg.precision, "optim": cfg.optim, "optim_args": cfg.optim_args,
            "gradient_checkpointing": cfg.gradient_checkpointing}


TARGETS = "full fine-tune <= 8 GB peak allocated, LoRA <= 4 GB, MFU >= 35 %, a Disfl-QA epoch < 15 s (on an H100)"


def verdicts(result: dict) -> list[str]:
    m = {r["measurement"]: r for r in result["measurements"] if "error" not in r}
    if result["setup"]["dry_run"] or result["machine"]["device"] != "cuda":
        return ["- dry run / no GPU: plumbing only, no claim"]
    checks = [("full: peak allocated <= 8 GB", m.get("full", {}).get("peak_allocated_mb"), lambda v: v <= 8192),
              ("LoRA: peak allocated <= 4 GB", m.get("lora", {}).get("peak_allocated_mb"), lambda v: v <= 4096),
              ("full: MFU >= 35 %", m.get("full", {}).get("mfu"), lambda v: v >= 0.35),
              ("Disfl-QA epoch < 15 s", m.get("epoch", {}).get("seconds"), lambda v: v < 15)]
    return [f"- {label}: **{'n/a' if v is None else 'met' if ok(v) else 'NOT met'}**" for label, v, ok in checks]


def gb(mb) -> str:
    return "n/a" if mb is None else f"{mb / 1024:.2f}"


def render_markdown(result: dict) -> str:
    setup, rows = result["setup"], []
    for r in result["measurements"]:
        if r["measurement"] == "epoch":
            continue
        if "error" in r:
            rows.append([r["measurement"], r["error"]] + [""] * 8)
            continue
        precision = r["dtype"] + ("" if r["autocast"] in (None, "no") else f" + {r['autocast']} autocast")
        rows.append([r["measurement"], precision, f"`{r['optim']}`", "yes" if r["gradient_checkpointing"] else "no",
                     gb(r["peak_allocated_mb"]), gb(r["peak_reserved_mb"]), f"{r['examples_per_s']:.1f}",
                     f"{r['tokens_per_s']:,.0f}", "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}",
                     f"{r['step_time_s'] * 1000:.0f}"])
    memory = "peak allocated (GB)" if result["machine"]["device"] == "cuda" else "peak RSS (GB)"
    table = markdown_table(["measurement", "weights", "optimizer", "grad. ckpt", memory, "peak reserved (GB)",
                            "examples/s", "tokens/s", "MFU", "step (ms)"], rows)
    epoch = next((r for r in result["measurements"] if r["measurement"] == "epoch"), None)
    epoch_line = "" if epoch is None else (
        f"One epoch of the full fine-tune ({epoch['examples']:,} examples, {epoch['steps']} steps of "
        f"{setup['batch_size']}, {epoch['precision']}, `{epoch['optim']}`, gradient checkpointing "
        f"{'on' if epoch['gradient_checkpointing'] else 'off'}): **{epoch['seconds']:.1f} s** "
        f"({epoch['examples_per_s']:.0f} examples/s, peak allocated {gb(epoch['peak_allocated_mb'])} GB)."
        if "error" not in epoch else f"Epoch: {epoch['error']}")
    peak = setup["peak_tflops"]
    return f"""# Qwen2-0.5B training on {result['device_name']}

{table}

{epoch_line}

Targets ({TARGETS}):
{chr(10).join(verdicts(result))}

{setup['model_label']}, batch {setup['batch_size']}, {setup['steps']} timed steps after {setup['warmup']} warm-up, \
{setup['repeats']} fresh process(es) per measurement (benchmarks/bench_train.py, the project's training path), each \
set up as configs/qwen2-0.5b-{{full,lora,qlora}}.yaml; data: {setup['data']} (mean \
{setup['tokens_per_example']:.0f} tokens an example). Tokens/s counts the real (unpadded) tokens; MFU = 6 x \
parameters x real tokens / step time / {peak or 'n/a'} TFLOP/s (the card's dense bf16 peak), the usual convention: \
it counts the weight gradients LoRA does not compute, so LoRA's is an upper bound of the useful work. Peak memory: \
torch.cuda.max_memory_allocated / max_memory_reserved over warm-up and timed steps (weights, gradients, optimizer \
state, activations).

## Machine
{common.machine_markdown(result)}

## Provenance
{common.provenance_markdown(result)}
"""


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({common.machine_info()['cpu']})"


def main(argv=None) -> int:
    args = parse_args(argv)
    name = device_name()
    peak = args.peak_tflops or peak_tflops(name)
    out = common.out_dir(args.out, args.dry_run)
    wanted = args.only or ["full", "full-no-gc", "lora", "qlora", "epoch"]
    start = common.now()
    with tempfile.TemporaryDirectory(prefix="qrewrite-bench-gpu-") as tmp_name:
        tmp = Path(tmp_name)
        data, tokenizer, data_label = pick_data(args, tmp)
        model, label = build_model(args, tokenizer, tmp)
        results = [measure(m, args, model, data, tmp, peak) for m in wanted if m != "epoch"]
        if "epoch" in wanted:
            results.append(time_epoch(args, model, data, tmp))
    sized = [r for r in results if "tokens_per_example" in r]
    result = {"benchmark": "train_gpu", "device_name": name,
              "setup": {"model_label": label, "dry_run": args.dry_run, "batch_size": args.batch_size,
                        "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "data": data_label,
                        "tokens_per_example": sized[0]["tokens_per_example"] if sized else 0.0,
                        "peak_tflops": peak, "configs": CONFIGS},
              "measurements": results, "wall_s": common.now() - start, "machine": common.machine_info(),
              "note": args.note, "provenance": common.provenance()}
    stem = args.name or ("train_gpu_dry_run" if args.dry_run else "train_gpu")
    j, m = common.write_results(out, stem, result, render_markdown(result))
    print(f"[bench_gpu] wrote {j} and {m} ({result['wall_s']:.0f} s)")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
