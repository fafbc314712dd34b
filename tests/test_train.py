"""Training on the tiny Qwen2: each method learns, labels mask the prompt, LoRA merges exactly,
runs resume after SIGKILL to the same weights, Ctrl-C saves, and two processes agree."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from helpers import ROOT, SAMPLE, run_cli, smoke_config
from safetensors.torch import load_file

from qrewrite.models import load_tokenizer
from qrewrite.prompt import IGNORE_INDEX, build_prompt, encode_example
from qrewrite.train.trainer import train


def losses(run_dir):
    log = json.loads((run_dir / "trainer_log.json").read_text())
    return [e["loss"] for e in log if "loss" in e]


# ---- labels ------------------------------------------------------------------------------------------------

def test_labels_cover_only_the_answer_and_end_of_turn(tiny_model):
    tok = load_tokenizer(str(tiny_model))
    ex = encode_example(tok, "What year no which city hosted it?", "Which city hosted it?", max_length=512)
    prompt_len = len(tok(build_prompt(tok, "What year no which city hosted it?"), add_special_tokens=False)
                     ["input_ids"])
    assert ex["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    supervised = [t for t in ex["labels"] if t != IGNORE_INDEX]
    assert tok.decode(supervised) == "Which city hosted it?<|im_end|>"
    assert ex["input_ids"][prompt_len:] == supervised and not ex["truncated"]


def test_truncation_is_counted(tiny_model):
    tok = load_tokenizer(str(tiny_model))
    ex = encode_example(tok, "a very long question " * 20, "short?", max_length=32)
    assert ex["truncated"] and len(ex["input_ids"]) == 32 == len(ex["labels"])


def test_masked_tokens_carry_no_loss(tiny_model):
    """The loss equals the cross-entropy over supervised positions only; changing masked inputs' labels
    to anything else (here: -100 everywhere but the answer) is what the model sees."""
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

    tok = load_tokenizer(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    feats = [encode_example(tok, q, a, 512) for q, a in [("um who wrote it?", "Who wrote it?"),
                                                         ("where no when was it built, the tower?",
                                                          "When was the tower built?")]]
    for f in feats:
        f.pop("truncated"), f.pop("length")
    batch = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=IGNORE_INDEX)(feats)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()  # padding masked
    with torch.no_grad():
        out = model(**batch)
    logits = out.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE_INDEX
    by_hand = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(out.loss, by_hand, atol=1e-5)
    everything = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   batch["input_ids"][:, 1:].reshape(-1))
    assert not torch.allclose(out.loss, everything, atol=1e-3)


# ---- each method learns ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,lr", [("full", 3e-3), ("lora", 1e-2), ("qlora", 1e-2)])
def test_loss_goes_down_on_a_fixed_batch(tiny_model, tmp_path, method, lr):
    cfg = smoke_config(tiny_model, tmp_path, method=method, run_name=method, max_train_examples=4, batch_size=4,
                       max_steps=10, learning_rate=lr, eval_steps=0, save_steps=0, merge_after=False)
    run_dir = train(cfg)
    seen = losses(run_dir)
    assert len(seen) == 10
    assert seen[-1] < seen[0] - 0.25, seen
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["method"] == method
    if method == "full":
        assert (run_dir / "model" / "model.safetensors").exists()
    else:
        assert (run_dir / "adapter" / "adapter_config.json").exists()
        assert info["trainable_parameters"] < 148_032 / 2  # only the adapter trains


def test_frozen_embeddings_keep_the_base_values_while_the_rest_learns(tiny_model, tmp_path):
    cfg = smoke_config(tiny_model, tmp_path, run_name="frozen", max_train_examples=4, batch_size=4, max_steps=5,
                       learning_rate=3e-3, eval_steps=0, save_steps=0, freeze_embeddings=True)
    run_dir = train(cfg)
    base, tuned = load_file(tiny_model / "model.safetensors"), load_file(run_dir / "model" / "model.safetensors")
    embeddings = "model.embed_tokens.weight"
    assert torch.equal(base[embeddings], tuned[embeddings])  # tied: the output layer too
    changed = [k for k in base if k != embeddings and not torch.equal(base[k], tuned[k])]
    assert "model.layers.0.mlp.up_proj.weight" in changed
    info = json.loads((run_dir / "run.json").read_text())
    assert info["trainable_parameters"] == sum(v.numel() for k, v in base.items() if k != embeddings)


def test_qlora_base_is_4bit(tiny_model):
    from qrewrite.config import QWEN2_TARGETS
    from qrewrite.models import apply_lora, load_model

    model = load_model(str(tiny_model), quantize_4bit=True)
    model = apply_lora(model, r=4, alpha=8, dropout=0.0, targets=QWEN2_TARGETS, quantized=True)
    kinds = {type(m).__name__ for n, m in model.named_modules() if n.endswith("q_proj.base_layer")}
    assert kinds == {"Linear4bit"}


# ---- LoRA adapter and merge --------------------------------------------------------------------------------

def test_lora_adapter_reloads_and_merged_model_gives_same_logits(tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = smoke_config(tiny_model, tmp_path, method="lora", run_name="lora", learning_rate=1e-2, max_steps=4,
                       eval_steps=0, save_steps=0, lora_dropout=0.0)
    run_dir = train(cfg)
    ids = torch.tensor([[5, 17, 33, 101, 7, 250]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
        adapter_logits = adapted(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(run_dir / "model").eval()
        merged_logits = merged(ids).logits
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-4)  # the adapter learned something
    assert torch.allclose(adapter_logits, merged_logits, atol=1e-5)


# ---- resume ------------------------------------------------------------------------------------------------

KILL_AT_SAVE = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from transformers import TrainerCallback
    from helpers import smoke_config
    from qrewrite.train.trainer import train

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, as if the machine died

    train(smoke_config({model!r}, {root_dir!r}, run_name="resumed", **{overrides!r}), callbacks=[Kill()])
""")


