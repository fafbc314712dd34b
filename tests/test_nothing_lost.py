"""Nothing lost, nothing silently wrong (issue 42): one run per directory, SIGTERM that saves like Ctrl-C,
non-finite numbers and losses that fail, --resume past a damaged checkpoint, outputs that never clobber an input
or a special file, an evaluation replaced only when asked and only once the new one is complete, and every
model-directory problem as one line.

The signal and lock cases run real ``python -m qrewrite`` processes; everything else runs the CLI in-process (one
``error:`` line, exit status 2) on the tiny random Qwen2 or the rule-based baseline."""

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE, smoke_config

from qrewrite.cli.main import main
from qrewrite.config import load_average_config, load_config, save_config
from qrewrite.errors import ConfigError, Interrupted, ModelLoadError, RunStateError
from qrewrite.run import Run
from qrewrite.train.trainer import train

VALID = SAMPLE / "valid.json"
TRAIN = SAMPLE / "train.json"


def cli(capsys, *args, cwd=None, monkeypatch=None):
    """``python -m qrewrite ARGS`` in this process: (exit status, stderr)."""
    if cwd is not None:
        monkeypatch.chdir(cwd)
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    cli.out = captured.out
    return code, captured.err


def one_error(code, err, *patterns):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for pattern in patterns:
        assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"


