"""Serving under load: the batched server vs the same server with batching off; prompt lookup for one question.

  batched    python -m qrewrite serve --model M --batch-size 32: concurrent requests' questions are queued and
             rewritten together (qrewrite.generate.rewrite_batch, shared prompt prefix); a lone question
             decodes with prompt lookup
  unbatched  the same command with --batch-size 1: one question at a time, each by the single-question path
             (prompt lookup, as the batched server does for a lone question)
  load       closed loop from this process, 127.0.0.1 only: C clients (httpx) each send one question, wait for
             the answer, send the next; per level max(--min-requests, --rounds x C) requests or --level-seconds,
             whichever comes first; C = 1, 8, 32. Both servers run side by side (each idle while the other is
             measured) and the levels are interleaved (batched C=1, unbatched C=1, batched C=8, ...) so a slow
             spell of a shared machine hits both. Every answer is checked against the same question rewritten
             directly on the batched path in this process.
  plain      a third server: the unbatched one with --prompt-lookup-tokens 0 (one question at a time, plain
             greedy decoding), loaded at concurrency 32 too, for the ratio to the naive server
  single     one question at a time over HTTP: the unbatched server (prompt lookup: --prompt-lookup-tokens
             drafts from the prompt, checked in one forward pass) vs the plain one; same questions,
             alternating which goes first, and the two answers compared

    python benchmarks/bench_serve.py --model weights/serve-bench --note "shared machine"
    python benchmarks/bench_serve.py --smoke --out /tmp/b       # tiny random Qwen2: plumbing only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.common import ROOT, fmt, fmt_ratio, markdown_table, ratio  # noqa: E402

TARGETS = {"throughput_ratio_c32": 4.0, "latency_ratio_single": 1.5}
HOST = "127.0.0.1"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", help="run dir or model dir (e.g. weights/serve-bench); --smoke: a tiny random Qwen2")
    p.add_argument("--data", help="questions (default dataset/sample/valid.json)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--rounds", type=int, default=4, help="requests per client per level (default 4)")
    p.add_argument("--min-requests", type=int, default=24, help="requests per level at least (default 24)")
    p.add_argument("--level-seconds", type=float, default=120,
                   help="stop sending new requests at a level after this long (default 120)")
    p.add_argument("--batch-size", type=int, default=32, help="the batched server's --batch-size (default 32)")
    p.add_argument("--max-wait-ms", type=float, default=5, help="the batched server's --max-wait-ms (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--prompt-lookup-tokens", type=int, default=10)
    p.add_argument("--threads", type=int, help="every server's --threads (default: torch's)")
    p.add_argument("--single-n", type=int, default=16, help="questions for the single-question latency")
    p.add_argument("--smoke", action="store_true", help="tiny model, few requests: plumbing only, no claim")
    common.add_output_options(p, "serve_<device>[_smoke]")
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.min_requests, args.max_new_tokens, args.single_n = 1, 4, 8, 4
    if not args.model and not args.smoke:
        p.error("--model is required (e.g. weights/serve-bench), except with --smoke")
    if any(c < 1 for c in args.concurrency) or 32 not in args.concurrency:
        p.error("--concurrency takes positive counts and must include 32 (the headline ratio is at 32)")
    return args


# ---- servers -------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """``python -m qrewrite serve`` in a subprocess on a free 127.0.0.1 port."""

    def __init__(self, model: str, batch_size: int, args, log_dir: Path, label: str, lookup_tokens: int):
        self.port, self.label = free_port(), label
        self.url = f"http://{HOST}:{self.port}"
        self.command = ["python", "-m", "qrewrite", "serve", "--model", model, "--host", HOST,
                        "--port", str(self.port), "--batch-size", str(batch_size),
                        "--max-wait-ms", str(args.max_wait_ms), "--max-new-tokens", str(args.max_new_tokens),
                        "--prompt-lookup-tokens", str(lookup_tokens), "--max-queue", "1024",
                        "--request-timeout", "600", "--log-level", "warning"]
        if args.threads:
            self.command += ["--threads", str(args.threads)]
        self.log = open(log_dir / f"{label}.log", "w")
        self.proc = subprocess.Popen([sys.executable, *self.command[1:]], cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def wait_ready(self, timeout: float = 900) -> None:
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.label} server exited: see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.label} server did not start in {timeout:g} s")

    def health(self) -> dict:
        import httpx
        return httpx.get(f"{self.url}/health", timeout=30).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


# ---- load ----------------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))]


async def _load(url: str, questions: list[str], concurrency: int, n: int, max_seconds: float) -> dict:
    import httpx
    sent = 0
    rows = []
    async with httpx.AsyncClient(base_url=url, timeout=900,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        start = time.perf_counter()

        async def client_loop():
            nonlocal sent
            while sent < n and time.perf_counter() - start < max_seconds:
                q = questions[sent % len(questions)]
                sent += 1
                t0 = time.perf_counter()
                r = await client.post("/v1/rewrite", json={"question": q})
                rows.append({"question": q, "status": r.status_code, "seconds": time.perf_counter() - t0,
                             "rewrite": r.json()["rewrites"][0] if r.status_code == 200 else None})

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"rows": rows, "wall": wall}


def run_level(server: Server, questions, concurrency: int, n: int, max_seconds: float, expected: dict) -> dict:
    before = server.health()
    got = asyncio.run(_load(server.url, questions, concurrency, n, max_seconds))
    after = server.health()
    rows, wall = got["rows"], got["wall"]
    ok = [r for r in rows if r["status"] == 200]
    lat = [r["seconds"] * 1000 for r in ok]
    statuses = {}
    for r in rows:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    matched = sum(r["rewrite"] == expected[r["question"]] for r in ok)
    batches = after["batches"] - before["batches"]
    return {"concurrency": concurrency, "requests": len(rows), "ok": len(ok), "errors": len(rows) - len(ok),
            "status_counts": statuses, "seconds": round(wall, 3),
            "throughput_rps": len(ok) / wall if wall else None,
            "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "mean_ms": sum(lat) / len(lat) if lat else None, "max_ms": max(lat) if lat else None,
            "server_batches": batches,
            "mean_batch_size": (after["rewritten"] - before["rewritten"]) / batches if batches else None,
            "answers_matched": matched, "answers_match": matched == len(ok)}


# ---- single question: plain greedy vs prompt lookup ----------------------------------------------------------

def single_question(lookup: Server, plain: Server, questions: list[str], args) -> dict:
    import httpx

    def one(server, q):
        t0 = time.perf_counter()
        r = httpx.post(f"{server.url}/v1/rewrite", json={"question": q}, timeout=900)
        r.raise_for_status()
        return (time.perf_counter() - t0) * 1000, r.json()["rewrites"][0]

    times = {"plain_greedy": [], "prompt_lookup": []}
    same = 0
    for i, q in enumerate(questions):
        sides = [("plain_greedy", plain), ("prompt_lookup", lookup)][::1 if i % 2 == 0 else -1]
        answers = {}
        for side, server in sides:
            ms, answers[side] = one(server, q)
            times[side].append(ms)
        same += answers["plain_greedy"] == answers["prompt_lookup"]
    summary = {side: {"p50_ms": percentile(t, 50), "p95_ms": percentile(t, 95), "mean_ms": sum(t) / len(t),
                      "runs_ms": [round(x, 1) for x in t]} for side, t in times.items()}
    return {**summary, "questions": len(questions), "same_outputs": same, "same_output": same == len(questions),
            "prompt_lookup_tokens": args.prompt_lookup_tokens,
            "order": "one request at a time, alternating per question which server goes first (plain first on "
                     "even questions); client latency"}


def off_main_thread(fn, *args):
    """Run ``fn`` in a worker thread, as the server runs generation. On a CPU shared with other processes,
    torch's OpenMP team of the main thread was measured 4-6x slower than a worker thread's."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


