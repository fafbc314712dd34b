"""``qrewrite push``: upload a run's model/ to the Hugging Face Hub."""

from __future__ import annotations

from qrewrite.errors import ConfigError


def add_push(sub):
    """Upload a finished run's model/ (weights, tokenizer, generation config, qrewrite.json, model card) to the
    Hugging Face Hub. Needs network access and a token (`huggingface-cli login` or HF_TOKEN)."""
    p = sub.add_parser("push", description=add_push.__doc__, help="upload a run's model/ to the Hugging Face Hub")
    p.add_argument("--model", required=True, help="run directory (weights/<run>) or a model directory")
    p.add_argument("--push-to-hub", required=True, metavar="REPO", help="Hub repository id, e.g. you/qrewrite-smollm2")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.set_defaults(func=cmd_push)


def cmd_push(args) -> int:
    from qrewrite.errors import OutputError
    from qrewrite.models import hub_reachable
    from qrewrite.run import Run

    folder = Run.model_dir_of(args.model)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"--model {args.model}: {folder} holds no model (config.json); point it at a complete "
                          "run directory or its model/ directory")
    if not hub_reachable():
        raise OutputError(f"cannot reach the Hugging Face hub to push {folder} to {args.push_to_hub}; nothing was "
                          "uploaded. Push from a machine with network access (the directory is self-contained: "
                          "copy it there), or unset HF_HUB_OFFLINE")
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo(args.push_to_hub, private=args.private, exist_ok=True)
    url = api.upload_folder(folder_path=str(folder), repo_id=args.push_to_hub,
                            commit_message=f"qrewrite: upload {folder}")
    print(f"pushed {folder} to {url}")
    return 0
