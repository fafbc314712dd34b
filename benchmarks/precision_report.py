"""The precision comparison's figures (scripts/precision_cpu.sh): loss curves, held-out quality with paired
bootstrap intervals against bf16-mixed, and the share of weights the fine-tune never moved.

Reads, per variant, ``<results>/<variant>/{trainer_log.json, run.json, metrics.json, predictions.jsonl}`` (copied
there by the script) and the final weights in ``<runs>/precision-<variant>/model/`` beside the base model's;
writes ``<out>/precision_cpu.{json,md}``.

    python benchmarks/precision_report.py --runs runs/precision --results benchmarks/results/precision_cpu
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.common import markdown_table  # noqa: E402

REFERENCE = "bf16-mixed"
VARIANTS = {  # name -> what it is, in the report's order
    "bf16-mixed": "(b) bf16-mixed: fp32 master weights and AdamW state, bf16 autocast (`adamw_torch_fused`)",
    "bf16": "(a) pure bf16: bf16 weights, gradients and AdamW state (`adamw_torch_fused`), round-to-nearest",
    "bf16-sr-8bit": "(c) pure bf16 + stochastic rounding: torchao AdamW8bit (`adamw_torch_8bit`, "
                    "`bf16_stochastic_round=True`)",
    "bf16-bnb-8bit": "(d) pure bf16 + bitsandbytes 8-bit AdamW (`adamw_bnb_8bit`), round-to-nearest: the Qwen2 "
                     "config's setting before this comparison",
    "bf16-mixed-bnb-8bit": "(e) bf16-mixed with bitsandbytes 8-bit AdamW (`adamw_bnb_8bit`): fp32 master weights, "
                           "8-bit moments",
}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> dict:
    """Mean of ``a - b`` over the same questions, with the 95 % percentile interval of the resampled means."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diff.mean()), "ci95": [float(lo), float(hi)], "resamples": resamples, "seed": seed}


def unchanged_share(base_dir: Path, model_dir: Path) -> float:
    """Share of the weights whose final value equals the base model's in the run's own dtype (a bf16 run is
    compared with the base rounded to bf16): the updates that rounding, or the optimiser, never let through."""
    import torch
    from safetensors.torch import load_file

    base, final = load_file(str(base_dir / "model.safetensors")), load_file(str(model_dir / "model.safetensors"))
    same = total = 0
    for name, tensor in final.items():
        if name not in base:
            raise SystemExit(f"error: {model_dir}: weight {name} is not in the base model {base_dir}")
        same += int(torch.eq(base[name].to(tensor.dtype), tensor).sum())
        total += tensor.numel()
    return same / total


def rounded_away_share(base_dir: Path, steps=(2e-5, 1e-4)) -> dict:
    """Share of the base model's weights, held in bf16, that a step of exactly ``step`` (Adam's update at its
    first step, |m / sqrt(v)| = 1, times the learning rate) leaves unchanged under round-to-nearest: the step is
    under half the spacing of bf16 values around the weight."""
    import torch
    from safetensors.torch import load_file

    weights = [t.to(torch.bfloat16) for t in load_file(str(base_dir / "model.safetensors")).values()]
    total = sum(t.numel() for t in weights)
    return {f"{step:g}": sum(int(torch.eq((t.float() + step).to(torch.bfloat16), t).sum()) for t in weights) / total
            for step in steps}


def read_variant(results: Path, runs: Path, base: Path, variant: str) -> dict:
    d = results / variant
    files = ("trainer_log.json", "run.json", "config.yaml", "metrics.json", "predictions.jsonl")
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        raise SystemExit(f"error: {d}: {', '.join(missing)} missing (run scripts/precision_cpu.sh {variant})")
    info = json.loads((d / "run.json").read_text())
    if info.get("status") != "complete":
        raise SystemExit(f"error: {d / 'run.json'}: status {info.get('status')!r}, not complete")
    log = json.loads((d / "trainer_log.json").read_text())
    metrics = json.loads((d / "metrics.json").read_text())
    rows = [json.loads(line) for line in (d / "predictions.jsonl").read_text().splitlines() if line.strip()]
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    curve = [[e["step"], float(e["loss"])] for e in log if "loss" in e]
    return {
        "variant": variant, "description": VARIANTS[variant], "run_name": info["run_name"],
        "dtype": info.get("dtype"), "autocast": info.get("autocast"), "optim": cfg.get("optim"),
        "steps": info["steps"], "train_time_s": info["train_time_s"],
        "step_time_s": info["train_time_s"] / info["steps"], "train_loss_mean": info["train_loss"],
        "final_logged_loss": curve[-1][1], "loss_curve": curve,
        "rougeL": metrics["metrics"]["rougeL"], "exact_match": metrics["metrics"]["exact_match"],
        "n_eval": len(rows), "eval_data": metrics.get("run", {}).get("data"),
        "unchanged_weight_share": unchanged_share(base, runs / info["run_name"] / "model"),
        "_ids": [r["id"] for r in rows], "_rougeL": [r["rougeL"] for r in rows],
        "_em": [float(r["exact_match"]) for r in rows],
    }


def compare(variants: dict, resamples: int, seed: int) -> None:
    ref = variants[REFERENCE]
    for v in variants.values():
        if v["_ids"] != ref["_ids"]:
            raise SystemExit(f"error: {v['variant']}: its predictions are not of the same questions as {REFERENCE}'s")
        v["vs_reference"] = None if v is ref else {
            "rougeL": paired_bootstrap(np.array(v["_rougeL"]), np.array(ref["_rougeL"]), resamples, seed),
            "exact_match": paired_bootstrap(np.array(v["_em"]), np.array(ref["_em"]), resamples, seed)}


