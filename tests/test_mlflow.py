"""MLflow tracking (plugins/tracking/mlflow_runs.py): runs recorded in a real SQLite store and on a real MLflow
server started here, read back through MLflow's client."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import one_line_error

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra installs MLflow")


@pytest.fixture(autouse=True)
def no_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def recorded(uri, experiment="tl"):
    """The runs of ``experiment`` at ``uri``, newest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return client, ([] if found is None else client.search_runs([found.experiment_id], order_by=["start_time DESC"]))


def artifact_names(client, run_id, path=None):
    return {item.path for item in client.list_artifacts(run_id, path)}


def test_a_run_is_recorded_in_a_sqlite_store_beside_the_configuration(project):
    result = project.run(config=project.write(mlflow=True, epochs=3))
    assert result.exit_code == 0, result.output
    uri = f"sqlite:///{project.root / 'mlflow.db'}"
    assert "MLflow: recording run" in result.output and f"recorded at {uri}" in result.output
    client, runs = recorded(uri)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "3" and run.data.params["framework"] == "fake"
    assert run.data.tags["tl.framework"] == "fake" and run.data.tags["tl.version"]
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [metric.step for metric in history] == [1, 2, 3]
    results = project.results()
    assert run.data.metrics["top_1_accuracy"] == pytest.approx(results["top_1_accuracy"])
    assert run.data.metrics["per_class/cat/top_1_accuracy"] == pytest.approx(
        results["per_class"]["cat"]["top_1_accuracy"])
    names = artifact_names(client, run.info.run_id)
    assert {"results.json", "tl_run.json", "saved_model", "reports"} <= names
    assert "saved_model/labels.json" in artifact_names(client, run.info.run_id, "saved_model")
    assert (project.root / "mlartifacts").is_dir()
    assert not list((project.root / "out").rglob("mlflow.db")) and not (project.root / "results" / "mlartifacts").exists()

    result = project.run(config=project.write(mlflow=True, mlflow_log_model=False, epochs=1))
    _, runs = recorded(uri)
    assert len(runs) == 2 and "saved_model" not in artifact_names(client, runs[0].info.run_id)


def test_a_tracking_server_records_the_run_named_by_the_variable(project, tmp_path, monkeypatch):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "server-artifacts")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the MLflow server did not start"
                time.sleep(0.5)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        result = project.run()  # no "mlflow" key: the variable turns it on
        assert result.exit_code == 0, result.output
        client, runs = recorded(uri)
        assert [run.info.status for run in runs] == ["FINISHED"]
        assert {"results.json", "saved_model"} <= artifact_names(client, runs[0].info.run_id)
        assert not (project.root / "mlflow.db").exists(), "the server's store, not a local one"

        result = project.run(config=project.write(mlflow=False))
        assert result.exit_code == 0 and len(recorded(uri)[1]) == 1, '"mlflow": false wins over the variable'
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_an_unreachable_server_is_a_warning_or_with_mlflow_required_an_error(project, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = project.run()
    assert result.exit_code == 0, result.output
    assert f"Warning: MLflow cannot record this run at {uri} (" in result.output
    assert "the run goes on without it" in result.output and project.results()["num_images"] == 6

    result = project.run(config=project.write(mlflow_required=True, output_dir="out2", evaluate_result_dir="res2"))
    assert result.exit_code == 2
    assert one_line_error(result).startswith(f"Error: MLflow cannot record this run at {uri} (")
    assert not (project.root / "out2" / "saved_model").exists() and not (project.root / "res2" / "results.json").exists()


@pytest.mark.parametrize("error, status", [(KeyboardInterrupt(), "KILLED"), (ValueError("broken"), "FAILED")])
def test_a_failed_or_interrupted_run_is_marked_so_never_left_running(project, error, status):
    from tlcore.api import train
    from tlcore.hookspecs import hookimpl

    class Stop:
        @hookimpl
        def tl_on_epoch_end(self, epoch):
            raise error

    import tests.fake_framework

    with pytest.raises((KeyboardInterrupt, Exception)):
        train(project.write(mlflow=True), plugins=[tests.fake_framework, Stop()])
    _, runs = recorded(f"sqlite:///{project.root / 'mlflow.db'}")
    assert [run.info.status for run in runs] == [status]


def test_the_variable_without_mlflow_installed_is_a_note_and_true_an_error(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = project.run()
    assert result.exit_code == 0, result.output
    assert "Note: MLFLOW_TRACKING_URI is set, but MLflow is not installed, so this run is not recorded" in result.output
    result = project.run(config=project.write(mlflow=True))
    assert result.exit_code == 2
    assert one_line_error(result) == "Error: \"mlflow\" is true, but MLflow is not installed; pip install -e '.[mlflow]'"


def test_a_store_inside_the_outputs_is_refused(project):
    result = project.run(config=project.write(mlflow=True, output_dir="."))
    assert result.exit_code == 2
    assert 'inside "output_dir"' in one_line_error(result) and "set MLFLOW_TRACKING_URI" in one_line_error(result)


def test_only_worker_0_of_several_records_the_run(project, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    from tlplugins.tracking.mlflow_runs import chief

    assert not chief()
    monkeypatch.setenv("RANK", "0")
    assert chief()
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    assert not chief()
