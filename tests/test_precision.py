"""bf16-mixed training: fp32 weights and optimizer, matmuls under bf16 autocast (CPU too), an fp32 model saved."""

import json

import pytest
import torch
from safetensors import safe_open
from transformers import TrainerCallback

from conftest import smoke_config
from qrewrite.config import ConfigError, load_config
from qrewrite.train import train


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