def fmt_delta(d: dict, scale: float = 1.0, digits: int = 3) -> str:
    lo, hi = (x * scale for x in d["ci95"])
    return f"{d['mean'] * scale:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def render_markdown(result: dict) -> str:
    vs = result["variants"]
    rows = []
    for v in vs.values():
        ref = v["vs_reference"]
        rows.append([v["variant"], f"{v['dtype']}" + ("" if v["autocast"] in (None, "no") else f" + {v['autocast']} "
                                                      "autocast"), f"`{v['optim']}`",
                     f"{v['step_time_s']:.2f}", f"{v['final_logged_loss']:.4f}", f"{v['train_loss_mean']:.4f}",
                     f"{v['rougeL']:.4f}", "reference" if ref is None else fmt_delta(ref["rougeL"]),
                     f"{v['exact_match']:.1%}", "reference" if ref is None else fmt_delta(ref["exact_match"], 100, 1),
                     f"{v['unchanged_weight_share']:.1%}"])
    table = markdown_table(["variant", "weights", "optimizer", "s / step", "loss, last 10 steps",
                            "mean train loss", "ROUGE-L", f"ΔROUGE-L vs {REFERENCE} [95 % CI]", "EM",
                            f"ΔEM (points) vs {REFERENCE} [95 % CI]", "weights never moved"], rows)
    steps = sorted({s for v in vs.values() for s, _ in v["loss_curve"]})
    curves = {name: dict(v["loss_curve"]) for name, v in vs.items()}
    curve_table = markdown_table(["step"] + list(vs), [[str(s)] + [f"{curves[n][s]:.4f}" if s in curves[n] else ""
                                                                   for n in vs] for s in steps])
    first = next(iter(vs.values()))
    described = "\n".join(f"- {v['variant']}: {v['description']}" for v in vs.values())
    described += "".join(f"\n- not run: {n} ({VARIANTS[n]}; `bash scripts/precision_cpu.sh {n}`)"
                         for n in result["not_run"])
    boot, lost = result["bootstrap"], result["rounded_away_share"]
    return f"""# Training precision at learning rate 2e-5 (SmolLM2-135M-Instruct, CPU)

{table}

Why: held in bf16, **{lost['2e-05']:.1%}** of SmolLM2-135M-Instruct's weights cannot take a single AdamW step at
learning rate 2e-5 (the step's size at its first step, |m / sqrt(v)| = 1; later steps are smaller): the step is under
half the spacing of bf16 values around the weight, and round-to-nearest returns the weight unchanged
({lost['0.0001']:.1%} at the SmolLM2 recipe's 1e-4). fp32 master weights keep every step; stochastic rounding
keeps each step on average.

{described}

Every variant: configs/precision/<variant>.yaml (configs/qwen2-0.5b-full.yaml's optimiser settings: learning rate
2e-5, cosine, 3 % warm-up, grad-norm clip 1.0, no weight decay), {first['steps']} steps x batch 16 on
`dataset/topic/train.json`, seed 0 (the same batches in the same order), scored greedily on the first
{first['n_eval']} questions of the held-out topics (`{first['eval_data']}`), each model loaded in fp32 for
rewriting. Intervals: paired bootstrap over the questions ({boot['resamples']} resamples, seed {boot['seed']}), the
variant's score minus {REFERENCE}'s on the same questions. "Loss, last 10 steps": the trainer's last logged loss
(mean of steps {first['steps'] - 9}-{first['steps']}). "Weights never moved": the share of weights whose final value
equals the base model's in the run's own dtype (bf16 runs: the base rounded to bf16). Step time: the run's training
time / steps on a shared 2-core CPU (one thread each, `nice -n 10`, beside other jobs): compare with care.

## Loss curves (trainer log, mean of each 10 steps)

{curve_table}

## Machine
{common.machine_markdown(result)}

## Provenance
{common.provenance_markdown(result)}
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="runs/precision", help="output_root the variants trained into")
    p.add_argument("--results", default="benchmarks/results/precision_cpu", help="the variants' copied logs and "
                                                                                 "evaluations")
    p.add_argument("--base", default="weights/base/smollm2-135m-instruct", help="the base model directory")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                   help="default: every variant with a results directory (the others are listed as not run)")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results", help="where precision_cpu.{json,md} go")
    args = p.parse_args(argv)
    args.variants = args.variants or [v for v in VARIANTS if (Path(args.results) / v).is_dir()]
    if REFERENCE not in args.variants:
        p.error(f"--variants must include {REFERENCE} (the reference of the intervals)")
    variants = {v: read_variant(Path(args.results), Path(args.runs), Path(args.base), v) for v in args.variants}
    compare(variants, args.resamples, args.seed)
    for v in variants.values():
        for key in ("_ids", "_rougeL", "_em"):
            del v[key]
    result = {"benchmark": "precision", "reference": REFERENCE, "variants": variants,
              "rounded_away_share": rounded_away_share(Path(args.base)),
              "not_run": [v for v in VARIANTS if v not in variants],
              "bootstrap": {"resamples": args.resamples, "seed": args.seed, "interval": "95 % percentile, paired"},
              "machine": common.machine_info(), "load_average_end": common.load_average(),
              "note": "the training runs shared 2 cores with other jobs (one thread each, nice 10)",
              "provenance": common.provenance()}
    j, m = common.write_results(args.out, "precision_cpu", result, render_markdown(result))
    print(f"[precision_report] wrote {j} and {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
