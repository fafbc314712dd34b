"""bf16-mixed training: fp32 weights and optimizer, matmuls under bf16 autocast (CPU too), an fp32 model saved."""

import json

import pytest
import torch
from helpers import ROOT, smoke_config
from safetensors import safe_open
from transformers import TrainerCallback

from qrewrite.config import load_config
from qrewrite.errors import ConfigError
from qrewrite.train.trainer import train


class MatmulDtypes(TrainerCallback):
    """Records the dtype of one projection's output and of every parameter during the training steps."""

    def __init__(self):
        self.outputs, self.params, self.hook = set(), set(), None

    def on_train_begin(self, args, state, control, model=None, **kw):
        proj = next(m for name, m in model.named_modules() if name.endswith("mlp.down_proj"))
        self.hook = proj.register_forward_hook(lambda mod, inp, out: self.outputs.add(out.dtype))

    def on_step_end(self, args, state, control, model=None, **kw):
        self.params |= {p.dtype for p in model.parameters()}

    def on_train_end(self, *a, **kw):
        self.hook.remove()


@pytest.mark.parametrize("precision,matmul", [("bf16-mixed", torch.bfloat16), ("fp32", torch.float32)])
def test_bf16_mixed_autocasts_the_matmuls_and_keeps_fp32_weights(tiny_model, tmp_path, precision, matmul):
    seen = MatmulDtypes()
    run_dir = train(smoke_config(tiny_model, tmp_path, run_name=precision, max_steps=2, eval_steps=0, save_steps=0,
                                 precision=precision), callbacks=(seen,))
    assert seen.outputs == {matmul}
    assert seen.params == {torch.float32}
    info = json.loads((run_dir / "run.json").read_text())
    assert info["dtype"] == "float32" and info["autocast"] == ("bf16" if precision == "bf16-mixed" else "no")
    with safe_open(str(run_dir / "model" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="precision: 'bf16-autocast' is not one of .*bf16-mixed"):
        load_config(None, {"precision": "bf16-autocast"})


class TrainableDtypes(MatmulDtypes):
    """As MatmulDtypes, but only the trainable parameters (a LoRA base is frozen, a QLoRA base frozen 4-bit),
    and the dtype the 4-bit layers compute in (bitsandbytes casts their output back to their input's dtype)."""

    def __init__(self):
        super().__init__()
        self.compute = set()

    def on_step_end(self, args, state, control, model=None, **kw):
        self.params |= {p.dtype for p in model.parameters() if p.requires_grad}
        self.compute |= {m.compute_dtype for m in model.modules() if hasattr(m, "compute_dtype")}


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_bf16_mixed_with_adapters_trains_fp32_adapters_and_saves_an_fp32_model(tiny_model, tmp_path, method):
    seen = TrainableDtypes()
    run_dir = train(smoke_config(tiny_model, tmp_path, run_name=method, method=method, max_steps=2, eval_steps=0,
                                 save_steps=0, learning_rate=1e-2, precision="bf16-mixed"), callbacks=(seen,))
    assert seen.params == {torch.float32}
    if method == "lora":  # autocast reaches the base's matmuls
        assert seen.outputs == {torch.bfloat16} and seen.compute == set()
    else:  # it does not reach into bitsandbytes: the 4-bit base de-quantises to bf16 itself
        assert seen.compute == {torch.bfloat16}
    log = json.loads((run_dir / "trainer_log.json").read_text())
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in log if "loss" in e) and any("loss" in e for e in log)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["method"] == method and info["autocast"] == "bf16"
    with safe_open(str(run_dir / "model" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_a_qlora_base_computes_in_fp32_outside_bf16_mixed(tiny_model, tmp_path):
    seen = TrainableDtypes()
    train(smoke_config(tiny_model, tmp_path, run_name="qlora-fp32", method="qlora", max_steps=1, eval_steps=0,
                       save_steps=0, learning_rate=1e-2, precision="fp32"), callbacks=(seen,))
    assert seen.compute == {torch.float32} and seen.outputs == {torch.float32}


class OptimizerState(TrainerCallback):
    """The dtypes of the parameters and of the optimizer's state tensors, and how many weights each step moved."""

    def __init__(self):
        self.params, self.state, self.before, self.moved = set(), set(), None, []

    def on_step_begin(self, args, state, control, model=None, **kw):
        self.before = [p.detach().clone() for p in model.parameters()]

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kw):
        self.params |= {p.dtype for p in model.parameters()}
        self.state |= {v.dtype for s in optimizer.state.values() for v in s.values()
                       if torch.is_tensor(v) and v.dim() > 0}
        self.moved.append(sum(int((p != b).sum()) for p, b in zip(model.parameters(), self.before)))


def test_pure_bf16_updates_bf16_weights_in_place_with_no_fp32_copy(tiny_model, tmp_path):
    """`precision: bf16` (what the Qwen2 configs' `auto` meant on a GPU): the optimizer steps the bf16 weights
    themselves, its moments bf16 too; no fp32 master copy exists anywhere. At a learning rate small against the
    bf16 spacing of the weights (benchmarks/results/precision_cpu.md), most steps round away."""
    seen = OptimizerState()
    run_dir = train(smoke_config(tiny_model, tmp_path, run_name="bf16", max_steps=3, eval_steps=0, save_steps=0,
                                 precision="bf16", optim="adamw_torch", learning_rate=1e-2), callbacks=(seen,))
    assert seen.params == {torch.bfloat16} and seen.state == {torch.bfloat16}
    assert all(n > 0 for n in seen.moved)  # a large step moves them (a small one would mostly round away)
    with safe_open(str(run_dir / "model" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    small = OptimizerState()
    train(smoke_config(tiny_model, tmp_path, run_name="bf16-small", max_steps=3, eval_steps=0, save_steps=0,
                       precision="bf16", optim="adamw_torch", learning_rate=2e-5, warmup_ratio=0.0),
          callbacks=(small,))
    assert max(small.moved) < min(seen.moved)


def test_optim_args_reach_the_optimizer_settings(tmp_path):
    from qrewrite.train.trainer import training_arguments
    cfg = load_config(ROOT / "configs" / "precision" / "bf16-sr-8bit.yaml")
    args = training_arguments(cfg, tmp_path, torch.bfloat16)
    assert (args.optim.value, args.optim_args) == ("adamw_torch_8bit", "bf16_stochastic_round=True")
    assert training_arguments(load_config(None, {}), tmp_path, torch.float32).optim_args is None


def test_lora_on_a_bf16_base_trains_fp32_adapters(tiny_model, tmp_path):
    """What the Qwen2 LoRA config's `precision: auto` means on a GPU: a bf16 base, but peft keeps the adapters in
    fp32, so their small steps do not round away as pure bf16 weights' do."""
    seen = TrainableDtypes()
    train(smoke_config(tiny_model, tmp_path, run_name="lora-bf16", method="lora", max_steps=1, eval_steps=0,
                       save_steps=0, precision="bf16", merge_after=False), callbacks=(seen,))
    assert seen.params == {torch.float32}