def final_weights(run_dir):
    return load_file(run_dir / "model" / "model.safetensors")


def test_sigkill_then_resume_reaches_the_same_weights(tiny_model, tmp_path):
    overrides = dict(max_steps=6, save_steps=2, eval_steps=2, save_total_limit=0)
    reference = train(smoke_config(tiny_model, tmp_path, run_name="uninterrupted", **overrides))

    script = KILL_AT_SAVE.format(root=str(ROOT), tests=str(ROOT / "tests"), kill_at=4, model=str(tiny_model),
                                 root_dir=str(tmp_path), overrides=overrides)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_dir = tmp_path / "resumed"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"  # not mistaken for done
    assert not (run_dir / "model").exists()
    assert (run_dir / "checkpoint-4").is_dir()

    args = ["train", "--config", "configs/smoke.yaml", "--model", tiny_model, "--output-root", tmp_path,
            "--run-name", "resumed", "--train-file", SAMPLE / "train.json", "--valid-file", SAMPLE / "valid.json",
            "--max-steps", "6", "--save-steps", "2", "--eval-steps", "2", "--save-total-limit", "0"]
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["steps"] == 6
    log = json.loads((run_dir / "trainer_log.json").read_text())
    assert [e["step"] for e in log if "loss" in e][-2:] == [5, 6]

    expected, got = final_weights(reference), final_weights(run_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_resume_refuses_a_changed_config(tiny_model, tmp_path):
    train(smoke_config(tiny_model, tmp_path, run_name="r", max_steps=2, save_steps=2, eval_steps=2))
    shutil.rmtree(tmp_path / "r" / "model")
    from qrewrite.errors import ConfigError
    with pytest.raises(ConfigError, match="learning_rate"):
        train(smoke_config(tiny_model, tmp_path, run_name="r", max_steps=2, save_steps=2, eval_steps=2,
                           learning_rate=1e-2), resume=True)


# ---- Ctrl-C --------------------------------------------------------------------------------------------------

def test_ctrl_c_saves_a_checkpoint_and_marks_the_run_interrupted(tiny_model, tmp_path):
    args = ["train", "--config", "configs/smoke.yaml", "--model", str(tiny_model), "--output-root", str(tmp_path),
            "--run-name", "sigint", "--train-file", str(SAMPLE / "train.json"),
            "--valid-file", str(SAMPLE / "valid.json"), "--max-steps", "100000", "--eval-steps", "0",
            "--save-steps", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "qrewrite", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    run_json = tmp_path / "sigint" / "run.json"
    deadline = time.time() + 120
    while not run_json.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # a few steps in
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err
    info = json.loads(run_json.read_text())
    assert info["status"] == "interrupted" and 0 < info["steps"] < 100000
    assert (tmp_path / "sigint" / f"checkpoint-{info['steps']}").is_dir()
    assert not (tmp_path / "sigint" / "model").exists()


# ---- more than one process -------------------------------------------------------------------------------

def test_two_processes_train_in_step_and_write_one_checkpoint(tiny_model, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "finetune.py",
           "--config", "configs/smoke.yaml", "--model", str(tiny_model), "--output-root", str(tmp_path),
           "--run-name", "ddp", "--train-file", str(SAMPLE / "train.json"), "--valid-file",
           str(SAMPLE / "valid.json"), "--max-steps", "3", "--eval-steps", "0", "--save-steps", "3",
           "--batch-size", "2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "ddp"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["world_size"] == 2 and info["status"] == "complete"
    digests = [json.loads((run_dir / "ranks" / f"rank-{r}.json").read_text())["param_abs_sum"] for r in (0, 1)]
    assert digests[0] == pytest.approx(digests[1], rel=0, abs=0)
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-3"]
    assert len(list((run_dir / "model").glob("*.safetensors"))) == 1


def test_reloading_the_best_checkpoint_does_not_warn_about_the_tied_lm_head(tiny_model, tmp_path, monkeypatch):
    """SmolLM2 (and the tiny model) tie lm_head to the embeddings: a checkpoint stores one matrix, so the Trainer
    would report lm_head.weight as missing on reloading the best checkpoint. Only that tied key is dropped."""
    import transformers.trainer as hf_trainer
    from torch.nn.modules.module import _IncompatibleKeys
    from transformers import AutoModelForCausalLM, TrainingArguments

    from qrewrite.train.trainer import QrewriteTrainer, tied_to_loaded
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.tie_word_embeddings
    assert tied_to_loaded(model, ["lm_head.weight", "model.norm.weight"]) == {"lm_head.weight"}
    assert tied_to_loaded(model, ["lm_head.weight", "model.embed_tokens.weight"]) == set()  # both missing
    warned = []
    monkeypatch.setattr(hf_trainer.logger, "warning", lambda msg, *a, **k: warned.append(msg))
    trainer = QrewriteTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                  report_to=[]))
    trainer._issue_warnings_after_load(_IncompatibleKeys(["lm_head.weight"], []))
    assert warned == []
    trainer._issue_warnings_after_load(_IncompatibleKeys(["lm_head.weight", "model.norm.weight"], []))
    assert len(warned) == 1 and "['model.norm.weight']" in warned[0]
