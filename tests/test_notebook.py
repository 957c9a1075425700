"""The example notebook, executed headless in a real Jupyter kernel, and the notebook's stop button.

Both run MobileNetV2 (alpha 0.35, random weights, 96x96) on the example photographs, with the outputs
in a temporary folder; the notebook's own settings (ImageNet weights, 224x224) are the user's.
"""

import hashlib
import json
import queue
import re
import time

import pytest

from tests.conftest import REPO, is_output

pytestmark = pytest.mark.tensorflow

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat, nbclient and ipykernel")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = REPO / "examples"
NOTEBOOK = EXAMPLES / "notebook.ipynb"
CONFIG = EXAMPLES / "photos" / "configuration.json"
CLASSES = ("animal", "fish", "monument", "tool")
VALIDATION = sorted((EXAMPLES / "photos" / "dataset" / "validation").rglob("*.jpg"))


def small_settings(out, **changes):
    """A quick run on the example photographs, its outputs in ``out``. Quantizing skips Sony's converter
    (half a minute of Java; tests/test_imx500.py converts): the notebook's cell is the same either way."""
    return {"weights": None, "mobilenet_alpha": 0.35, "input_tensor_size": 96, "epochs": 2,
            "quantization_images": 16, "output_dir": str(out), "evaluate_result_dir": str(out / "evaluation"),
            "block_plugins": ["imx500.converter"], **changes}


def shown(text):
    """What a notebook shows of a stream's text: each carriage return draws the line again from its start."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line.rsplit("\r", 1)[-1].strip()]


def stream_text(cell, name=None):
    """What the cell printed, on stdout and stderr, or on ``name`` only."""
    return "".join(output.text for output in cell.outputs
                   if output.output_type == "stream" and name in (None, output.name))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The example notebook, run from top to bottom in a fresh kernel from examples/, as a user runs it."""
    out = tmp_path_factory.mktemp("notebook") / "output"
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [parameters] = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    parameters.source = f"CONFIG = {str(CONFIG)!r}\nsettings = {small_settings(out)!r}\n"
    started = time.monotonic()
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    print(f"the example notebook ran in {time.monotonic() - started:.0f} s")
    nbformat.write(notebook, out.parent / "executed.ipynb")  # to look at when a test fails
    cells = {cell.id: cell for cell in notebook.cells if cell.cell_type == "code"}
    return cells, out


def cell_with(cells, text):
    [cell] = [cell for cell in cells.values() if text in cell.source]
    return cell


def test_the_notebook_trains_and_shows_progress_in_place(executed):
    cells, out = executed
    text = stream_text(cell_with(cells, "result = tlcore.train("))
    lines = shown(text)
    assert "\r" in text, "progress is redrawn in place"
    assert any(line.startswith("Epoch 2/2") for line in lines)
    assert len(lines) < 40, f"a few lines, not one per update: {lines}"
    warnings = [line for line in lines if "warning" in line.lower()]
    assert len(warnings) == len(set(warnings)), "each warning once"
    assert not [line for line in lines if "tensorflow" in line.lower()], "no framework log chatter"
    assert json.loads((out / "evaluation" / "results.json").read_text())["num_images"] == len(VALIDATION)
    summary = stream_text(cell_with(cells, "Top-1 accuracy"))
    assert re.search(rf"Top-1 accuracy \d\.\d{{3}} on {len(VALIDATION)} validation images; 2 epochs", summary)


def test_the_notebook_shows_the_report_pictures_inline(executed):
    cells, _ = executed
    pictures = [output for output in cell_with(cells, "display(Image(").outputs if output.output_type == "display_data"]
    assert len(pictures) == 2 and all("image/png" in picture.data for picture in pictures)


def test_the_notebook_predicts_with_the_model_it_trained(executed):
    cells, _ = executed
    lines = stream_text(cell_with(cells, "tlcore.predict(result.output_dir, photos, top_k=2)"), "stdout").splitlines()
    assert [line.split()[0] for line in lines] == [str(path.relative_to(EXAMPLES)) for path in VALIDATION[::8]]
    for line in lines:
        path, label, score = line.split()
        assert label in CLASSES and 0 <= float(score) <= 1


