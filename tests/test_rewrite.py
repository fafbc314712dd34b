"""``python -m qrewrite rewrite`` on the tiny smoke-trained run: arguments, files, stdin, LoRA adapters, resume.

The independent command lines run concurrently in one module fixture (each spends most of its time importing
transformers); the resume tests then build on the uninterrupted output of a 400-question file.
"""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE, run_cli, smoke_config

QUESTIONS = [
    "Um who wrote, no, who painted the portrait?",
    "What year did the, uh, the river flood the old town?",
    "How many moons does, I mean, how many rings does the planet have?",
    "Which team won the cup er the league in the first season, of the club?",
    "Where is the \"old\" bridge?",
]
GEN = ["--max-new-tokens", "8"]
BIG_GEN = ["--batch-size", "8", "--max-new-tokens", "8"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def out_lines(stdout: str) -> list[str]:
    assert stdout.endswith("\n") or stdout == "", repr(stdout)
    return stdout.split("\n")[:-1]


def input_files(tmp: Path) -> dict:
    """The same five questions as JSON, JSON Lines, CSV and raw Disfl-QA; -> {format: (path, ids)}."""
    ids = [f"q{i}" for i in range(len(QUESTIONS))]
    files = {}
    files["json"] = write(tmp / "qs.json", json.dumps([{"id": i, "input": q} for i, q in zip(ids, QUESTIONS)]))
    files["jsonl"] = write(tmp / "qs.jsonl", "".join(json.dumps({"id": i, "question": q}) + "\n"
                                                     for i, q in zip(ids, QUESTIONS)))
    csv_rows = "".join(f'{i},"{q.replace(chr(34), chr(34) * 2)}",Clean?\n' for i, q in zip(ids, QUESTIONS))
    files["csv"] = write(tmp / "qs.csv", "id,input,target\n" + csv_rows)
    files["disfl-qa"] = write(tmp / "raw.json", json.dumps(
        {i: {"original": "Clean?", "disfluent": q} for i, q in zip(ids, QUESTIONS)}))
    return {k: (v, ids) for k, v in files.items()}


def big_questions() -> list[dict]:
    """400 distinct questions of varied length (the sample's inputs, then numbered variants)."""
    qs = [r["input"] for f in ("train.json", "valid.json") for r in json.loads((SAMPLE / f).read_text())]
    qs = list(dict.fromkeys(qs))
    qs += [f"{q} Number {i}?" for i, q in enumerate(qs)]
    return [{"id": f"b{i:03d}", "input": q} for i, q in enumerate(qs[:400])]


@pytest.fixture(scope="module")
def lora_run(tiny_model, tmp_path_factory):
    from qrewrite.train.trainer import train
    cfg = smoke_config(tiny_model, tmp_path_factory.mktemp("lora-weights"), method="lora", run_name="tiny-lora",
                       max_steps=2, eval_steps=0, save_steps=0, merge_after=False)
    return train(cfg)


@pytest.fixture(scope="module")
def runs(tiny_run, lora_run, tmp_path_factory):
    """Every independent rewrite command line, run concurrently: {name: (CompletedProcess, output or None)}."""
    tmp = tmp_path_factory.mktemp("rewrite")
    big = tmp / "big.jsonl"
    write(big, "".join(json.dumps(r) + "\n" for r in big_questions()))
    files = input_files(tmp)
    other_partial = tmp / "other.jsonl.partial"
    write(other_partial, json.dumps({"id": "not-q0", "input": "x", "prediction": "y"}) + "\n")
    calls = {
        # questions as arguments are answered first, then --interactive reads stdin (one process for both)
        "args+interactive": (["rewrite", "--model", tiny_run, *QUESTIONS[:3], "--interactive", *GEN],
                             {"input": f"{QUESTIONS[3]}\n\n   \n  {QUESTIONS[4]}  \n{QUESTIONS[0]}"}, None),
        "lora": (["rewrite", "--model", lora_run / "adapter", QUESTIONS[0], *GEN], {}, None),
        "big": (["rewrite", "--model", tiny_run, "--input", big, "--output", tmp / "big-out.jsonl", *BIG_GEN], {},
                tmp / "big-out.jsonl"),
        "other_partial": (["rewrite", "--model", tiny_run, "--input", files["json"][0],
                           "--output", tmp / "other.jsonl", *GEN], {}, tmp / "other.jsonl"),
    }
    for fmt, (path, _) in files.items():
        calls[fmt] = (["rewrite", "--model", tiny_run, "--input", path, "--output", tmp / f"out-{fmt}.jsonl", *GEN],
                      {}, tmp / f"out-{fmt}.jsonl")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_cli, *args, **kw) for name, (args, kw, _) in calls.items()}
        results = {name: (f.result(), calls[name][2]) for name, f in futures.items()}
    results["_tmp"] = tmp
    return results


def ok(result):
    r, out = result
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stderr}"
    return r, out


