import json


def test_tiny_run_is_complete(tiny_run):
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["status"] == "complete" and info["steps"] == 6
    assert (tiny_run / "model" / "model.safetensors").exists()
    assert (tiny_run / "config.yaml").exists()