def test_a_plugin_defined_in_a_cell_observes_the_run(executed):
    cells, _ = executed
    printed = stream_text(cell_with(cells, "watcher = BestEpoch()"))
    assert re.search(r"best epoch: [12] of 2 \(val_acc \d\.\d{3}\)", printed), printed


def test_the_notebook_quantizes_and_shows_the_quantized_top_1_beside_the_float_one(executed):
    cells, out = executed
    lines = shown(stream_text(cell_with(cells, "tlcore.quantize("), "stdout"))
    [index] = [i for i, line in enumerate(lines) if line.startswith("quantized Top-1 ")]
    printed = re.match(rf"quantized Top-1 (\d\.\d{{3}}) \(float (\d\.\d{{3}})\); for the converter: {out / 'imx500'}",
                       lines[index])
    assert printed, lines[index]
    results = json.loads((out / "evaluation" / "results.json").read_text())
    assert float(printed[1]) == round(results["quantized_top_1_accuracy"], 3), "the quantized model's figure"
    assert float(printed[2]) == round(results["top_1_accuracy"], 3)
    assert (out / "imx500" / "quantization.json").is_file()
    predicted = lines[index + 1:]
    assert [line.split()[0] for line in predicted] == [str(path.relative_to(EXAMPLES)) for path in VALIDATION[::8][:4]]
    assert all(line.split()[1] in CLASSES for line in predicted)


# --- the stop button --------------------------------------------------------------------------------------


def snapshot(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and is_output(path.relative_to(folder))}


class Kernel:
    """A real ipykernel, driven as a notebook front end drives it."""

    def __init__(self, cwd):
        from jupyter_client.manager import start_new_kernel

        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def run(self, code, timeout=300, interrupt_on=None):
        """Run ``code``; with ``interrupt_on``, press stop once the cell prints that text. The reply and the text."""
        msg_id = self.client.execute(code)
        text, interrupted, deadline = "", False, time.monotonic() + timeout
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the cell did not finish in {timeout} s; it printed:\n{text}") from None
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                text += message["content"]["text"]
                if interrupt_on and not interrupted and interrupt_on in text:
                    self.manager.interrupt_kernel()
                    interrupted = True
            elif message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        reply = self.client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        return reply["content"], text

    def ok(self, code, timeout=300):
        reply, text = self.run(code, timeout)
        assert reply["status"] == "ok", f"{reply.get('ename')}: {reply.get('evalue')}\n{text}"
        return text

    def stop(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path):
    kernel = Kernel(tmp_path)
    yield kernel
    kernel.stop()


def test_stopping_a_cell_in_any_phase_keeps_the_outputs_and_the_kernel_usable(kernel, tmp_path):
    out = tmp_path / "output"
    kernel.ok(f"import signal, tlcore\nsettings = {small_settings(out)!r}\nbefore = signal.getsignal(signal.SIGINT)\n"
              f"first = tlcore.train({str(CONFIG)!r}, **settings)")
    outputs = snapshot(out)
    assert "saved_model/tl_run.json" in outputs and "evaluation/results.json" in outputs
    long_run = f"tlcore.train({str(CONFIG)!r}, **dict(settings, epochs=500))"
    for phase in ("features of training images", "Epoch 3/500"):
        reply, text = kernel.run(long_run, interrupt_on=phase)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", (phase, text)
        assert snapshot(out) == outputs, f"stopped at {phase!r}: the previous outputs are untouched"
        assert sorted(path.name for path in tmp_path.iterdir()) == ["output"], "nothing partial beside them"
        assert kernel.ok("print(signal.getsignal(signal.SIGINT) is before)").strip() == "True"
    kernel.ok(f"again = tlcore.train({str(CONFIG)!r}, **dict(settings, epochs=1))")
    assert json.loads(kernel.ok("import json; print(json.dumps([len(first.history), len(again.history)]))")) == [2, 1]
    assert snapshot(out) != outputs, "the next run in the same kernel writes its outputs"
