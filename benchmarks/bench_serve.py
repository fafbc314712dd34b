"""Serving side by side: today's server, the CTranslate2 engine and `transformers serve`, under the same load.

  batched       python -m qrewrite serve --model M --batch-size 32: concurrent requests' questions are rewritten
                together on the transformers engine (qrewrite.infer.generate.rewrite_batch); a lone question
                decodes with prompt lookup
  ctranslate2   the same with --engine ctranslate2 --threads 1: the run's model converted once to int8, batched by
                the same micro-batcher; a lone question is a batch of one (--ct2-threads: its threads; one was
                measured 1.7-2.7x faster than two on 2 cores; --ct2-replicas: its --replicas, batches decoded at
                once, each with those threads; --ct2-lone-question: its --lone-question, prompt-lookup-bf16 by
                default: a lone question by prompt lookup on a bf16 copy of the model);
                ctranslate2_default_threads: CTranslate2's own thread count; ctranslate2_fp32: float32 weights
                (these two: a lone question is a batch of one)
  batched_bf16  the batched server with --precision bf16 --replicas N (--bf16-replicas, default 2: each batch split
                between N generation threads; batches and a lone question in bf16)
  unbatched     --batch-size 1 (one question at a time, by prompt lookup); plain: also --prompt-lookup-tokens 0
                (the naive server, at concurrency 32 only)
  transformers_serve_cb / transformers_serve
                `transformers serve <run>/model --device cpu` with / without --continuous-batching, asked through
                its OpenAI chat completions endpoint (--no-transformers-serve leaves them out)
  load          closed loop from this process, 127.0.0.1 only: C clients (httpx) each send one question, wait for
                the answer, send the next; per level max(--min-requests, --rounds x C) requests or --level-seconds;
                C = 1, 8, 32; every server at one level before any at the next (interleaved), the load average
                recorded after each; every answer checked against the question rewritten directly in this process
  single        one question at a time over HTTP to plain greedy, prompt lookup, the ctranslate2 sides, bf16 and
                transformers serve, rotating which goes first

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
from qrewrite.infer.decoding import QUANTIZATIONS  # noqa: E402
from qrewrite.serve.options import LONE_QUESTION_PATHS  # noqa: E402

# the engine and transformers-serve targets of the serving issue; the first two are the batching issue's
TARGETS = {"throughput_ratio_c32": 4.0, "latency_ratio_single": 1.5, "engine_throughput_ratio_c32": 2.5,
           "engine_latency_ratio_single": 1.5, "vs_transformers_serve_c32": 1.5, "vs_transformers_serve_single": 1.5}
HOST = "127.0.0.1"
SINGLE_ONLY = ("ctranslate2_batch_of_one",)  # servers asked only in the single-question measurement


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", help="run dir or model dir (e.g. weights/serve-bench); --smoke: a tiny random Qwen2")
    p.add_argument("--data", help="questions (default dataset/sample/valid.json)")
    p.add_argument("--questions", type=int, default=64, help="the first N distinct questions of --data (default 64)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--rounds", type=int, default=4, help="requests per client per level (default 4)")
    p.add_argument("--min-requests", type=int, default=24, help="requests per level at least (default 24)")
    p.add_argument("--level-seconds", type=float, default=120,
                   help="stop sending new requests at a level after this long (default 120)")
    p.add_argument("--batch-size", type=int, default=32, help="the batched server's --batch-size (default 32)")
    p.add_argument("--max-wait-ms", type=float, default=5, help="the batched server's --max-wait-ms (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--prompt-lookup-tokens", type=int, default=10)
    p.add_argument("--threads", type=int, help="the transformers-engine servers' --threads (default: torch's)")
    p.add_argument("--ct2-threads", type=int, default=1,
                   help="the ctranslate2 servers' --threads (default 1; ctranslate2_default_threads: none)")
    p.add_argument("--ct2-replicas", type=int, default=1,
                   help="the ctranslate2 servers' --replicas: batches decoded at once, each with --ct2-threads")
    p.add_argument("--bf16-replicas", type=int, default=2,
                   help="the bf16 transformers-engine server's --replicas (default 2)")
    p.add_argument("--ct2-lone-question", choices=LONE_QUESTION_PATHS, default="prompt-lookup-bf16",
                   help="the ctranslate2 server's --lone-question (default prompt-lookup-bf16; engine: a batch of one)")
    p.add_argument("--ct2-quantization", choices=QUANTIZATIONS,
                   help="the ctranslate2 server's --quantization (default: the engine's, recorded)")
    p.add_argument("--single-n", type=int, default=16, help="questions for the single-question latency")
    p.add_argument("--recommended", default="ctranslate2",
                   choices=["batched", "batched_bf16", "ctranslate2", "ctranslate2_fp32"],
                   help="the server docs/serving.md recommends, for ratios to transformers serve (default ctranslate2)")
    p.add_argument("--no-transformers-serve", action="store_true",
                   help="leave out the two `transformers serve` sides (needs transformers[serving])")
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

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and not handed to another server of this run (they start together; each binds it later)."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class Server:
    """``python -m qrewrite serve`` in a subprocess on a free 127.0.0.1 port (``engine``: its --engine)."""

    kind = "qrewrite"

    def __init__(self, model: str, batch_size: int, args, log_dir: Path, label: str, lookup_tokens: int,
                 engine: str = "transformers", quantization: str | None = None, threads: int | None = None,
                 replicas: int = 1, precision: str | None = None, lone_question: str = "engine"):
        self.port, self.label, self.model = free_port(), label, model
        self.url = f"http://{HOST}:{self.port}"
        self.command = ["python", "-m", "qrewrite", "serve", "--model", model, "--host", HOST,
                        "--port", str(self.port), "--batch-size", str(batch_size),
                        "--max-wait-ms", str(args.max_wait_ms), "--max-new-tokens", str(args.max_new_tokens),
                        "--prompt-lookup-tokens", str(lookup_tokens), "--max-queue", "1024",
                        "--request-timeout", "600", "--log-level", "warning", "--engine", engine]
        if quantization:
            self.command += ["--quantization", quantization]
        if threads:
            self.command += ["--threads", str(threads)]
        if replicas > 1:
            self.command += ["--replicas", str(replicas)]
        if precision:
            self.command += ["--precision", precision]
        if lone_question != "engine":
            self.command += ["--lone-question", lone_question]
        self.start(log_dir)

    def start(self, log_dir: Path) -> None:
        self.log = open(log_dir / f"{self.label}.log", "w")
        self.proc = subprocess.Popen([sys.executable, *self.command[1:]] if self.command[0] == "python"
                                     else self.command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})

    def wait_ready(self, timeout: float = 900, port_retries: int = 3) -> None:
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log_text = Path(self.log.name).read_text(errors="replace")
                if port_retries and "address already in use" in log_text.lower():
                    # the port was free when picked but something else bound it first: pick another, start again
                    port_retries -= 1
                    self.move_to(free_port())
                    continue
                raise SystemExit(f"{self.label} server exited: see {self.log.name}\n{log_text[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.label} server did not start in {timeout:g} s")

    def move_to(self, port: int) -> None:
        """Start the server again on another port."""
        self.log.close()
        self.command[self.command.index("--port") + 1] = str(port)
        self.port, self.url = port, f"http://{HOST}:{port}"
        self.start(Path(self.log.name).parent)

    def health(self) -> dict:
        import httpx
        return httpx.get(f"{self.url}/health", timeout=30).json()

    async def ask(self, client, question: str):
        """(status, rewrite or None) for one question."""
        r = await client.post(f"{self.url}/v1/rewrite", json={"question": question})
        return r.status_code, r.json()["rewrites"][0] if r.status_code == 200 else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class TransformersServe(Server):
    """``transformers serve`` on the same model directory (OpenAI chat completions; the saved chat template, which
    renders the run's minimal prompt), with or without continuous batching."""

    kind = "openai"

    def __init__(self, cli: str, model_dir: str, args, log_dir: Path, label: str, continuous_batching: bool):
        self.port, self.label, self.model = free_port(), label, model_dir
        self.url = f"http://{HOST}:{self.port}"
        self.max_new_tokens = args.max_new_tokens
        self.command = [cli, "serve", model_dir, "--host", HOST, "--port", str(self.port),
                        "--device", "cpu", "--dtype", "float32", "--log-level", "warning",
                        "--continuous-batching" if continuous_batching else "--no-continuous-batching"]
        self.start(log_dir)

    def health(self) -> dict:
        return {}

    async def ask(self, client, question: str):
        r = await client.post(f"{self.url}/v1/chat/completions", json={
            "model": self.model, "messages": [{"role": "user", "content": question}], "temperature": 0,
            "max_tokens": self.max_new_tokens, "stream": False})
        return r.status_code, r.json()["choices"][0]["message"]["content"].strip() if r.status_code == 200 else None


# ---- load ----------------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))]


async def _load(server, questions: list[str], concurrency: int, n: int, max_seconds: float) -> dict:
    import httpx
    sent = 0
    rows = []
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        start = time.perf_counter()

        async def client_loop():
            nonlocal sent
            while sent < n and time.perf_counter() - start < max_seconds:
                q = questions[sent % len(questions)]
                sent += 1
                t0 = time.perf_counter()
                status, rewrite = await server.ask(client, q)
                rows.append({"question": q, "status": status, "seconds": time.perf_counter() - t0,
                             "rewrite": rewrite})

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"rows": rows, "wall": wall}


