"""``--engine ctranslate2``: a run's model converted once (cached, rebuilt when the weights change), prompted with
the transformers path's token ids, rewriting as the transformers engine does; ``qrewrite export``; the refusals."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT, SAMPLE, run_cli

ctranslate2 = pytest.importorskip("ctranslate2")

QUESTIONS = [r["input"] for r in json.loads((SAMPLE / "valid.json").read_text())][:24]
MAX_NEW = 12


@pytest.fixture(scope="module")
def lively_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run whose weights are large and random, so that its greedy rewrites differ by question."""
    import torch
    from safetensors.torch import load_file, save_file
    run = tmp_path_factory.mktemp("ct2") / "lively-run"
    shutil.copytree(tiny_run, run)
    weights = run / "model" / "model.safetensors"
    tensors = load_file(weights)
    gen = torch.Generator().manual_seed(0)
    save_file({k: (torch.randn(v.shape, generator=gen) * 0.3).to(v.dtype) if v.dim() > 1 else v
               for k, v in tensors.items()}, weights, metadata={"format": "pt"})
    return run


def rewriters(run, **kwargs):
    from qrewrite.infer.rewriter import load_rewriter
    return (load_rewriter(str(run), max_new_tokens=MAX_NEW, precision="fp32", **kwargs),
            load_rewriter(str(run), max_new_tokens=MAX_NEW, engine="ctranslate2", quantization="float32", **kwargs))


def test_same_prompt_ids_and_same_rewrites_as_the_transformers_engine(lively_run):
    from qrewrite.infer.generate import prompt_ids
    hf, ct2 = rewriters(lively_run)
    assert (hf.engine, ct2.engine) == ("transformers", "ctranslate2")
    ids = prompt_ids(hf.tokenizer, QUESTIONS, hf.prompt)
    assert [ct2.tokenizer.convert_tokens_to_ids(t) for t in ct2.prompt_tokens(QUESTIONS)] == ids
    expected = hf.rewrite(QUESTIONS)
    assert len(set(expected)) > len(QUESTIONS) // 2  # the answers depend on the question
    got = ct2.rewrite(QUESTIONS)
    assert sum(a == b for a, b in zip(got, expected)) >= 0.9 * len(QUESTIONS), list(zip(got, expected))
    assert ct2.rewrite_batch(QUESTIONS[:3]) == got[:3]  # a batch as given, streamed in input order alike
    assert [t for _, t in sorted(ct2.stream(QUESTIONS))] == got


def test_beam_search_on_both_engines(lively_run):
    from qrewrite.infer.decoding import Decoding
    hf, ct2 = rewriters(lively_run, decoding=Decoding(num_beams=3))
    expected, got = hf.rewrite(QUESTIONS[:8]), ct2.rewrite(QUESTIONS[:8])
    assert sum(a == b for a, b in zip(got, expected)) >= 6, list(zip(got, expected))


def test_two_replicas_split_a_batch_and_rewrite_exactly_as_one(lively_run):
    from qrewrite.infer.rewriter import load_rewriter
    one = load_rewriter(str(lively_run), max_new_tokens=MAX_NEW, engine="ctranslate2", quantization="float32")
    two = load_rewriter(str(lively_run), max_new_tokens=MAX_NEW, engine="ctranslate2", quantization="float32",
                        replicas=2, threads=1)
    assert (two.replicas, two.generator.num_generators) == (2, 2)
    calls = []
    generate = two.generator.generate_batch
    two.generator = type("Spy", (), {"generate_batch": lambda _, tokens, **kw: calls.append(kw) or
                                     generate(tokens, **kw)})()
    assert two.rewrite_batch(QUESTIONS[:7]) == one.rewrite_batch(QUESTIONS[:7])
    assert calls[-1]["max_batch_size"] == 4  # 7 questions: 4 + 3, one part per replica
    assert two.rewrite_batch(QUESTIONS[:1]) == one.rewrite_batch(QUESTIONS[:1])


