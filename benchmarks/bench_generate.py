"""Rewriting throughput: one question at a time (baseline) vs the project's batched greedy path.

  baseline  for each question: the same chat prompt, model.generate on that one sequence (no padding, KV cache,
            greedy, stop at end-of-turn), decode; the usual notebook loop
  project   qrewrite.infer.generate.rewrite: questions sorted by length within windows of 8 batches, batches of
            --batch-size, the prompt's question-independent start (system turn) run once and its KV cache
            shared by every batch, KV cache, greedy, a row stops at end-of-turn
  ablation  the same batches on whole prompts (share_prefix=False: plain left-padded batched generation), to
            show what batching and the shared prefix each contribute (--no-ablation skips it)

Both sides use the same loaded model, prompts, stop tokens and --max-new-tokens. The project rewrites --n
validation questions; the baseline, being slow, rewrites the first --baseline-n of them (a prefix subset).
Work is split into chunks that are interleaved baseline, project, ablation, baseline, ... (project chunks are
whole windows of qrewrite.infer.generate.rewrite, so its batches are exactly those of one call over all --n), so a
slow spell of a shared machine hits every side; questions/s is reported per chunk (median) and overall.
For the questions both sides rewrote, the predictions are compared (greedy: they should agree, up to the odd
numerical difference that padding causes; reported, not asserted).

    python benchmarks/bench_generate.py                           # offline SmolLM2-135M, CPU
    python benchmarks/bench_generate.py --model weights/smollm2-full
    python benchmarks/bench_generate.py --smoke --out /tmp/b      # tiny Qwen2: plumbing only
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.common import default_data, fmt_ratio, markdown_table, median, ratio  # noqa: E402
from qrewrite.infer.decoding import GENERATION_BATCH_SIZE  # noqa: E402

CPU_TARGET = 5.0  # project questions/s >= 5 x baseline on CPU


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", help="model, checkpoint or run directory (e.g. weights/smollm2-full); "
                                   "default smollm2 (in --smoke a tiny random Qwen2)")
    p.add_argument("--data", help="validation split (default dataset/valid.json; --smoke: dataset/sample)")
    p.add_argument("--n", type=int, default=1000, help="questions the project side rewrites")
    p.add_argument("--baseline-n", type=int, default=200,
                   help="questions the baseline rewrites: the first N of the project's (a prefix subset)")
    p.add_argument("--batch-size", type=int, default=GENERATION_BATCH_SIZE)
    p.add_argument("--no-ablation", action="store_true", help="skip the batched-whole-prompts side")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--chunks", type=int, default=0,
                   help="interleaved chunks per side (default: one per rewrite window of 8 batches)")
    p.add_argument("--max-minutes", type=float, default=0,
                   help="stop starting new chunk pairs after this long (0 = no limit); results then cover "
                        "the chunks done, and say so")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--smoke", action="store_true", help="tiny model, sample data, a few questions; "
                                                        "checks the plumbing, makes no timing claim")
    common.add_output_options(p, "generate_<device>[_smoke]")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.baseline_n, args.batch_size, args.max_new_tokens = 40, 8, 4, 8
    for name in ("n", "baseline_n", "batch_size", "max_new_tokens"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.chunks < 0:
        p.error("--chunks must be >= 0")
    return args


@torch.inference_mode()
def one_at_a_time(model, tokenizer, questions: list[str], max_new_tokens: int, prompt=None) -> list[str]:
    """The baseline: a plain loop, one unpadded prompt per generate call."""
    from qrewrite.prompt import build_prompt, end_of_turn_ids

    model.eval()
    eos = end_of_turn_ids(tokenizer)
    out = []
    for q in questions:
        enc = tokenizer(build_prompt(tokenizer, q, prompt), return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        out.append(tokenizer.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return out


def batched(model, tokenizer, questions: list[str], batch_size: int, max_new_tokens: int,
            share_prefix: bool = True, prompt=None) -> list[str]:
    """The project: qrewrite.infer.generate.rewrite (what `evaluate` and `rewrite` run), in input order."""
    from qrewrite.infer.generate import rewrite

    return [text for _, text in rewrite(model, tokenizer, questions, batch_size=batch_size,
                                        max_new_tokens=max_new_tokens, share_prefix=share_prefix, prompt=prompt)]


def chunk_bounds(args, n: int, baseline_n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    from qrewrite.infer.generate import SORT_WINDOW_BATCHES
    window = args.batch_size * SORT_WINDOW_BATCHES  # qrewrite.infer.generate.rewrite sorts by length within these
    windows = math.ceil(n / window)
    k = min(args.chunks or windows, windows)
    per = math.ceil(windows / k) * window
    project = [(s, min(s + per, n)) for s in range(0, n, per)]
    k = len(project)
    base = [(baseline_n * i // k, baseline_n * (i + 1) // k) for i in range(k)]
    return project, [b for b in base if b[1] > b[0]] or [(0, baseline_n)]


def _table(result: dict) -> str:
    """The sides' figures side by side, with their ratios to the baseline."""
    s, r, setup = result["summary"], result["summary"]["ratios"], result["setup"]
    b, p, a = s["baseline"], s["project"], s.get("ablation")
    mem = "peak GPU memory allocated (MB)" if setup["device"] == "cuda" else "peak RSS (MB)"

    def row(label, key, ratio_key=None):
        cells = [label, b[key], p[key]] + ([a[key]] if a else [])
        return cells + [fmt_ratio(r[ratio_key]) if ratio_key else ""] + (
            [fmt_ratio(r["ablation_" + ratio_key]) if ratio_key else ""] if a else [])

    rows = [
        ["questions rewritten", str(b["questions"]) if b["questions"] == p["questions"] else
         f"{b['questions']} (first {b['questions']} of the project's)", str(p["questions"])]
        + ([str(a["questions"])] if a else []) + [""] + ([""] if a else []),
        row(f"questions/s (median over chunks: {b['chunks']} / {p['chunks']})", "questions_per_s_median",
            "questions_per_s"),
        row("questions/s overall (questions / total time)", "questions_per_s_overall", "questions_per_s_overall"),
        row("seconds per question (overall)", "seconds_per_question"),
        row(mem, "peak_memory_mb", "peak_memory"),
        row("mean prediction length (tokens, re-tokenised)", "mean_prediction_tokens"),
    ]
    header = ["metric", "baseline (one at a time)", "project (batched, shared prefix)"]
    header += ["ablation (batched, whole prompts)"] if a else []
    header += ["project / baseline"] + (["ablation / baseline"] if a else [])
    return markdown_table(header, rows)