def run_level(server: Server, questions, concurrency: int, n: int, max_seconds: float, expected: dict) -> dict:
    before = server.health()
    got = asyncio.run(_load(server, questions, concurrency, n, max_seconds))
    after = server.health()
    rows, wall = got["rows"], got["wall"]
    ok = [r for r in rows if r["status"] == 200]
    lat = [r["seconds"] * 1000 for r in ok]
    statuses = {}
    for r in rows:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    matched = sum(r["rewrite"] == expected[r["question"]] for r in ok)
    batches = after["batches"] - before["batches"] if "batches" in after else None
    return {"concurrency": concurrency, "requests": len(rows), "ok": len(ok), "errors": len(rows) - len(ok),
            "status_counts": statuses, "seconds": round(wall, 3),
            "throughput_rps": len(ok) / wall if wall else None,
            "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "mean_ms": sum(lat) / len(lat) if lat else None, "max_ms": max(lat) if lat else None,
            "server_batches": batches,
            "mean_batch_size": (after["rewritten"] - before["rewritten"]) / batches if batches else None,
            "load_average": common.load_average(),
            "answers_matched": matched, "answers_match": matched == len(ok)}


# ---- single question: plain greedy vs prompt lookup ----------------------------------------------------------

def single_question(servers: dict, questions: list[str], args) -> dict:
    """One question at a time over HTTP to each of ``servers`` (side -> server), rotating which goes first."""
    names = list(servers)
    times = {side: [] for side in names}
    same = {side: 0 for side in names}
    with _Sync() as run:
        for i, q in enumerate(questions):
            answers = {}
            for side in names[i % len(names):] + names[:i % len(names)]:
                t0 = time.perf_counter()
                status, answers[side] = run(servers[side], q)
                assert status == 200, f"{side}: HTTP {status}"
                times[side].append((time.perf_counter() - t0) * 1000)
            for side in names:
                same[side] += answers[side] == answers[names[0]]
    summary = {side: {"p50_ms": percentile(t, 50), "p95_ms": percentile(t, 95), "mean_ms": sum(t) / len(t),
                      "runs_ms": [round(x, 1) for x in t], "same_as_" + names[0]: same[side]}
               for side, t in times.items()}
    return {**summary, "questions": len(questions), "same_outputs": same["prompt_lookup"],
            "same_output": same["prompt_lookup"] == len(questions), "prompt_lookup_tokens": args.prompt_lookup_tokens,
            "sides": {side: servers[side].label for side in names},
            "order": "one request at a time, rotating per question which server goes first; client latency"}