@pytest.fixture(scope="module")
def in_process(tiny_run):
    from qrewrite.infer.generate import rewrite_batch
    from qrewrite.models import load_for_inference
    model, tok, _ = load_for_inference(str(tiny_run))
    return lambda questions: rewrite_batch(model, tok, questions, max_new_tokens=8)


def test_questions_as_arguments(runs, in_process):
    r, _ = ok(runs["args+interactive"])
    lines = out_lines(r.stdout)
    assert len(lines) == 3 + 3, r.stdout
    assert lines[:3] == in_process(QUESTIONS[:3])  # one line each: the batch, rewritten as in-process


def test_interactive_one_line_per_question_until_eof(runs, in_process):
    r, _ = ok(runs["args+interactive"])
    lines = out_lines(r.stdout)[3:]
    # blank input lines are skipped, surrounding spaces stripped; the last line needs no newline
    assert lines == [in_process([q])[0] for q in (QUESTIONS[3], QUESTIONS[4], QUESTIONS[0])]
    assert "Type a question" not in r.stderr  # the prompt is only for a terminal


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "disfl-qa"])
def test_file_modes(runs, fmt):
    r, out = ok(runs[fmt])
    rows = read_rows(out)
    assert [list(row) for row in rows] == [["id", "input", "prediction"]] * len(QUESTIONS)
    assert [row["id"] for row in rows] == [f"q{i}" for i in range(len(QUESTIONS))]
    assert [row["input"] for row in rows] == QUESTIONS
    assert all(isinstance(row["prediction"], str) for row in rows)
    assert not out.with_name(out.name + ".partial").exists()
    # every format yields the same predictions for the same questions
    assert [row["prediction"] for row in rows] == [row["prediction"] for row in read_rows(runs["json"][1])]
    assert f"written: {out} ({len(QUESTIONS)} questions)" in r.stderr


def test_lora_adapter_as_model(runs, lora_run):
    assert (lora_run / "adapter" / "adapter_config.json").exists()
    assert not (lora_run / "model").exists()  # merge_after=False: only the adapter can serve
    r, _ = ok(runs["lora"])
    assert len(out_lines(r.stdout)) == 1


def test_partial_from_another_input_refused(runs):
    r, out = runs["other_partial"]
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "other.jsonl.partial line 1 (id 'not-q0') does not match input record 1 (id 'q0')" in r.stderr
    assert "another input file" in r.stderr
    assert not out.exists()
    assert out.with_name(out.name + ".partial").read_text().count("\n") == 1  # left as it was


# ------------------------------------------------------------------------------------------------ resume

@pytest.fixture(scope="module")
def big(runs):
    r, out = ok(runs["big"])
    data = out.read_bytes()
    assert data.count(b"\n") == 400
    assert [row["id"] for row in read_rows(out)] == [f"b{i:03d}" for i in range(400)]
    return runs["_tmp"] / "big.jsonl", data


def test_resume_after_torn_partial(big, tiny_run, tmp_path):
    src, expected = big
    lines = expected.splitlines(keepends=True)
    out = tmp_path / "resumed.jsonl"
    partial = tmp_path / "resumed.jsonl.partial"
    k = 37
    partial.write_bytes(b"".join(lines[:k]) + lines[k][:len(lines[k]) // 2])
    r = run_cli("rewrite", "--model", tiny_run, "--input", src, "--output", out, *BIG_GEN)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == expected
    assert not partial.exists()


def _start_and_kill(cmd, out: Path, partial: Path) -> None:
    """Start ``cmd``; SIGKILL it as soon as ``partial`` holds a complete line. Retries (a fresh start) when the
    process finished before it could be killed."""
    for attempt in range(3):
        out.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        with open(out.with_name("stderr.txt"), "wb") as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                    stdout=subprocess.DEVNULL, stderr=err)
            try:
                while proc.poll() is None:
                    try:
                        if partial.stat().st_size and b"\n" in partial.read_bytes():
                            proc.send_signal(signal.SIGKILL)
                            break
                    except FileNotFoundError:
                        pass
                    time.sleep(0.002)
                proc.wait(timeout=600)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if proc.returncode == -signal.SIGKILL:
            return
        assert proc.returncode == 0, out.with_name("stderr.txt").read_text()
    pytest.fail("the rewrite finished three times before the test could kill it")


def test_resume_after_sigkill(big, tiny_run, tmp_path):
    src, expected = big
    out = tmp_path / "killed.jsonl"
    partial = tmp_path / "killed.jsonl.partial"
    cmd = [sys.executable, "-m", "qrewrite", "rewrite", "--model", str(tiny_run), "--input", str(src),
           "--output", str(out), *BIG_GEN]
    _start_and_kill(cmd, out, partial)
    assert not out.exists()  # nothing that looks complete
    done = partial.read_bytes()
    assert 0 < done.count(b"\n") < 400
    assert expected.startswith(done[:done.rfind(b"\n") + 1])  # what was written so far is right
    r = run_cli(*cmd[3:])
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == expected
    assert not partial.exists()
