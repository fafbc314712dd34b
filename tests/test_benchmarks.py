"""The benchmark scripts run end to end (--smoke, tiny model) and compare like with like. Never timings."""

import json
import re

from helpers import ROOT, run_cli

BENCH = ROOT / "benchmarks"


def test_bench_train_smoke(tiny_model, tmp_path):
    r = run_cli(BENCH / "bench_train.py", "--smoke", "--model", tiny_model, "--batch-size", "4",
                "--sides", "naive", "before", "project", "--precision", "bf16-mixed", "--out", tmp_path,
                "--name", "train_smoke", timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    result = json.loads((tmp_path / "train_smoke.json").read_text())
    md = (tmp_path / "train_smoke.md").read_text()
    assert "| examples/s" in md and "smoke run" in md
    assert result["same_examples"] is True
    runs = {side: result["runs"][side] for side in ("naive", "before", "project")}
    assert all(len(rs) == result["setup"]["repeats"] == 1 for rs in runs.values())
    n, b, p = (runs[s][0] for s in ("naive", "before", "project"))
    # the same timed examples and the same supervised target tokens on every side
    assert n["timed_example_ids"] == b["timed_example_ids"] == p["timed_example_ids"]
    assert len(n["timed_example_ids"]) == 2 * 4 == n["examples"] == p["examples"]
    assert n["supervised_tokens"] == b["supervised_tokens"] == p["supervised_tokens"] > 0
    # the sides differ as described: fixed padding + eager; chat prompt; minimal prompt + supervised logits
    assert all(shape == [4, result["setup"]["max_length"]] for shape in n["batch_shapes"])
    assert n["attn_implementation"] == "eager" and p["attn_implementation"] == "sdpa"
    assert b["prompt_format"] == "chat" and p["prompt_format"] == "minimal" and p["supervised_logits"]
    assert n["tokens_processed"] > b["tokens_processed"] > p["tokens_processed"]
    assert n["real_tokens"] == b["real_tokens"] > p["real_tokens"]  # the system turn is gone
    assert all(len(r["step_times_s"]) == 2 and len(r["losses"]) == 2 for r in (n, b, p))
    assert all(x == x for r in (n, b, p) for x in r["losses"])  # finite, not NaN
    ratios = result["summary"]["ratios_vs_reference"]
    assert result["summary"]["reference"] == "naive" and set(ratios) == {"before", "project"}
    assert result["summary"]["ratios"] == ratios["project"]
    assert result["provenance"]["command"] and result["machine"]["device"] in ("cpu", "cuda")
    # --precision reaches the project side only; naive and before stay as the project had them
    assert (n["autocast"], b["autocast"], p["autocast"]) == ("no", "no", "bf16")
    assert "| precision (weights, autocast) | float32 | float32 | float32, bf16 autocast |" in md
    # --render rebuilds the same table from the measurements alone
    (tmp_path / "train_smoke.md").unlink()
    r = run_cli(BENCH / "bench_train.py", "--render", tmp_path / "train_smoke.json")
    assert r.returncode == 0 and (tmp_path / "train_smoke.md").read_text() == md


def test_bench_generate_smoke(tiny_model, tmp_path):
    r = run_cli(BENCH / "bench_generate.py", "--smoke", "--model", tiny_model, "--out", tmp_path,
                "--name", "generate_smoke", timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    result = json.loads((tmp_path / "generate_smoke.json").read_text())
    md = (tmp_path / "generate_smoke.md").read_text()
    assert "questions/s" in md and "smoke run" in md
    setup, ids, s = result["setup"], result["ids"], result["summary"]
    # the baseline rewrote a prefix of exactly the project's questions
    assert len(ids["project"]) == setup["n"] == s["project"]["questions"] == 40
    assert len(ids["baseline"]) == setup["baseline_n"] == s["baseline"]["questions"] == 8
    assert ids["project"][:8] == ids["baseline"]
    assert set(result["agreement"]) == {"project", "ablation"}
    assert all(a["compared"] == 8 and 0 <= a["rate"] <= 1 for a in result["agreement"].values())
    assert setup["shared_prefix_tokens"] > 0
    # interleaved chunks on every side, covering every question once; the ablation does the project's questions
    assert [c["questions"] for c in s["ablation"]["chunk_times"]] == [c["questions"] for c in
                                                                       s["project"]["chunk_times"]]
    for side, count in (("baseline", 8), ("project", 40)):
        spans = [c["questions"] for c in s[side]["chunk_times"]]
        assert len(spans) >= 2 and spans[0][0] == 0 and spans[-1][1] == count
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_speed_page_figures_are_the_committed_results():
    """docs/speed.md's table quotes benchmarks/results/*.json; a re-run that changes them must update it."""
    from benchmarks.common import fmt_ratio
    page = (ROOT / "docs" / "speed.md").read_text()
    train = json.loads((ROOT / "benchmarks" / "results" / "train_cpu.json").read_text())["summary"]["ratios"]
    gen = json.loads((ROOT / "benchmarks" / "results" / "generate_cpu.json").read_text())["summary"]["ratios"]
    prefix = json.loads((ROOT / "benchmarks" / "results" / "generate_cpu_shared_prefix.json").read_text())
    prefix = prefix["summary"]["ratios"]
    trl = json.loads((ROOT / "benchmarks" / "results" / "train_vs_trl_cpu.json").read_text())
    serve = json.loads((ROOT / "benchmarks" / "results" / "serve_cpu.json").read_text())
    trl_fp32 = json.loads((ROOT / "benchmarks" / "results" / "train_vs_trl_cpu_fp32.json").read_text())
    for figure in (fmt_ratio(train["examples_per_s"]), fmt_ratio(train["peak_memory"]),
                   fmt_ratio(gen["questions_per_s"]), fmt_ratio(gen["ablation_questions_per_s"]),
                   fmt_ratio(prefix["questions_per_s"]), fmt_ratio(prefix["ablation_questions_per_s"]),
                   fmt_ratio(trl["ratio_examples_per_s"]), fmt_ratio(trl["ratio_peak_memory"]),
                   fmt_ratio(trl_fp32["ratio_examples_per_s"]),
                   fmt_ratio(trl["summary"]["ratios_vs_reference"]["project"]["examples_per_s"]
                             / trl["summary"]["ratios_vs_reference"]["before"]["examples_per_s"]),
                   fmt_ratio(serve["throughput_ratio_c32"]), fmt_ratio(serve["latency_ratio_single"])):
        assert figure in page, figure


def test_readme_speed_figures_are_the_committed_results():
    """The README's speed summary quotes three of docs/speed.md's ratios; they too must be the committed ones."""
    from benchmarks.common import fmt_ratio
    section = (ROOT / "README.md").read_text().split("## Speed", 1)[1].split("\n## ", 1)[0]
    results = ROOT / "benchmarks" / "results"
    trl = json.loads((results / "train_vs_trl_cpu.json").read_text())["ratio_examples_per_s"]
    naive = json.loads((results / "train_cpu.json").read_text())["summary"]["ratios"]["examples_per_s"]
    prefix = json.loads((results / "generate_cpu_shared_prefix.json").read_text())["summary"]["ratios"]
    quoted = sorted(m.group(0) for m in re.finditer(r"\d+\.\d\dx", section))
    assert quoted == sorted(fmt_ratio(v) for v in (trl, naive, prefix["questions_per_s"]))


def test_serving_page_figures_are_the_committed_results():
    """docs/serving.md's ratios quote benchmarks/results/serve_cpu.json; a re-run that changes them must update it."""
    from benchmarks.common import fmt_ratio
    page = (ROOT / "docs" / "serving.md").read_text()
    serve = json.loads((ROOT / "benchmarks" / "results" / "serve_cpu.json").read_text())
    for key in ("throughput_ratio_c32", "latency_ratio_single", "engine_throughput_ratio_c32",
                "engine_latency_ratio_single", "engine_batch_of_one_latency_ratio_single", "bf16_throughput_ratio_c32",
                "bf16_latency_ratio_single", "vs_transformers_serve_c32", "vs_transformers_serve_single"):
        assert fmt_ratio(serve[key]) in page, key


def test_bench_train_workers_get_every_setting_of_the_parent(tmp_path):
    """A worker process re-parses what the parent passes it: every option must arrive, or a side silently
    trains with the default (a bf16-mixed benchmark once timed fp32 workers)."""
    import sys
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_train import parse_args, worker_argv
    parent = parse_args(["--model", "m", "--method", "lora", "--batch-size", "4", "--steps", "2", "--warmup", "0",
                         "--data", "d.json", "--max-length", "99", "--pool", "8", "--lr", "0.5", "--seed", "3",
                         "--precision", "bf16-mixed", "--gradient-checkpointing", "--padding-free"])
    argv = worker_argv(parent, "project", 1, tmp_path / "r.json")
    worker = parse_args(argv[2:])
    local = {"sides", "reference", "repeats", "arch", "tokenizer", "smoke", "peak_tflops", "name", "out", "note",
             "render"}
    differ = {k for k, v in vars(parent).items() if not k.startswith("_") and k not in local and vars(worker)[k] != v}
    assert not differ


def test_bench_serve_leaves_every_started_server_to_be_stopped_when_a_later_one_fails(tmp_path, monkeypatch):
    """A side that fails to start must not hide the ones started before it from the caller, who stops them."""
    import sys
    sys.path.insert(0, str(ROOT))
    from benchmarks import bench_serve
    started = []

    class FailsThird:
        def __init__(self, *a, **k):
            if len(started) == 2:
                raise FileNotFoundError("no such command")
            started.append(self)

    monkeypatch.setattr(bench_serve, "Server", FailsThird)
    servers = {}
    try:
        args = bench_serve.parse_args(["--model", "m", "--no-transformers-serve"])
        bench_serve.start_servers("m", args, tmp_path, servers)
    except FileNotFoundError:
        pass
    assert list(servers.values()) == started and len(started) == 2


def test_bench_serve_finds_transformers_beside_the_interpreter(tmp_path, monkeypatch):
    import sys
    sys.path.insert(0, str(ROOT))
    from benchmarks import bench_serve
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "transformers").write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert bench_serve.transformers_cli() == str(tmp_path / "bin" / "transformers")
    (tmp_path / "bin" / "transformers").unlink()
    try:
        bench_serve.transformers_cli()
    except SystemExit as e:
        assert "--no-transformers-serve" in str(e)
    else:
        raise AssertionError("a missing transformers command must stop the benchmark")