class _Sync:
    """Calls a server's async ``ask`` from synchronous code, one question at a time."""

    def __enter__(self):
        import httpx
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(timeout=900)
        return lambda server, q: self.loop.run_until_complete(server.ask(self.client, q))

    def __exit__(self, *exc):
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def off_main_thread(fn, *args):
    """Run ``fn`` in a worker thread, as the server runs generation. On a CPU shared with other processes,
    torch's OpenMP team of the main thread was measured 4-6x slower than a worker thread's."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


# ---- report --------------------------------------------------------------------------------------------------

SIDE_NAMES = {"batched": "qrewrite serve (transformers engine, batched)",
              "ctranslate2": "qrewrite serve --engine ctranslate2 ({ct2_quantization}, {ct2_parallel}{ct2_lone})",
              "ctranslate2_batch_of_one": "qrewrite serve --engine ctranslate2 ({ct2_quantization}, {ct2_parallel}; "
                                          "a lone question: a batch of one)",
              "ctranslate2_default_threads":
                  "qrewrite serve --engine ctranslate2 ({ct2_quantization}, CTranslate2's threads)",
              "ctranslate2_fp32": "qrewrite serve --engine ctranslate2 --quantization float32 ({ct2_parallel})",
              "batched_bf16": "qrewrite serve --precision bf16{bf16_replicas} (transformers engine, batched)",
              "unbatched": "qrewrite serve --batch-size 1", "plain": "qrewrite serve --batch-size 1, plain greedy",
              "transformers_serve_cb": "transformers serve --continuous-batching",
              "transformers_serve": "transformers serve (no continuous batching)",
              "plain_greedy": "plain greedy (batch of one)", "prompt_lookup": "prompt lookup (transformers engine)"}


def side_name(side: str, setup: dict) -> str:
    replicas = setup.get("ct2_replicas", 1)
    parallel = f"--threads {setup['ct2_threads']}" + (f" --replicas {replicas}" if replicas > 1 else "")
    lone, bf16_replicas = setup.get("ct2_lone_question", "engine"), setup.get("bf16_replicas", 1)
    return SIDE_NAMES.get(side, side).format(ct2_parallel=parallel, ct2_lone="" if lone == "engine" else
                                             f"; a lone question: --lone-question {lone}",
                                             bf16_replicas=f" --replicas {bf16_replicas}" if bf16_replicas > 1 else "",
                                             ct2_quantization=setup.get("ct2_quantization", "int8"))


def _tables(result: dict) -> tuple[str, str]:
    """The load table (every server at every concurrency) and the single-question table."""
    setup, load, single = result["setup"], result["load"], result["single"]
    rows = []
    for c in setup["concurrency"]:
        for side, levels in load.items():
            r = levels.get(str(c))
            if r is None:
                continue
            rows.append([str(c), side_name(side, setup), fmt(r["throughput_rps"]),
                         f"{fmt(r['p50_ms'])} / {fmt(r['p95_ms'])}", fmt(r["mean_batch_size"]), str(r["requests"]),
                         f"{r['answers_matched']}/{r['ok']}", " ".join(f"{x:g}" for x in r.get("load_average") or [])])
    table = markdown_table(["concurrency", "server", "req/s", "p50 / p95 ms", "mean batch", "requests",
                            "answers = direct rewrite", "load average after"], rows)
    single_rows = [[side_name(side, setup), fmt(single[side]["p50_ms"]), fmt(single[side]["p95_ms"]),
                    fmt(single[side]["mean_ms"]), f"{single[side]['same_as_plain_greedy']}/{single['questions']}"]
                   for side in single["sides"]]
    single_table = markdown_table(["single question", "p50 ms", "p95 ms", "mean ms", "same answer as plain greedy"],
                                  single_rows)
    return table, single_table


def render_markdown(result: dict) -> str:
    setup, single = result["setup"], result["single"]
    table, single_table = _tables(result)
    t, met = result["targets"], result["met"]
    if setup["smoke"]:
        verdict = "smoke run: plumbing check only, no timing claim"
    else:
        verdict = "; ".join(f"{key} = {fmt_ratio(result[key])} (target >= {t[key]:g}x: "
                            f"{'met' if met[key] else 'NOT met'})" for key in TARGETS)
    commands = "\n".join(f"- {side_name(side, setup)}: `{' '.join(cmd)}`" for side, cmd in setup["servers"].items())
    return f"""# Serving side by side: qrewrite's engines and `transformers serve` ({setup['model']}, {setup['device']})

