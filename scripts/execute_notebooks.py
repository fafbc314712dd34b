#!/usr/bin/env python
"""Execute the notebooks in place with their default parameters, saving their outputs.

    PYTHONPATH=$PWD python scripts/execute_notebooks.py [notebooks/01_prepare_data.ipynb ...]

01 prepares ../shared/data/disfl-qa into dataset/ and dataset/topic/ (the files `python -m qrewrite prepare`
writes). 02 shows the recommended recipe (outputs/ablations.yaml and its configs/average/ recipe): it reuses each
ingredient's complete full-length run in weights/, else trains a shortened demonstration (DEMO_STEPS) into
weights/notebook-<run>/, then averages what it has; a complete demonstration is reused, so delete weights/notebook-*
to show the training again. 03 rewrites with weights/<recommended> when it is there (reusing an evaluation of the
same model and data in outputs/), else scores the committed predictions in outputs/; it regenerates
outputs/results.md only when it wrote a new evaluation.

On a CPU that other jobs share, run it with OMP_NUM_THREADS=1: torch's threads spinning on busy cores can make a
training step twenty times slower.
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
