"""The notebooks: stored without outputs, with a tagged parameters cell, and executed headless at their small size.

Each notebook runs in a kernel of this interpreter, from a kernel spec made
here in a temporary directory (nothing is installed for the user), with
matplotlib on Agg and IPython's and Jupyter's state kept in the same directory.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernel_spec
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "nsqsim-notebook-test"
BOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _read(path: Path) -> nbformat.NotebookNode:
    nb: nbformat.NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]  # nbformat's read is untyped
    return nb


def test_the_notebooks_are_there() -> None:
    assert {p.name for p in BOOKS} >= {"delivery_guarantees.ipynb", "replay_a_failure.ipynb"}


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = _read(path)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has stored outputs"
            assert cell.execution_count is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_tagged_parameters_cell(path: Path) -> None:
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert not any("parameters" in c.metadata.get("tags", []) for c in code[1:])


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for this interpreter, visible only to this test's Jupyter."""
    install_kernel_spec(kernel_name=KERNEL, display_name="nsqsim tests", prefix=str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter" / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("NSQSIM_NOTEBOOK_SIZE", "small")
    return KERNEL


@pytest.mark.slow
@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(path: Path, kernel: str) -> None:
    nb = _read(path)
    client = NotebookClient(nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError naming the cell when one fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot was drawn"
