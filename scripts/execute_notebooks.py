#!/usr/bin/env python
"""Execute the notebooks in place with their default parameters (the real runs), saving their outputs.

    python scripts/execute_notebooks.py [notebooks/01_prepare_data.ipynb ...]

Run after scripts/reproduce_cpu.sh: 02 then shows the complete weights/smollm2-full run instead of training
again, and 03 reuses outputs/smollm2-full's predictions when they were made by that run on the same data.
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def main(paths) -> int:
    for path in paths or sorted((ROOT / "notebooks").glob("0*.ipynb")):
        path = Path(path)
        print(f"executing {path} ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