**{verdict}.**

`engine_throughput_ratio_c32`: `--engine ctranslate2` over today's batched server at concurrency 32;
`engine_latency_ratio_single`: today's prompt-lookup path over `--engine ctranslate2`, one question (p50: its
lone-question path, `--lone-question {setup.get('ct2_lone_question', 'engine')}`); the same two with `--quantization
float32` as `engine_fp32_*` and with CTranslate2's own thread count (not `--threads {setup['ct2_threads']}`) as
`engine_default_threads_*` (both: a lone question as a batch of one); `bf16_*`: `--precision bf16` on the
transformers engine (`--replicas {setup.get('bf16_replicas', 1)}`);
`vs_transformers_serve_c32` / `_single`: the recommended server (`{result['recommended']}`) over
`transformers serve --continuous-batching`; `throughput_ratio_c32` / `latency_ratio_single`: the batching issue's
(batched over `--batch-size 1`; prompt lookup over plain greedy).

{table}

{single_table}

{commands}

Load: closed loop from one process on 127.0.0.1, one question per request, questions from `{setup['data']}`
({setup['distinct_questions']} distinct, cycled); per level max({setup['min_requests']}, {setup['rounds']} x
concurrency) requests or {setup['level_seconds']:g} s; the levels are interleaved (every server at one concurrency
before any at the next) so that a slow spell of a shared machine hits all; latency is the client's; throughput =
answered requests / wall time of the level. Every answer is checked against the same question rewritten directly
on the project's batched path (transformers engine) in the benchmark process. Single question: {single['order']}.
The machine's load average (1 / 5 / 15 min) after each level is in the table; at the start
{result['load_average_start']}, at the end {result['load_average_end']}.