def _verdict(setup: dict, r: dict) -> str:
    """The speed target's verdict (none for a smoke run or on a GPU)."""
    if setup["smoke"]:
        return "smoke run: plumbing check only, no timing claim"
    if setup["device"] == "cpu":
        met = r["questions_per_s"] is not None and r["questions_per_s"] >= CPU_TARGET
        return (f"target: project >= {CPU_TARGET:g}x the baseline's questions/s on CPU -> "
                f"{'met' if met else 'NOT met'} ({fmt_ratio(r['questions_per_s'])} on chunk medians; "
                f"{fmt_ratio(r['questions_per_s_overall'])} overall; paired-chunk median "
                f"{fmt_ratio(r['questions_per_s_paired_median'])})")
    return f"CPU target ({CPU_TARGET:g}x) does not apply on GPU; measured {fmt_ratio(r['questions_per_s'])}"


def render_markdown(result: dict) -> str:
    s, setup = result["summary"], result["setup"]
    b, p, a = s["baseline"], s["project"], s.get("ablation")
    table, verdict, ag = _table(result), _verdict(setup, s["ratios"]), result["agreement"]
    stopped = (f"\n- stopped early by --max-minutes {setup['max_minutes']:g}: {p['questions']} of "
               f"{setup['n_requested']} (project) and {b['questions']} of {setup['baseline_n_requested']} (baseline) "
               "questions done" if setup.get("stopped_early") else "")
    agree = "\n".join(f"- {side}: {x['same']} of {x['compared']} ({x['rate']:.1%}) identical to the baseline's"
                       for side, x in ag.items())
    done = (f"every side rewrote the same first {p['questions']} questions" if b["questions"] == p["questions"] else
            f"the project rewrote the first {p['questions']} questions, the baseline the first {b['questions']} "
            "(a prefix subset, to keep the run short)")
    ablation = ("\n- ablation: the project's batches on whole prompts (`share_prefix=False`, plain left-padded "
                "batched generation): what batching alone gives" if a else "")
    return f"""# Rewriting: batched greedy (project) vs one question at a time ({setup['model']}, {setup['device']})

{table}

**{verdict}.**

Same predictions on the questions the baseline also rewrote (greedy decoding, same prompts; padding changes the
shapes of the matrix products, which can flip a near-tie):
{agree}

- data: `{setup['data']}`; {done}; all at most {setup['max_new_tokens']} new tokens, stop at end-of-turn, \
KV cache, {setup['dtype']}
- project: `qrewrite.infer.generate.rewrite`, batch {setup['batch_size']}, length-sorted windows of \
{setup['batch_size'] * 8}; the prompt's first {setup.get('shared_prefix_tokens')} tokens (all before the \
question) run once, their KV cache copied into every batch; rows laid out prefix | padding | question{ablation}
- baseline: a loop of `model.generate` on one unpadded prompt at a time
- order: {setup['order']}; warm-up calls of every side excluded{stopped}
- memory: {result['memory_method']} while that side's chunks ran

## Machine
{common.machine_markdown(result)}

## Provenance
{common.provenance_markdown(result)}
"""