def test_conversion_is_cached_and_rebuilt_when_the_weights_change(lively_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from qrewrite.infer.ct2 import STAMP, converted_model
    run = tmp_path / "run"
    shutil.copytree(lively_run, run, ignore=shutil.ignore_patterns("ctranslate2-*"))
    first = converted_model(run / "model", "int8")
    assert first == run / "ctranslate2-int8" and (first / "model.bin").is_file()
    stamp = json.loads((first / STAMP).read_text())
    mtime = (first / "model.bin").stat().st_mtime_ns
    assert converted_model(run / "model", "int8") == first and (first / "model.bin").stat().st_mtime_ns == mtime
    tensors = load_file(run / "model" / "model.safetensors")
    name = next(k for k, v in tensors.items() if v.dim() > 1)
    tensors[name] = tensors[name] * 2
    save_file(tensors, run / "model" / "model.safetensors", metadata={"format": "pt"})
    converted_model(run / "model", "int8")
    assert json.loads((first / STAMP).read_text())["weights_fingerprint"] != stamp["weights_fingerprint"]
    assert not [p for p in run.glob(".ctranslate2-*") if p.is_dir()]  # no temporary directory left behind


def test_two_processes_converting_one_model_at_once_convert_it_once(lively_run, tmp_path):
    """Servers started together on one model (bench_serve starts several) used to race in the conversion cache
    (one deleting what the other was renaming into place); the second now waits and reuses the first's."""
    run = tmp_path / "run"
    shutil.copytree(lively_run, run, ignore=shutil.ignore_patterns("ctranslate2-*"))
    from qrewrite.infer.ct2 import STAMP
    code = ("import sys; from qrewrite.infer.ct2 import STAMP, converted_model; "
            "out = converted_model(sys.argv[1], 'int8'); print(out / STAMP)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run / "model")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for _ in range(3)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    assert all(rc == 0 for rc, _, _ in results), [err[-2000:] for _, _, err in results]
    assert {out.strip() for _, out, _ in results} == {str(run / "ctranslate2-int8" / STAMP)}
    assert (run / "ctranslate2-int8" / "model.bin").is_file()
    assert not [p for p in run.glob(".ctranslate2-int8.*") if p.is_dir()]  # no temporary directory left behind


def test_what_the_engine_cannot_do_is_a_clear_error(lively_run, tmp_path):
    from qrewrite.errors import ConfigError, ModelLoadError
    from qrewrite.infer.decoding import Decoding
    from qrewrite.infer.rewriter import load_rewriter
    with pytest.raises(ConfigError, match="--copy-bonus.*--engine transformers"):
        load_rewriter(str(lively_run), engine="ctranslate2", decoding=Decoding(copy_bonus=1.0))
    with pytest.raises(ConfigError, match="--order-bonus.*--engine transformers"):
        load_rewriter(str(lively_run), engine="ctranslate2", decoding=Decoding(order_bonus=1.0))
    for baseline in ("copy", "rules"):
        with pytest.raises(ConfigError, match=f"--model {baseline} has none"):
            load_rewriter(baseline, engine="ctranslate2")
    with pytest.raises(ConfigError, match="--engine must be one of"):
        load_rewriter(str(lively_run), engine="onnx")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    # weights that are whole (an empty safetensors file): an adapter directory, not a broken one
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes((2).to_bytes(8, "little") + b"{}")
    with pytest.raises(ConfigError, match="LoRA adapter"):
        load_rewriter(str(tmp_path / "adapter"), engine="ctranslate2")
    with pytest.raises((ConfigError, ModelLoadError), match="no-model"):
        load_rewriter(str(tmp_path / "no-model"), engine="ctranslate2")


def test_a_compute_type_the_cpu_lacks_is_refused_naming_what_it_has(lively_run, monkeypatch):
    from qrewrite.errors import ConfigError
    from qrewrite.infer.rewriter import load_rewriter
    monkeypatch.setattr(ctranslate2, "get_supported_compute_types", lambda device: {"float32", "int8"})
    with pytest.raises(ConfigError,
                       match="--quantization bfloat16: this CPU.s CTranslate2 computes only float32, int8"):
        load_rewriter(str(lively_run), engine="ctranslate2", quantization="bfloat16")
    assert load_rewriter(str(lively_run), engine="ctranslate2").quantization == "int8"  # the default: what it has


def test_export_loads_in_plain_ctranslate2_and_rewrites_the_same(lively_run, tmp_path):
    from transformers import AutoTokenizer
    out = tmp_path / "export"
    result = run_cli("export", "--format", "ctranslate2", str(lively_run), str(out), "--quantization", "float32")
    assert result.returncode == 0, result.stderr
    assert {"model.bin", "config.json", "tokenizer.json", "qrewrite.json"} <= {p.name for p in out.iterdir()}
    # what a deployment without qrewrite does: the saved chat template, the end-of-turn token, greedy
    tokenizer = AutoTokenizer.from_pretrained(out)
    generator = ctranslate2.Generator(str(out), compute_type="float32")
    settings = json.loads((out / "qrewrite.json").read_text())
    system = [{"role": "system", "content": settings["system_prompt"]}] if settings["prompt_format"] == "chat" else []
    prompts = [tokenizer.apply_chat_template(system + [{"role": "user", "content": q}], add_generation_prompt=True,
                                             tokenize=False) for q in QUESTIONS[:6]]
    tokens = [tokenizer.convert_ids_to_tokens(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    results = generator.generate_batch(tokens, max_length=MAX_NEW, end_token="<|im_end|>",
                                       include_prompt_in_result=False)
    plain = [tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in results]
    _, ct2 = rewriters(lively_run)
    assert plain == ct2.rewrite(QUESTIONS[:6])
    again = run_cli("export", "--format", "ctranslate2", str(lively_run), str(tmp_path))  # not an export: refused
    assert again.returncode == 2 and "not an export of qrewrite" in again.stderr


def test_evaluate_records_the_engine(lively_run, tmp_path):
    for engine in ("transformers", "ctranslate2"):
        out = tmp_path / engine
        r = run_cli("evaluate", "--model", str(lively_run), "--data", str(SAMPLE / "valid.json"), "--out", str(out),
                    "--limit", "6", "--max-new-tokens", str(MAX_NEW), "--engine", engine)
        assert r.returncode == 0, r.stderr
        assert json.loads((out / "metrics.json").read_text())["eval"]["engine"] == engine
    recorded = json.loads((tmp_path / "ctranslate2" / "metrics.json").read_text())["eval"]
    assert recorded["quantization"] in ("int8", "int8_bfloat16") and recorded["replicas"] == 1


def test_replicas_split_a_transformers_batch_too_each_on_its_own_threads(lively_run, tmp_path):
    import threading

    import torch

    from qrewrite.infer import generate
    from qrewrite.infer.rewriter import load_rewriter
    one = load_rewriter(str(lively_run), max_new_tokens=MAX_NEW, precision="fp32")
    two = load_rewriter(str(lively_run), max_new_tokens=MAX_NEW, precision="fp32", replicas=2, threads=1)
    seen = []  # (thread, torch threads, rows) of every part generated
    real = generate.generate_ids

    def spy(model, tokenizer, rows, **kwargs):
        seen.append((threading.current_thread().name, torch.get_num_threads(), len(rows)))
        return real(model, tokenizer, rows, **kwargs)

    generate.generate_ids = spy
    try:
        got = two.rewrite_batch(QUESTIONS[:9])
        streamed = two.rewrite(QUESTIONS)
    finally:
        generate.generate_ids = real
    assert got == one.rewrite_batch(QUESTIONS[:9]) and streamed == one.rewrite(QUESTIONS)
    assert sorted(n for _, _, n in seen[:2]) == [4, 5]  # 9 rows: parts of 5 and 4, at once
    assert all(name.startswith("qrewrite-replica") and threads == 1 for name, threads, _ in seen)
    r = run_cli("evaluate", "--model", "copy", "--data", str(SAMPLE / "valid.json"), "--out",
                str(tmp_path / "out"), "--limit", "2", "--replicas", "2")
    assert r.returncode == 2 and "--replicas" in r.stderr and "copy" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_batches_on_ctranslate2_and_takes_a_lone_question_to_bf16_prompt_lookup(lively_run):
    import torch

    from qrewrite.serve.engine import load_backend
    plain = load_backend(str(lively_run), max_new_tokens=MAX_NEW, engine="ctranslate2", quantization="float32")
    mixed = load_backend(str(lively_run), max_new_tokens=MAX_NEW, engine="ctranslate2", quantization="float32",
                         lone_question="prompt-lookup-bf16")
    bf16 = load_backend(str(lively_run), max_new_tokens=MAX_NEW, precision="bf16")
    assert (plain.lone_question, mixed.lone_question) == ("batch of one", "prompt lookup (bfloat16)")
    assert next(mixed.lone.model.parameters()).dtype == torch.bfloat16
    assert plain.rewrite_one(QUESTIONS[0]) == plain.rewrite([QUESTIONS[0]])[0]
    assert [mixed.rewrite_one(q) for q in QUESTIONS[:6]] == [bf16.rewrite_one(q) for q in QUESTIONS[:6]]
    assert mixed.rewrite(QUESTIONS[:6]) == plain.rewrite(QUESTIONS[:6])  # batches: CTranslate2 still