class Proc:
    """A ``python -m qrewrite`` process whose stderr is read as it comes (to signal it at the right moment)."""

    def __init__(self, *args):
        self.p = subprocess.Popen([sys.executable, "-m", "qrewrite", *map(str, args)], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines: queue.Queue = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_for(self, what, timeout=300):
        """Until ``what()`` is true (a callable) or a stderr line contains ``what`` (a string)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.p.poll() is None, "".join(self.err)
            if callable(what):
                if what():
                    return
                time.sleep(0.2)
                continue
            try:
                if what in self.lines.get(timeout=1):
                    return
            except queue.Empty:
                pass
        raise AssertionError(f"timed out waiting for {what!r}:\n{''.join(self.err)}")

    def stop(self, sig, timeout=300) -> tuple[int, str]:
        self.p.send_signal(sig)
        code = self.p.wait(timeout)
        time.sleep(0.2)  # the reader thread drains the pipe
        return code, "".join(self.err)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def train_args(tiny_model, root, run_name, *extra):
    return ["train", "--config", "configs/smoke.yaml", "--model", tiny_model, "--output-root", root,
            "--run-name", run_name, "--train-file", TRAIN, "--valid-file", VALID, "--eval-steps", "0", *extra]


# ---- 2 / 4: one run per directory; SIGTERM saves like Ctrl-C ---------------------------------------------------

def test_a_live_run_is_refused_and_sigterm_saves_a_checkpoint_to_resume(tiny_model, tmp_path, capsys):
    first = Proc(*train_args(tiny_model, tmp_path, "conc", "--max-steps", "100000", "--save-steps", "0"))
    try:
        run = Run(tmp_path / "conc")
        first.wait_for(lambda: run.status == "running")
        for extra in ([], ["--resume"], ["--learning-rate", "1e-4", "--max-steps", "4"]):
            code, err = cli(capsys, *train_args(tiny_model, tmp_path, "conc", *extra))
            one_error(code, err, rf"{run.path} is in use by another training \(pid {first.p.pid}\)")
        assert load_config(run.config_file).max_steps == 100000  # the second's config never written
        code, err = first.stop(signal.SIGTERM)
    finally:
        first.kill()
    assert code == 143, err
    assert "Traceback" not in err
    info = run.info()
    assert info["status"] == "interrupted" and 0 < info["steps"] < 100000
    assert (run.path / f"checkpoint-{info['steps']}").is_dir() and not run.model_dir.exists()
    resume = re.search(r"Continue with: (.*--resume)$", err, re.M)
    assert resume and "--run-name conc" in resume.group(1), err
    assert (run.path / "run.lock").read_text() == ""  # released cleanly: no pid left
    cfg = smoke_config(tiny_model, tmp_path, run_name="conc", eval_steps=0, save_steps=0,
                       max_steps=info["steps"] + 2)
    train(cfg, resume=True)
    assert run.info()["status"] == "complete" and run.info()["steps"] == info["steps"] + 2


def test_the_lock_of_a_killed_training_is_taken_over(tiny_model, tmp_path, capsys):
    first = Proc(*train_args(tiny_model, tmp_path, "killed", "--max-steps", "100000", "--save-steps", "1"))
    run = Run(tmp_path / "killed")
    try:
        first.wait_for(lambda: len(run.checkpoints()) >= 2)  # the older one complete for sure
    finally:
        first.kill()  # SIGKILL: nothing of it runs again; its pid stays in run.lock, the kernel's lock is gone
    assert (run.path / "run.lock").read_text().strip() == str(first.p.pid) and run.status == "running"
    steps = int(run.checkpoints()[0].name.split("-")[1])  # the newest, perhaps cut short by the kill
    train(smoke_config(tiny_model, tmp_path, run_name="killed", eval_steps=0, save_steps=1,
                       max_steps=steps + 1), resume=True)
    err = capsys.readouterr().err
    assert f"left locked by process {first.p.pid}, which is no longer running; taking it over" in err
    assert run.info()["status"] == "complete"


def test_a_run_that_fails_before_writing_leaves_no_directory(tmp_path):
    with pytest.raises(ModelLoadError):
        train(smoke_config(tmp_path / "no-model", tmp_path, run_name="never"))
    assert not (tmp_path / "never").exists()


# ---- 3: non-finite numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("learning_rate", ".inf"), ("weight_decay", ".inf"), ("learning_rate", ".nan"),
                                         ("max_grad_norm", ".inf"), ("num_epochs", ".nan"), ("warmup_ratio", "-.inf"),
                                         ("lora_dropout", ".nan"), ("seed", "4294967296"), ("seed", "-1"),
                                         ("max_steps", "1e400"), ("max_steps", "99999999999")])
def test_non_finite_or_out_of_range_config_numbers_are_refused(tmp_path, field, value):
    config = tmp_path / "c.yaml"
    config.write_text(f"{field}: {value}\n")
    with pytest.raises(ConfigError, match=field):
        load_config(config)
    with pytest.raises(ConfigError, match=field):
        load_config(None, {field: value.replace(".inf", "inf").replace(".nan", "nan")})


def test_a_loss_that_becomes_nan_fails_the_run(tiny_model, tmp_path, capsys):
    code, err = cli(capsys, *train_args(tiny_model, tmp_path, "diverged", "--learning-rate", "1e30",
                                        "--max-steps", "6", "--save-steps", "0"))
    one_error(code, err, r"training diverged: the loss became (nan|inf) at step \d", "marked failed")
    run = Run(tmp_path / "diverged")
    assert run.status == "failed" and "diverged" in run.info()["error"]
    assert not run.model_dir.exists() and "run complete" not in cli.out


# ---- 7: --resume past a damaged checkpoint ------------------------------------------------------------------

def _truncate(name, keep=None):
    def damage(checkpoint: Path):
        data = (checkpoint / name).read_bytes()
        (checkpoint / name).write_bytes(data[:len(data) // 2 if keep is None else keep])
    return damage


DAMAGE = {
    "truncated model.safetensors": _truncate("model.safetensors"),
    "model.safetensors cut inside its header": _truncate("model.safetensors", 20),
    "empty model.safetensors": _truncate("model.safetensors", 0),
    "truncated optimizer.pt": _truncate("optimizer.pt"),
    "truncated scheduler.pt": _truncate("scheduler.pt"),
    "truncated rng_state.pth": _truncate("rng_state.pth"),
    "missing trainer_state.json": lambda c: (c / "trainer_state.json").unlink(),
    "corrupt trainer_state.json": _truncate("trainer_state.json", 30),
    "missing model.safetensors": lambda c: (c / "model.safetensors").unlink(),
    "missing optimizer.pt": lambda c: (c / "optimizer.pt").unlink(),
}


@pytest.fixture
def copied_run(tiny_run, tmp_path):
    """The session's 6-step run (checkpoint-3 and checkpoint-6) copied, its final model removed (so that
    --resume has something to do), its config pointing at the copy."""
    run = Run(shutil.copytree(tiny_run, tmp_path / tiny_run.name))
    shutil.rmtree(run.model_dir)
    cfg = load_config(run.config_file)
    cfg.output_root = str(tmp_path)
    save_config(cfg, run.config_file)
    info = run.info()
    info["status"] = "interrupted"
    run.write_info(info)
    return run


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_falls_back_to_the_newest_intact_checkpoint(copied_run, damage, capsys):
    DAMAGE[damage](copied_run.path / "checkpoint-6")
    assert copied_run.intact_checkpoint() == str(copied_run.path / "checkpoint-3")
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("warning: --resume: checkpoint-6 is damaged")
    assert (copied_run.path / "damaged-checkpoint-6").is_dir()  # set aside, not deleted
    assert [p.name for p in copied_run.checkpoints()] == ["checkpoint-3"]


def test_resume_from_the_intact_checkpoint_finishes_the_run(copied_run, tiny_model, capsys):
    DAMAGE["truncated model.safetensors"](copied_run.path / "checkpoint-6")
    cfg = load_config(copied_run.config_file, {"max_steps": 7})
    train(cfg, resume=True)
    assert "resuming from checkpoint-3" in capsys.readouterr().err
    info = copied_run.info()
    assert info["status"] == "complete" and info["steps"] == 7
    assert info["resumes"][-1]["from_checkpoint"] == "checkpoint-3"


def test_resume_with_no_intact_checkpoint_is_one_error_and_moves_nothing(copied_run, capsys, monkeypatch):
    DAMAGE["truncated model.safetensors"](copied_run.path / "checkpoint-6")
    DAMAGE["missing trainer_state.json"](copied_run.path / "checkpoint-3")
    cfg = load_config(copied_run.config_file)
    code, err = cli(capsys, "train", "--config", copied_run.config_file, "--resume")
    one_error(code, err, "no intact checkpoint", r"checkpoint-6 is damaged \(model.safetensors is truncated",
              r"checkpoint-3 is damaged \(trainer_state.json is missing")
    assert [p.name for p in copied_run.checkpoints()] == ["checkpoint-6", "checkpoint-3"]
    assert cfg.run_name == copied_run.name


def test_resume_with_a_corrupt_run_json_keeps_it_and_goes_on(copied_run, capsys):
    copied_run.info_file.write_text('{"status": "runn')
    train(load_config(copied_run.config_file, {"max_steps": 7}), resume=True)
    assert "run.json is damaged" in capsys.readouterr().err
    assert copied_run.info()["status"] == "complete"
    assert (copied_run.path / "run.json.damaged").read_text() == '{"status": "runn'


# ---- 1 / 5: outputs never clobber inputs or special files ---------------------------------------------------

@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("id,question\n1,what year no which city hosted it?\n2,who um who wrote it?\n")
    return path


@pytest.mark.parametrize("spelling", ["same", "dot", "dotdot", "symlink", "hardlink"])
def test_rewrite_output_that_is_the_input_is_refused(questions, spelling, capsys, monkeypatch):
    before = questions.read_bytes()
    d = questions.parent
    output = {"same": "q.csv", "dot": "./q.csv", "dotdot": f"../{d.name}/q.csv", "symlink": "link.csv",
              "hardlink": "hard.csv"}[spelling]
    if spelling == "symlink":
        (d / "link.csv").symlink_to("q.csv")
    if spelling == "hardlink":
        os.link(questions, d / "hard.csv")
    code, err = cli(capsys, "rewrite", "--model", "rules", "--input", "q.csv", "--output", output, cwd=d,
                    monkeypatch=monkeypatch)
    one_error(code, err, "is the input file", "would destroy the input")
    assert questions.read_bytes() == before and not list(d.glob("*.partial"))


def test_rewrite_writes_through_a_symlinked_output(questions, capsys, monkeypatch):
    d = questions.parent
    (d / "target.jsonl").write_text("old\n")
    (d / "out.jsonl").symlink_to("target.jsonl")
    code, err = cli(capsys, "rewrite", "--model", "rules", "--input", "q.csv", "--output", "out.jsonl", cwd=d,
                    monkeypatch=monkeypatch)
    assert code == 0, err
    assert (d / "out.jsonl").is_symlink()  # still a link; its target got the rewrite
    assert [json.loads(line)["id"] for line in (d / "target.jsonl").read_text().splitlines()] == ["1", "2"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "partial-is-a-directory"])
def test_special_outputs_are_refused_before_any_work(questions, kind, capsys, monkeypatch):
    d = questions.parent
    output = {"fifo": d / "fifo", "directory": d / "adir", "device": Path("/dev/null"),
              "partial-is-a-directory": d / "p.jsonl"}[kind]
    if kind == "fifo":
        os.mkfifo(output)
    if kind == "directory":
        output.mkdir()
    if kind == "partial-is-a-directory":
        (d / "p.jsonl.partial").mkdir()
    # a model that does not exist: the output is judged first, before anything is loaded
    code, err = cli(capsys, "rewrite", "--model", d / "no-such-model", "--input", questions, "--output", output)
    one_error(code, err, "directory|not a regular file")
    assert "no-such-model" not in err


@pytest.mark.parametrize("kind", ["out-is-a-file", "metrics-is-a-fifo", "out-holds-the-data"])
def test_evaluate_out_that_would_clobber_is_refused(tmp_path, kind, capsys):
    out = tmp_path / "eval"
    data = VALID
    if kind == "out-is-a-file":
        out.write_text("mine\n")
    if kind == "metrics-is-a-fifo":
        out.mkdir()
        os.mkfifo(out / "metrics.json")
    if kind == "out-holds-the-data":
        out.mkdir()
        data = shutil.copy(VALID, out / "predictions.jsonl")
    code, err = cli(capsys, "evaluate", "--model", "rules", "--data", data, "--out", out)
    one_error(code, err, "--out")
    if kind == "out-holds-the-data":
        assert Path(data).read_bytes() == VALID.read_bytes()


def test_export_into_the_model_or_a_file_is_refused(tiny_run, tmp_path, capsys):
    (tmp_path / "file").write_text("mine\n")
    for out in (tiny_run, tiny_run / "model", tmp_path / "file"):
        code, err = cli(capsys, "export", "--format", "ctranslate2", tiny_run, out)
        one_error(code, err, "OUT")
    assert (tmp_path / "file").read_text() == "mine\n" and (tiny_run / "model" / "config.json").is_file()


def test_prepare_never_overwrites_its_source(tmp_path, capsys):
    source = shutil.copy(TRAIN, tmp_path / "train.json")
    before = Path(source).read_bytes()
    code, err = cli(capsys, "prepare", "--source", source, "--out", tmp_path)
    one_error(code, err, "is the input file")
    assert Path(source).read_bytes() == before


# ---- 6: an evaluation replaced only when asked, and only once the new one is complete ---------------------------

def test_evaluation_of_other_data_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli(capsys, "evaluate", "--model", "rules", "--data", VALID, "--out", out, "--train-data", TRAIN)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for model, data in (("rules", TRAIN), ("copy", VALID)):
        code, err = cli(capsys, "evaluate", "--model", model, "--data", data, "--out", out)
        one_error(code, err, "holds an evaluation of rules on", "--overwrite")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # the same model on the same data (another --limit, a rerun) replaces it
    assert cli(capsys, "evaluate", "--model", "rules", "--data", VALID, "--out", out, "--limit", "3")[0] == 0
    assert json.loads((out / "metrics.json").read_text())["run"]["n_examples"] == 3
    assert not (out / "train_io.json").exists()  # the older evaluation's, not this one's
    assert cli(capsys, "evaluate", "--model", "copy", "--data", TRAIN, "--out", out, "--overwrite")[0] == 0
    assert json.loads((out / "metrics.json").read_text())["run"]["model_path"] == "copy"


N_MANY = 1000


@pytest.fixture(scope="module")
def many_questions(tmp_path_factory) -> Path:
    """Enough questions that the tiny model takes a while: a process can be signalled mid-way."""
    path = tmp_path_factory.mktemp("data") / "many.json"
    path.write_text(json.dumps([{"id": f"m{i}", "input": f"What year no which city {i} hosted the games?",
                                 "target": f"Which city {i} hosted the games?"} for i in range(N_MANY)]))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_an_interrupted_evaluation_leaves_the_old_one_intact(tiny_model, many_questions, tmp_path, sig, capsys):
    out = tmp_path / "eval"
    code, err = cli(capsys, "evaluate", "--model", tiny_model, "--data", many_questions, "--out", out, "--limit",
                    "4", "--max-new-tokens", "4")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = Proc("evaluate", "--model", tiny_model, "--data", many_questions, "--out", out, "--batch-size", "4",
                "--max-new-tokens", "2")
    try:
        proc.wait_for(" q (")  # the first progress line: "rewriting N questions: k/N q (10 %)"
        code, err = proc.stop(sig)
    finally:
        proc.kill()
    assert code == (143 if sig == signal.SIGTERM else 130), err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp file either


# ---- 4 / 7: Ctrl-C and SIGTERM in rewrite --input -----------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_an_interrupted_rewrite_keeps_its_finished_lines_and_continues(tiny_model, many_questions, tmp_path, sig,
                                                                       capsys):
    out = tmp_path / "out.jsonl"
    out.write_text("an older output\n")
    partial = tmp_path / "out.jsonl.partial"
    proc = Proc("rewrite", "--model", tiny_model, "--input", many_questions, "--output", out, "--batch-size", "4",
                "--max-new-tokens", "2")
    try:
        proc.wait_for(lambda: partial.exists() and partial.stat().st_size > 0)
        code, err = proc.stop(sig)
    finally:
        proc.kill()
    assert code == (143 if sig == signal.SIGTERM else 130), err
    assert "Traceback" not in err
    n = int(re.search(rf"interrupted: (\d+) of {N_MANY} questions written to .*out\.jsonl\.partial", err).group(1))
    assert len(partial.read_text().splitlines()) == n > 0 and out.read_text() == "an older output\n"
    code, err = cli(capsys, "rewrite", "--model", tiny_model, "--input", many_questions, "--output", out,
                    "--max-new-tokens", "2", "--batch-size", "64")
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [f"m{i}" for i in range(N_MANY)]


def test_an_interrupt_before_the_first_line_leaves_no_partial(tmp_path, monkeypatch, capsys):
    from qrewrite.infer.rules import RulesRewriter

    def interrupted(self, questions, progress=None):
        if questions:
            raise Interrupted("", "SIGTERM")
        yield from ()
    monkeypatch.setattr(RulesRewriter, "stream", interrupted)
    code, err = cli(capsys, "rewrite", "--model", "rules", "--input", VALID, "--output", tmp_path / "o.jsonl")
    assert code == 143 and "no question finished; nothing written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# ---- 7: every model-directory problem is one line -------------------------------------------------------------

MODEL_PROBLEMS = {
    "no weights": (lambda d: (d / "model.safetensors").unlink(), "no weights"),
    "truncated weights": (lambda d: _truncate("model.safetensors")(d), "model.safetensors is truncated"),
    "bad config.json": (lambda d: (d / "config.json").write_text('{"model_type": '), "config.json is unreadable"),
    "empty config.json": (lambda d: (d / "config.json").write_text(""), "config.json is unreadable"),
    "config.json of {}": (lambda d: (d / "config.json").write_text("{}"), "config.json holds no model"),
    "no tokenizer": (lambda d: [p.unlink() for p in d.glob("tokenizer*")], "no tokenizer"),
    "unreadable tokenizer": (lambda d: (d / "tokenizer.json").write_text('{"x": 1}'), "cannot load the tokenizer"),
    "no config.json": (lambda d: (d / "config.json").unlink(), "holds no config.json"),
}


@pytest.fixture(scope="module")
def broken_models(tiny_model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken")
    out = {}
    for name, (damage, _) in MODEL_PROBLEMS.items():
        out[name] = shutil.copytree(tiny_model, root / name.replace(" ", "-").replace("{}", "empty-object"))
        damage(out[name])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# export copies the tokenizer's files as they are, never reading them: an unreadable one is not its problem
@pytest.mark.parametrize("problem,command", [(p, c) for p in MODEL_PROBLEMS for c in ("rewrite", "serve", "export",
                                                                                     "evaluate")
                                             if (p, c) != ("unreadable tokenizer", "export")])
def test_a_model_directory_problem_is_one_line(broken_models, problem, command, tmp_path, capsys):
    model = broken_models[problem]
    args = {"rewrite": ["rewrite", "--model", model, "Who um who wrote it?"],
            "serve": ["serve", "--model", model, "--port", free_port()],
            "export": ["export", "--format", "ctranslate2", model, tmp_path / "ct2"],
            "evaluate": ["evaluate", "--model", model, "--data", VALID, "--out", tmp_path / "eval"]}[command]
    code, err = cli(capsys, *args)
    one_error(code, err, re.escape(str(model)), MODEL_PROBLEMS[problem][1])


def test_a_mistyped_local_model_path_is_not_sent_to_the_hub(tmp_path, capsys, monkeypatch):
    (tmp_path / "weights").mkdir()
    code, err = cli(capsys, "rewrite", "--model", "weights/no-such-run", "Who um who?", cwd=tmp_path,
                    monkeypatch=monkeypatch)
    one_error(code, err, "model path weights/no-such-run does not exist")
    assert "hub" not in err.lower().split("does not exist")[0]


# ---- 7 / 8: config files ------------------------------------------------------------------------------------

def test_config_files_in_utf16_are_read_and_broken_ones_are_one_line(tmp_path):
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("learning_rate: 5e-4\nrun_name: wide\n".encode("utf-16"))
    cfg = load_config(utf16)
    assert (cfg.learning_rate, cfg.run_name) == (5e-4, "wide")
    (tmp_path / "sub").mkdir()
    cases = {"base.yaml": ("base: sub\n", r"sub \(the base of .*base\.yaml\) is a directory"),
             "latin1.yaml": ("run_name: café\n".encode("latin-1"), "not UTF-8"),
             "twice.yaml": ("learning_rate: 1e-4\nbatch_size: 4\nlearning_rate: 1e-2\n",
                            r"the key 'learning_rate' is given twice \(lines 1 and 3\)")}
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(ConfigError, match=message):
            load_config(tmp_path / name)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path / "sub")


def test_average_recipes_take_5e_1_and_refuse_a_key_given_twice(tmp_path):
    recipe = tmp_path / "soup.yaml"
    recipe.write_text("run_name: soup\nmodels:\n  weights/a: 5e-1\n  weights/b: 1.5E+0\n")
    assert load_average_config(recipe).models == {"weights/a": 0.5, "weights/b": 1.5}
    recipe.write_text("run_name: soup\nmodels:\n  weights/a: 1\n  weights/a: 2\n")
    with pytest.raises(ConfigError, match="'weights/a' is given twice"):
        load_average_config(recipe)


def test_validating_on_the_training_file_is_warned(capsys):
    from qrewrite.train.trainer import warn_if_validating_on_training_data
    warn_if_validating_on_training_data(load_config(None, {"train_file": str(TRAIN), "valid_file": str(TRAIN)}))
    assert "hold the same data" in capsys.readouterr().err
    warn_if_validating_on_training_data(load_config(None, {"train_file": str(TRAIN), "valid_file": str(VALID)}))
    assert capsys.readouterr().err == ""


# ---- 7 / 8: questions ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("question,message", [("", "empty"), ("   ", "empty"), ("x" * 48000, "48000 characters"),
                                              ("who \udcff wrote it", "lone surrogate")])
def test_argument_questions_get_the_checks_file_questions_get(question, message, capsys):
    code, err = cli(capsys, "rewrite", "--model", "rules", question)
    one_error(code, err, "question 1", message)
    assert cli.out == ""  # nothing rewritten, not an empty line


def test_a_lone_surrogate_in_a_file_is_skipped_and_named(tmp_path, capsys):
    source = tmp_path / "q.json"
    source.write_text('[{"id": "a", "input": "who \\ud800 wrote it"}, {"id": "b", "input": "who um who wrote it"}]')
    code, err = cli(capsys, "rewrite", "--model", "rules", "--input", source, "--output", tmp_path / "o.jsonl")
    assert code == 0 and "not_unicode" in err, err
    assert [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == ["b"]
    code, err = cli(capsys, "rewrite", "--model", "rules", "--input", source, "--output", tmp_path / "s.jsonl",
                    "--strict")
    one_error(code, err, "lone surrogate")


# ---- 8: serve ---------------------------------------------------------------------------------------------------

def test_serve_on_a_port_in_use_is_one_error_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = cli(capsys, "serve", "--model", "copy", "--port", port)
    one_error(code, err, f"127.0.0.1:{port} is already in use")


@pytest.mark.parametrize("field,value,message", [("max_tokens", True, "valid integer"),
                                                 ("max_tokens", 2.5, "valid integer"),
                                                 ("temperature", float("nan"), "finite number"),
                                                 ("top_p", float("inf"), "finite number"),
                                                 ("stream", "yes", "valid boolean"),
                                                 ("n", True, "valid integer")])
def test_chat_requests_with_loose_types_are_refused(field, value, message):
    from pydantic import ValidationError

    from qrewrite.serve.openai_api import ChatCompletionRequest
    with pytest.raises(ValidationError, match=message):
        ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "who um who?"}], **{field: value})


def test_a_failed_or_interrupted_run_is_never_taken_for_a_model(tmp_path):
    run = Run(tmp_path / "r")
    run.path.mkdir()
    for status in ("failed", "interrupted", "running"):
        run.write_info({"status": status})
        with pytest.raises(RunStateError, match=f"not complete \\(status: {status}\\)"):
            run.final_model()