def load(args, tmp: Path):
    """(model label, records, model, tokenizer, source, prompt): the model as ``--model`` names it (--smoke: a
    tiny random one built in ``tmp``) and the first ``--n`` validation records."""
    from qrewrite.data.records import load_split
    from qrewrite.models import load_for_inference
    from qrewrite.run import inference_settings

    if args.model is None and args.smoke:
        from qrewrite.testing import build_tiny_qwen2
        model_arg, label = str(build_tiny_qwen2(tmp / "tiny-qwen2")), "tiny Qwen2 (random)"
    else:
        model_arg = label = args.model or "smollm2"
    records = load_split(default_data(args, "valid"))[:args.n]
    model, tokenizer, source = load_for_inference(model_arg, precision=args.precision)
    prompt = inference_settings(model_arg)["prompt"]  # the prompt the model was trained with
    return label, records, model, tokenizer, source, prompt


def run_chunks(args, sides, model, tokenizer, questions, prompt, project_chunks, baseline_chunks) -> dict:
    """Each side's chunks, interleaved, timed: ``{"preds", "chunks", "peak", "memory_method", "stopped_early"}``
    (the predictions, each chunk's time, the peak memory per side)."""
    n, baseline_n = project_chunks[-1][1], baseline_chunks[-1][1]
    preds = {side: [""] * (baseline_n if side == "baseline" else n) for side in sides}
    chunks = {side: [] for side in sides}
    peak = {side: 0.0 for side in sides}
    memory_method = None
    start, stopped_early = common.now(), False
    for c in range(max(len(project_chunks), len(baseline_chunks))):
        if args.max_minutes and c > 0 and common.now() - start > args.max_minutes * 60:
            stopped_early = True
            print(f"[bench_generate] --max-minutes {args.max_minutes:g} reached after {c} chunk round(s)")
            break
        for side in sides:
            bounds = baseline_chunks if side == "baseline" else project_chunks
            if c >= len(bounds):
                continue
            lo, hi = bounds[c]
            memory_method = common.reset_peak_memory()
            t0 = common.now()
            if side == "baseline":
                got = one_at_a_time(model, tokenizer, questions[lo:hi], args.max_new_tokens, prompt)
            else:
                got = batched(model, tokenizer, questions[lo:hi], args.batch_size, args.max_new_tokens,
                              share_prefix=side == "project", prompt=prompt)
            dt = common.now() - t0
            preds[side][lo:hi] = got
            peak[side] = max(peak[side], common.peak_memory_mb())
            chunks[side].append({"questions": [lo, hi], "seconds": dt, "questions_per_s": (hi - lo) / dt})
            print(f"[bench_generate] chunk {c + 1}: {side} questions {lo}-{hi}: {dt:.1f} s, "
                  f"{(hi - lo) / dt:.2f} q/s", flush=True)
    return {"preds": preds, "chunks": chunks, "peak": peak, "memory_method": memory_method,
            "stopped_early": stopped_early}


def summarise(sides, chunks: dict, preds: dict, peak: dict, tokenizer) -> dict:
    """Per side: questions/s (chunk median and overall), peak memory, prediction length; and the ratios."""
    summary = {}
    for side in sides:
        total = sum(ch["seconds"] for ch in chunks[side])
        count = len(preds[side])
        lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in preds[side]]
        summary[side] = {"questions": count, "chunks": len(chunks[side]), "seconds_total": total,
                         "questions_per_s_median": median([ch["questions_per_s"] for ch in chunks[side]]),
                         "questions_per_s_overall": count / total, "seconds_per_question": total / count,
                         "peak_memory_mb": round(peak[side], 1),
                         "mean_prediction_tokens": sum(lengths) / max(len(lengths), 1),
                         "chunk_times": chunks[side]}
    summary["ratios"] = {}
    for side, key in (("project", ""), ("ablation", "ablation_")):
        if side not in summary:
            continue
        x, b = summary[side], summary["baseline"]
        summary["ratios"].update({
            key + "questions_per_s": ratio(x["questions_per_s_median"], b["questions_per_s_median"]),
            key + "questions_per_s_overall": ratio(x["questions_per_s_overall"], b["questions_per_s_overall"]),
            key + "questions_per_s_paired_median": median([ratio(u["questions_per_s"], v["questions_per_s"])
                                                           for u, v in zip(x["chunk_times"], b["chunk_times"])]),
            key + "peak_memory": ratio(x["peak_memory_mb"], b["peak_memory_mb"]),
        })
    return summary