# ---- report --------------------------------------------------------------------------------------------------

def render_markdown(result: dict) -> str:
    setup, load, single = result["setup"], result["load"], result["single"]
    rows = []
    for c in setup["concurrency"]:
        b, u = load["batched"][str(c)], load["unbatched"][str(c)]
        rows.append([str(c), fmt(b["throughput_rps"]), fmt(u["throughput_rps"]),
                     fmt_ratio(ratio(b["throughput_rps"], u["throughput_rps"])),
                     f"{fmt(b['p50_ms'])} / {fmt(b['p95_ms'])}", f"{fmt(u['p50_ms'])} / {fmt(u['p95_ms'])}",
                     fmt(b["mean_batch_size"]), f"{b['requests']} / {u['requests']}",
                     f"{b['answers_matched']}/{b['ok']} · {u['answers_matched']}/{u['ok']}"])
    table = markdown_table(["concurrency", "batched req/s", "unbatched req/s", "batched / unbatched",
                            "batched p50 / p95 ms", "unbatched p50 / p95 ms", "mean batch", "requests (b / u)",
                            "answers = direct rewrite (b · u)"], rows)
    p32 = load["plain"]["32"]
    plain_line = (f"Against the naive server (`--batch-size 1 --prompt-lookup-tokens 0`: one question at a time, "
                  f"plain greedy) at concurrency 32: {fmt(p32['throughput_rps'])} req/s, p50 / p95 "
                  f"{fmt(p32['p50_ms'])} / {fmt(p32['p95_ms'])} ms, so batched / naive = "
                  f"{fmt_ratio(result['throughput_ratio_c32_vs_plain'])} ({p32['requests']} requests, "
                  f"{p32['answers_matched']}/{p32['ok']} answers = direct rewrite).")
    pg, pl = single["plain_greedy"], single["prompt_lookup"]
    single_table = markdown_table(["single question", "p50 ms", "p95 ms", "mean ms"], [
        ["plain greedy", fmt(pg["p50_ms"]), fmt(pg["p95_ms"]), fmt(pg["mean_ms"])],
        [f"prompt lookup ({single['prompt_lookup_tokens']} draft tokens)", fmt(pl["p50_ms"]), fmt(pl["p95_ms"]),
         fmt(pl["mean_ms"])]])
    t, met = result["targets"], result["met"]
    if setup["smoke"]:
        verdict = "smoke run: plumbing check only, no timing claim"
    else:
        verdict = "; ".join([
            f"throughput_ratio_c32 = {fmt_ratio(result['throughput_ratio_c32'])} (target >= "
            f"{t['throughput_ratio_c32']:g}x: {'met' if met['throughput_ratio_c32'] else 'NOT met'})",
            f"p95 at concurrency 32 below the unbatched server's: {'yes' if met['p95_c32_below_unbatched'] else 'NO'}",
            f"latency_ratio_single = {fmt_ratio(result['latency_ratio_single'])} (target >= "
            f"{t['latency_ratio_single']:g}x: {'met' if met['latency_ratio_single'] else 'NOT met'})"])
    return f"""# Serving: batched vs unbatched server, prompt lookup for one question ({setup['model']}, {setup['device']})

**{verdict}.**

{table}

{plain_line}

{single_table}

Prompt lookup gave the same answer as plain greedy on {single['same_outputs']} of {single['questions']} \
questions (token-for-token equality is tested in `tests/test_serve.py`).

- batched server: `{' '.join(setup['servers']['batched'])}`
- unbatched server: `{' '.join(setup['servers']['unbatched'])}` (the same server with batching off: one question \
at a time, by the single-question path, prompt lookup)
- load: closed loop from one process on 127.0.0.1, one question per request, questions from `{setup['data']}` \
({setup['distinct_questions']} distinct, cycled); per level max({setup['min_requests']}, {setup['rounds']} x \
concurrency) requests or {setup['level_seconds']:g} s; levels interleaved batched / unbatched; latency is the \
client's (request sent to answer read); throughput = answered requests / wall time of the level
- answers checked against the same questions rewritten directly on the batched path (`rewrite_batch`) in the \
benchmark process
- single question: the unbatched server (prompt lookup) vs `{' '.join(setup['servers']['plain'])}` (plain \
greedy), {single['order']}

## Machine
{common.machine_markdown(result)}

## Provenance
{common.provenance_markdown(result)}
"""  # noqa: E501


