"""Issue 30: examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel."""

import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def test_the_quickstart_notebook_trains_evaluates_and_shows_its_figures(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Run where a user would have it: in a folder of its own (it writes data/ and runs/ there).
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    dice = float(re.search(r"validation Dice (\d\.\d+)", text).group(1))
    assert dice > 0.7, text[-2000:]
    # The curves, the overlays and the predicted masks are shown inline, as images.
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 3
    assert any((tmp_path / "runs").glob("notebook_quickstart_*/best.keras"))
    assert "parameters" in text  # the checkpoint reloaded with keras.saving.load_model
