"""Every command-line option fed an impossible value ends in one clear error and exit status 2, never a traceback.

Runs the CLI in-process (the errors come before any model is loaded), so the whole sweep takes seconds."""

import argparse

import pytest
from helpers import ROOT, SAMPLE

from qrewrite.cli.main import build_parser, main
from qrewrite.config import FIELDS

DATA = str(SAMPLE / "valid.json")
COMMON = {
    "prepare": ["prepare", "--source", str(SAMPLE), "--out", "{tmp}/out"],
    "evaluate": ["evaluate", "--model", "copy", "--data", DATA, "--out", "{tmp}/eval"],
    "rewrite": ["rewrite", "--model", "copy", "Who um who?"],
    "serve": ["serve", "--model", "copy"],
    "average": ["average", "--config", "configs/average/smollm2-full-typo-soup.yaml", "--output-root", "{tmp}/w"],
    "export": ["export", "--format", "ctranslate2"],
    "train": ["train", "--config", "configs/smoke.yaml", "--model", "{tmp}/no-model", "--output-root", "{tmp}/w"],
}
# option -> impossible values, per command (train: every config field, below)
IMPOSSIBLE = {
    "prepare": {"--valid-fraction": ["1.5", "0", "-0.2", "half"], "--typo-rate": ["3", "-0.1"],
                "--typo-copies": ["-2", "1.5", "2"], "--seed": ["abc"], "--valid-split": ["article"],
                "--valid-size": ["0", "-3", "many"]},
    "evaluate": {"--batch-size": ["0", "-4"], "--max-new-tokens": ["0"], "--limit": ["-1"],
                 "--train-sample": ["-1"], "--precision": ["fp8"], "--few-shot": ["-1", "two"],
                 "--num-beams": ["0", "2.5"],
                 "--copy-bonus": ["-1", "nan", "inf", "x"], "--order-bonus": ["-1", "inf", "x"],
                 "--shots-from": [("--few-shot", "2", "--shots-from", "{tmp}/no-such-split.json")],
                 "--engine": ["vllm", ("--engine", "ctranslate2")],  # copy has no model to convert
                 "--quantization": ["int4", ("--quantization", "int8")],  # int8 without --engine ctranslate2
                 "--replicas": ["0", "two", ("--replicas", "2")]},  # 2 for copy: no model to split
    "rewrite": {"--batch-size": ["0"], "--max-new-tokens": ["-3"], "--precision": ["int4"], "--num-beams": ["-1"],
                "--copy-bonus": ["-0.5"], "--order-bonus": ["nan"], "--engine": ["onnx"],
                "--quantization": ["fp4", ("--quantization", "int8")],
                "--replicas": ["-1"]},
    "serve": {"--port": ["70000", "0", "http"], "--batch-size": ["0"], "--max-new-tokens": ["0"],
              "--precision": ["fp8"], "--max-wait-ms": ["-1"], "--prompt-lookup-tokens": ["-1"], "--threads": ["0"],
              "--max-queue": ["0"], "--request-timeout": ["0"], "--max-question-chars": ["0"],
              "--max-questions": ["0", "100000"], "--max-body-bytes": ["0"], "--log-level": ["loud"],
              "--num-beams": ["0", "two"], "--copy-bonus": ["-1", "nan"], "--order-bonus": ["-2"],
              "--engine": ["tgi"],
              "--quantization": ["int2", ("--quantization", "float32")], "--replicas": ["0", ("--replicas", "3")],
              "--lone-question": ["fast", ("--lone-question", "prompt-lookup-bf16")]},  # copy: no model
    "export": {"--format": ["onnx"], "--quantization": ["int3"]},
    "average": {"--run-name": ["../escape", "/abs"], "--config": ["{tmp}/no-such-recipe.yaml"]},
}
TRAIN_FIELDS = {
    "method": ["dora"], "run_name": ["../escape", "/abs"], "seed": ["x"], "max_steps": ["0", "-5"],
    "num_epochs": ["0"], "batch_size": ["0"], "grad_accum": ["0"], "learning_rate": ["0", "-1"],
    "lr_scheduler": ["cosinus"], "warmup_ratio": ["1.5", "-0.1"], "weight_decay": ["-1"], "max_grad_norm": ["-1"],
    "optim": ["adam_what"], "precision": ["fp8"], "gradient_checkpointing": ["maybe"],
    "attn_implementation": ["fast"], "max_length": ["0"], "group_by_length": ["2"], "dataloader_workers": ["-1"],
    "supervised_logits": ["sometimes"], "padding_free": ["perhaps"], "typo_copies": ["-2"], "typo_rate": ["3"],
    "synthetic_copies": ["-1", "two"], "name_swap_copies": ["-1", "1.5"], "torch_compile": ["maybe"],
    "freeze_embeddings": ["maybe", ("--method", "lora", "--freeze-embeddings", "true")],
    "typo_nonwords": ["maybe", ("--typo-nonwords", "true", "--typo-copies", "0")],
    "max_train_examples": ["-1"], "prompt_format": ["short"], "typo_rate_max": ["0.01", "2"],
    "best_metric": ["bleu", ("--best-metric", "rougeL_sample", "--eval-sample", "0")], "lora_r": ["0"],
    "lora_alpha": ["0"],
    "lora_dropout": ["1", "-0.5"], "merge_after": ["never"], "eval_steps": ["-1"], "eval_sample": ["-1"],
    "max_eval_examples": ["-1"], "save_steps": ["-1"], "save_total_limit": ["-1"], "logging_steps": ["0"],
    "max_new_tokens": ["0"], "trust_remote_code": ["yes please"], "report_to": ["wandb"],
    # values that are only impossible together with another field
    "system_prompt": [("--prompt-format", "minimal", "--system-prompt", "Fix it.")],
    "extra_count": ["-1", ("--extra-count", "5")], "extra_mix": ["oops=1", "clean=0", "typo=inf"],
}
# paths are tested in test_bad_inputs.py (extra_questions in test_extra_questions.py); LoRA targets need the model
# to judge (test_models.py); optim_args are the optimizer's to judge when it is built (test_precision.py)
NOT_SWEPT = {"model", "train_file", "valid_file", "output_root", "lora_targets", "extra_questions", "optim_args"}


def cases():
    for command, options in IMPOSSIBLE.items():
        for option, values in options.items():
            for value in values:
                yield command, list(value) if isinstance(value, tuple) else [option, value]
    for name, values in TRAIN_FIELDS.items():
        for value in values:
            yield "train", list(value) if isinstance(value, tuple) else ["--" + name.replace("_", "-"), value]


@pytest.mark.parametrize("command,extra", list(cases()), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_impossible_value_is_one_clear_error(command, extra, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = [a.format(tmp=tmp_path) for a in COMMON[command]] + extra
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "error" in err.lower()
    named = extra[-2].lstrip("-").replace("-", "_")
    assert named in err.replace("-", "_") or extra[-1] in err, err  # the message names the option or value


def test_sweep_covers_every_option():
    """A new option must be added to the sweep."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, options in IMPOSSIBLE.items():
        typed = {a.option_strings[0] for a in subparsers.choices[command]._actions
                 if a.option_strings and (a.type is not None or a.choices)}
        assert typed <= set(options), f"{command}: add {sorted(typed - set(options))} to the sweep"
    assert set(FIELDS) - NOT_SWEPT == set(TRAIN_FIELDS), "add new config fields to TRAIN_FIELDS"