# ---- main ----------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    import json
    tmp = Path(tempfile.mkdtemp(prefix="qrewrite-bench-serve-"))
    out = common.out_dir(args.out, args.smoke)
    load_start = common.load_average()
    try:
        if args.model is None:
            from qrewrite.models import build_tiny_qwen2
            model_arg, label = str(build_tiny_qwen2(tmp / "tiny-qwen2")), "tiny Qwen2 (random)"
        else:
            model_arg = label = args.model
        data = Path(args.data) if args.data else ROOT / "dataset" / "sample" / "valid.json"
        questions = list(dict.fromkeys(r["input"] for r in json.loads(data.read_text(encoding="utf-8"))))
        lookup = args.prompt_lookup_tokens
        servers = {"batched": Server(model_arg, args.batch_size, args, tmp, "batched", lookup),
                   "unbatched": Server(model_arg, 1, args, tmp, "unbatched", lookup),
                   "plain": Server(model_arg, 1, args, tmp, "plain", 0)}
        try:
            for s in servers.values():
                s.wait_ready()
            import httpx
            for s in servers.values():  # warm-up, untimed: a lone question and a batch
                httpx.post(f"{s.url}/v1/rewrite", json={"question": questions[0]}, timeout=900)
                httpx.post(f"{s.url}/v1/rewrite", json={"questions": questions[:8]}, timeout=900)

            from qrewrite.serving import load_backend
            backend = load_backend(model_arg, max_new_tokens=args.max_new_tokens,
                                   prompt_lookup_tokens=args.prompt_lookup_tokens)
            expected = dict(zip(questions, [t for i in range(0, len(questions), args.batch_size)
                                            for t in off_main_thread(backend.rewrite,
                                                                     questions[i:i + args.batch_size])]))
            del backend
            load = {"batched": {}, "unbatched": {}, "plain": {}}
            for c in args.concurrency:
                n = max(args.min_requests, args.rounds * c)
                for side in load:
                    if side == "plain" and c != 32:
                        continue
                    s = servers[side]
                    load[side][str(c)] = r = run_level(s, questions, c, n, args.level_seconds, expected)
                    print(f"[bench_serve] {side:9s} c={c:<3d} {r['ok']}/{r['requests']} ok  "
                          f"{fmt(r['throughput_rps'])} req/s  p50 {fmt(r['p50_ms'])} ms  p95 {fmt(r['p95_ms'])} ms"
                          f"  mean batch {fmt(r['mean_batch_size'])}", flush=True)
            single = single_question(servers["unbatched"], servers["plain"], questions[:args.single_n], args)
        finally:
            for s in servers.values():
                s.stop()
        print(f"[bench_serve] single question p50: plain {fmt(single['plain_greedy']['p50_ms'])} ms, "
              f"prompt lookup {fmt(single['prompt_lookup']['p50_ms'])} ms; same answers "
              f"{single['same_outputs']}/{single['questions']}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    b32, u32 = load["batched"]["32"], load["unbatched"]["32"]
    result = {
        "benchmark": "serve",
        "throughput_ratio_c32": ratio(b32["throughput_rps"], u32["throughput_rps"]),
        "latency_ratio_single": ratio(single["plain_greedy"]["p50_ms"], single["prompt_lookup"]["p50_ms"]),
        "throughput_ratio_c32_vs_plain": ratio(b32["throughput_rps"], load["plain"]["32"]["throughput_rps"]),
        "p95_ms_c32": {"batched": b32["p95_ms"], "unbatched": u32["p95_ms"], "plain": load["plain"]["32"]["p95_ms"]},
        "targets": {**TARGETS, "p95_c32_below_unbatched": True},
        "load": load,
        "single": single,
        "setup": {"model": label, "data": str(data.relative_to(ROOT) if data.is_relative_to(ROOT) else data),
                  "distinct_questions": len(questions), "concurrency": args.concurrency, "rounds": args.rounds,
                  "min_requests": args.min_requests, "level_seconds": args.level_seconds,
                  "batch_size": args.batch_size, "max_wait_ms": args.max_wait_ms,
                  "max_new_tokens": args.max_new_tokens, "prompt_lookup_tokens": args.prompt_lookup_tokens,
                  "threads": args.threads,
                  "servers": {side: s.command for side, s in servers.items()},
                  "device": common.device_tag(), "smoke": args.smoke},
        "machine": common.machine_info(),
        "load_average_start": load_start, "load_average_end": common.load_average(),
        "note": args.note,
        "provenance": common.provenance(),
    }
    result["met"] = {"throughput_ratio_c32": (result["throughput_ratio_c32"] or 0) >= TARGETS["throughput_ratio_c32"],
                     "latency_ratio_single": (result["latency_ratio_single"] or 0) >= TARGETS["latency_ratio_single"],
                     "p95_c32_below_unbatched": b32["p95_ms"] is not None and u32["p95_ms"] is not None
                     and b32["p95_ms"] < u32["p95_ms"]}
    name = args.name or f"serve_{common.device_tag()}" + ("_smoke" if args.smoke else "")
    j, m = common.write_results(out, name, result, render_markdown(result))
    print(f"[bench_serve] throughput_ratio_c32 {fmt_ratio(result['throughput_ratio_c32'])}, "
          f"latency_ratio_single {fmt_ratio(result['latency_ratio_single'])}; wrote {j} and {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