## Machine
{common.machine_markdown(result)}

## Provenance
{common.provenance_markdown(result)}
"""


# ---- main ----------------------------------------------------------------------------------------------------

def start_servers(model_arg: str, args, tmp: Path, servers: dict) -> dict:
    """Start every side into ``servers``, which the caller holds and stops: a side that fails to start leaves the
    ones started before it there."""
    lookup, threads, ct2, replicas = args.prompt_lookup_tokens, args.threads, args.ct2_threads, args.ct2_replicas
    cli = None if args.no_transformers_serve else transformers_cli()  # missing: fail before anything starts
    n, quantization = args.batch_size, args.ct2_quantization
    servers["batched"] = Server(model_arg, n, args, tmp, "batched", lookup, threads=threads)
    servers["ctranslate2"] = Server(model_arg, n, args, tmp, "ctranslate2", lookup, engine="ctranslate2",
                                    quantization=quantization, threads=ct2, replicas=replicas,
                                    lone_question=args.ct2_lone_question)
    servers["ctranslate2_default_threads"] = Server(model_arg, n, args, tmp, "ctranslate2_default_threads", lookup,
                                                    engine="ctranslate2", quantization=quantization)
    servers["ctranslate2_fp32"] = Server(model_arg, n, args, tmp, "ctranslate2_fp32", lookup, engine="ctranslate2",
                                         quantization="float32", threads=ct2, replicas=replicas)
    if args.ct2_lone_question != "engine":  # single question only: its batch of one
        servers["ctranslate2_batch_of_one"] = Server(model_arg, n, args, tmp, "ctranslate2_batch_of_one", lookup,
                                                     engine="ctranslate2", quantization=quantization, threads=ct2,
                                                     replicas=replicas)
    servers["batched_bf16"] = Server(model_arg, n, args, tmp, "batched_bf16", lookup, threads=threads,
                                     precision="bf16", replicas=args.bf16_replicas)
    servers["unbatched"] = Server(model_arg, 1, args, tmp, "unbatched", lookup, threads=threads)
    servers["plain"] = Server(model_arg, 1, args, tmp, "plain", 0, threads=threads)
    if cli is not None:
        from qrewrite.run import Run
        model_dir = str(Run.model_dir_of(model_arg))
        for label, continuous in (("transformers_serve_cb", True), ("transformers_serve", False)):
            servers[label] = TransformersServe(cli, model_dir, args, tmp, label, continuous)
    return servers


def transformers_cli() -> str:
    """The ``transformers`` command of the running interpreter's environment (beside it, as a venv puts it, even
    when that environment is not on PATH), else the one PATH finds."""
    beside = Path(sys.executable).parent / "transformers"
    found = str(beside) if beside.is_file() else shutil.which("transformers")
    if found is None:
        raise SystemExit(f"no `transformers` command beside {sys.executable} nor on PATH: install transformers "
                         "[serving] in this environment, or pass --no-transformers-serve")
    return found


def direct_rewrites(model_arg: str, questions: list[str], args) -> dict:
    """question -> its rewrite on the project's batched path, in this process (what every answer is checked
    against)."""
    from qrewrite.serve.engine import load_backend
    backend = load_backend(model_arg, max_new_tokens=args.max_new_tokens,
                           prompt_lookup_tokens=args.prompt_lookup_tokens)
    return dict(zip(questions, [t for i in range(0, len(questions), args.batch_size)
                                for t in off_main_thread(backend.rewrite, questions[i:i + args.batch_size])]))


def measure(servers: dict, questions: list[str], expected: dict, args) -> tuple[dict, dict]:
    import httpx
    for s in servers.values():
        s.wait_ready()
    warm = _Sync()
    with warm as ask:
        for s in servers.values():  # warm-up, untimed (transformers serve loads the model on the first request)
            for q in questions[:2]:
                ask(s, q)
        for s in servers.values():
            if s.kind == "qrewrite":
                httpx.post(f"{s.url}/v1/rewrite", json={"questions": questions[:8]}, timeout=900)
    load = {side: {} for side in servers}
    for c in args.concurrency:  # levels interleaved: every side at C before any side at the next C
        n = max(args.min_requests, args.rounds * c)
        for side, s in servers.items():
            if (side == "plain" and c != 32) or side in SINGLE_ONLY:
                continue
            load[side][str(c)] = r = run_level(s, questions, c, n, args.level_seconds, expected)
            print(f"[bench_serve] {side:22s} c={c:<3d} {r['ok']}/{r['requests']} ok  {fmt(r['throughput_rps'])} "
                  f"req/s  p50 {fmt(r['p50_ms'])} ms  p95 {fmt(r['p95_ms'])} ms  mean batch "
                  f"{fmt(r['mean_batch_size'])}  answers {r['answers_matched']}/{r['ok']}", flush=True)
    single_sides = {"plain_greedy": servers["plain"], "prompt_lookup": servers["unbatched"],
                    "ctranslate2": servers["ctranslate2"],
                    **{side: servers[side] for side in SINGLE_ONLY if side in servers},
                    "ctranslate2_default_threads": servers["ctranslate2_default_threads"],
                    "ctranslate2_fp32": servers["ctranslate2_fp32"], "batched_bf16": servers["batched_bf16"]}
    if "transformers_serve_cb" in servers:
        single_sides["transformers_serve_cb"] = servers["transformers_serve_cb"]
    single = single_question(single_sides, questions[:args.single_n], args)
    return load, single


def ratios(load: dict, single: dict, recommended: str) -> dict:
    c32 = {side: levels["32"]["throughput_rps"] for side, levels in load.items() if "32" in levels}
    p50 = {side: single[side]["p50_ms"] for side in single.get("sides", {})}
    out = {
        "throughput_ratio_c32": ratio(c32["batched"], c32["unbatched"]),
        "latency_ratio_single": ratio(p50["plain_greedy"], p50["prompt_lookup"]),
        "throughput_ratio_c32_vs_plain": ratio(c32["batched"], c32["plain"]),
        "engine_throughput_ratio_c32": ratio(c32["ctranslate2"], c32["batched"]),
        "engine_latency_ratio_single": ratio(p50["prompt_lookup"], p50["ctranslate2"]),
        "engine_batch_of_one_latency_ratio_single": ratio(p50["prompt_lookup"], p50["ctranslate2_batch_of_one"])
        if "ctranslate2_batch_of_one" in p50 else None,
        "engine_fp32_throughput_ratio_c32": ratio(c32["ctranslate2_fp32"], c32["batched"]),
        "engine_fp32_latency_ratio_single": ratio(p50["prompt_lookup"], p50["ctranslate2_fp32"]),
        "engine_default_threads_throughput_ratio_c32": ratio(c32["ctranslate2_default_threads"], c32["batched"]),
        "engine_default_threads_latency_ratio_single": ratio(p50["prompt_lookup"],
                                                             p50["ctranslate2_default_threads"]),
        "bf16_throughput_ratio_c32": ratio(c32["batched_bf16"], c32["batched"]),
        "bf16_latency_ratio_single": ratio(p50["prompt_lookup"], p50["batched_bf16"]),
        "vs_transformers_serve_c32": None, "vs_transformers_serve_single": None,
    }
    if "transformers_serve_cb" in c32:
        out["vs_transformers_serve_c32"] = ratio(c32[recommended], c32["transformers_serve_cb"])
        single_side = {"batched": "prompt_lookup"}.get(recommended, recommended)  # its lone-question path
        out["vs_transformers_serve_single"] = ratio(p50["transformers_serve_cb"], p50[single_side])
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    import json

    from qrewrite.infer.ct2 import default_quantization as ct2_default_quantization
    tmp = Path(tempfile.mkdtemp(prefix="qrewrite-bench-serve-"))
    out = common.out_dir(args.out, args.smoke)
    load_start = common.load_average()
    try:
        if args.model is None:
            from qrewrite.testing import build_tiny_qwen2
            model_arg, label = str(build_tiny_qwen2(tmp / "tiny-qwen2")), "tiny Qwen2 (random)"
        else:
            model_arg = label = args.model
        data = Path(args.data) if args.data else ROOT / "dataset" / "sample" / "valid.json"
        questions = list(dict.fromkeys(r["input"] for r in json.loads(data.read_text(encoding="utf-8"))))
        questions = questions[:args.questions]
        servers = {}
        try:
            start_servers(model_arg, args, tmp, servers)
            expected = direct_rewrites(model_arg, questions, args)
            load, single = measure(servers, questions, expected, args)
        finally:
            for s in servers.values():
                s.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result = {"benchmark": "serve", **ratios(load, single, args.recommended),
              "p95_ms_c32": {side: levels["32"]["p95_ms"] for side, levels in load.items() if "32" in levels},
              "targets": {**TARGETS, "p95_c32_below_unbatched": True}, "recommended": args.recommended,
              "load": load, "single": single,
              "setup": {"model": label, "data": str(data.relative_to(ROOT) if data.is_relative_to(ROOT) else data),
                        "distinct_questions": len(questions), "concurrency": args.concurrency,
                        "rounds": args.rounds, "min_requests": args.min_requests, "level_seconds": args.level_seconds,
                        "batch_size": args.batch_size, "max_wait_ms": args.max_wait_ms,
                        "max_new_tokens": args.max_new_tokens, "prompt_lookup_tokens": args.prompt_lookup_tokens,
                        "threads": args.threads, "ct2_threads": args.ct2_threads, "ct2_replicas": args.ct2_replicas,
                        "ct2_lone_question": args.ct2_lone_question, "bf16_replicas": args.bf16_replicas,
                        "ct2_quantization": args.ct2_quantization or ct2_default_quantization(),
                        "servers": {side: s.command for side, s in servers.items()},
                        "device": common.device_tag(), "smoke": args.smoke},
              "machine": common.machine_info(),
              "load_average_start": load_start, "load_average_end": common.load_average(),
              "note": args.note, "provenance": common.provenance()}
    b32, u32 = load["batched"]["32"], load["unbatched"]["32"]
    result["met"] = {key: (result[key] or 0) >= target for key, target in TARGETS.items()}
    result["met"]["p95_c32_below_unbatched"] = b32["p95_ms"] is not None and u32["p95_ms"] is not None \
        and b32["p95_ms"] < u32["p95_ms"]
    name = args.name or f"serve_{common.device_tag()}" + ("_smoke" if args.smoke else "")
    j, m = common.write_results(out, name, result, render_markdown(result))
    print("[bench_serve] " + ", ".join(f"{k} {fmt_ratio(result[k])}" for k in TARGETS) + f"; wrote {j} and {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