def agreement_with_baseline(sides, records, preds: dict, overlap: int) -> dict:
    """Per side after the baseline: how many of the first ``overlap`` predictions equal the baseline's."""
    agreement = {}
    for side in sides[1:]:
        differ = [{"id": records[i]["id"], "input": records[i]["input"], "baseline": preds["baseline"][i],
                   side: preds[side][i]} for i in range(overlap) if preds["baseline"][i] != preds[side][i]]
        agreement[side] = {"compared": overlap, "same": overlap - len(differ),
                           "rate": (overlap - len(differ)) / max(overlap, 1), "differences": differ[:10]}
    return agreement


def main(argv=None) -> int:
    args = parse_args(argv)
    from qrewrite.infer.generate import shared_prefix

    out = common.out_dir(args.out, args.smoke)
    tmp = Path(tempfile.mkdtemp(prefix="qrewrite-bench-generate-"))
    load_start = common.load_average()
    try:
        label, records, model, tokenizer, source, prompt = load(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the model is in memory now
    n_req = n = len(records)
    baseline_req = baseline_n = min(args.baseline_n, n)
    questions = [r["input"] for r in records]
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    project_chunks, baseline_chunks = chunk_bounds(args, n, baseline_n)
    sides = ["baseline", "project"] + ([] if args.no_ablation else ["ablation"])
    prefix = shared_prefix(model, tokenizer, prompt)

    # warm-up (untimed): first calls pay one-off costs (allocations, kernel selection)
    one_at_a_time(model, tokenizer, questions[:1], 4, prompt)
    batched(model, tokenizer, questions[:args.batch_size], args.batch_size, 4, prompt=prompt)
    done = run_chunks(args, sides, model, tokenizer, questions, prompt, project_chunks, baseline_chunks)

    # what was actually done (everything, unless --max-minutes stopped it early): a prefix on each side
    chunks = done["chunks"]
    n, baseline_n = chunks["project"][-1]["questions"][1], chunks["baseline"][-1]["questions"][1]
    preds = {side: got[:baseline_n if side == "baseline" else n] for side, got in done["preds"].items()}
    overlap = min(n, baseline_n)
    summary = summarise(sides, chunks, preds, done["peak"], tokenizer)
    agreement = agreement_with_baseline(sides, records, preds, overlap)
    result = {
        "benchmark": "generate",
        "setup": {"model": label, "model_source": source, "data": str(default_data(args, "valid")), "n": n,
                  "baseline_n": baseline_n, "n_requested": n_req, "baseline_n_requested": baseline_req,
                  "max_minutes": args.max_minutes or None, "stopped_early": done["stopped_early"],
                  "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
                  "precision": args.precision, "dtype": dtype, "device": common.device_tag(), "smoke": args.smoke,
                  "shared_prefix_tokens": len(prefix.ids) if prefix else 0, "sides": sides,
                  "order": f"interleaved chunks ({', '.join(sides)}) x {len(chunks['project'])}, one process",
                  "target": f"CPU: project questions/s >= {CPU_TARGET:g}x baseline"},
        "ids": {"baseline": [r["id"] for r in records[:baseline_n]], "project": [r["id"] for r in records[:n]]},
        "agreement": agreement,
        "summary": summary,
        "memory_method": done["memory_method"],
        "machine": common.machine_info(),
        "load_average_start": load_start, "load_average_end": common.load_average(),
        "note": args.note,
        "provenance": common.provenance(),
    }
    name = args.name or f"generate_{common.device_tag()}" + ("_smoke" if args.smoke else "")
    j, m = common.write_results(out, name, result, render_markdown(result))
    r = summary["ratios"]
    print(f"[bench_generate] questions/s project/baseline = {fmt_ratio(r['questions_per_s'])} (chunk medians), "
          f"{fmt_ratio(r['questions_per_s_overall'])} overall; same predictions "
          f"{agreement['project']['same']}/{overlap}")
    print(f"[bench_generate] wrote {j} and {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
