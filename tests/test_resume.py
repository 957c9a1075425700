"""Checkpoints after every epoch and `tl run --resume` (fake framework; one real run per framework)."""

import json

import pytest

import tests.fake_framework as fake
import tlcore
from tests.conftest import CHECKPOINT, REPO, one_line_error
from tlcore.errors import ConfigError
from tlcore.hookspecs import hookimpl

SETTINGS = {"epochs": 4, "seed": 3, "learning_rate": 0.3, "batch_size": 2}


class StopAfter:
    """Ctrl-C as the epoch after ``epoch`` ends (its checkpoint is not written: the last one is ``epoch``'s)."""

    def __init__(self, epoch):
        self.epoch = epoch

    @hookimpl
    def tl_on_epoch_end(self, epoch):
        if epoch == self.epoch + 1:
            raise KeyboardInterrupt


@pytest.fixture
def config(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return {**project.values, **SETTINGS}


def model_of(result):
    return json.loads((result.saved_model_dir / "model.json").read_text())


def test_an_interrupted_run_resumes_from_its_last_epoch_and_ends_as_if_never_stopped(config, tmp_path, capsys):
    whole = tlcore.train({**config, "output_dir": str(tmp_path / "whole"), "evaluate_result_dir": str(tmp_path / "w")},
                         plugins=[fake])
    with pytest.raises(KeyboardInterrupt):
        tlcore.train(config, plugins=[fake, StopAfter(2)])
    assert (tmp_path / "out" / CHECKPOINT).is_dir() and not (tmp_path / "out" / "saved_model").exists()
    capsys.readouterr()
    resumed = tlcore.train(config, plugins=[fake], resume=True)
    printed = capsys.readouterr().out
    assert "Resuming after epoch 2 of 4 (checkpoint of " in printed
    assert "Epoch 1/4" not in printed and "Epoch 2/4" not in printed and "Epoch 3/4" in printed
    assert resumed.history == whole.history, "epochs 1-2 from the checkpoint, 3-4 trained as the whole run did"
    assert model_of(resumed) == model_of(whole) and resumed.metrics == whole.metrics
    assert not (tmp_path / "out" / CHECKPOINT).exists(), "a finished run leaves nothing to resume"


def test_the_command_line_resumes_after_ctrl_c(project, monkeypatch):
    (project.root / "stopper.py").write_text(
        "from tlcore.hookspecs import hookimpl\n\n\n@hookimpl\ndef tl_on_epoch_end(epoch):\n"
        "    if epoch == 3:\n        raise KeyboardInterrupt\n")
    monkeypatch.chdir(project.root)
    written = project.write(**SETTINGS)
    stopped = project.run("-p", "stopper", config=written)
    assert stopped.exit_code == 130
    resumed = project.run("--resume", config=written)
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming after epoch 2 of 4" in resumed.stdout and "Epoch 3/4" in resumed.stdout
    assert [row["epoch"] for row in json.loads((project.root / "out" / "saved_model" / "tl_run.json").read_text())
            ["history"]] == [1, 2, 3, 4]
    assert project.run("--resume", config=written).exit_code == 2, "nothing to resume after a finished run"


def test_resume_with_nothing_to_resume_says_so(project):
    result = project.run("--resume", config=project.write(**SETTINGS))
    assert result.exit_code == 2
    assert one_line_error(result).startswith(f"Error: nothing to resume in {project.root / 'out'}: no interrupted run left "
                                             "a checkpoint there")
    assert not (project.root / "out").exists(), "nothing written"


def test_a_changed_configuration_is_not_resumed(config):
    with pytest.raises(KeyboardInterrupt):
        tlcore.train(config, plugins=[fake, StopAfter(1)])
    with pytest.raises(ConfigError, match="the configuration or the training images changed since the interrupted "
                                          r"run \(its checkpoint is of epoch 1\)"):
        tlcore.train(config, plugins=[fake], resume=True, learning_rate=0.1)
    tlcore.train(config, plugins=[fake], resume=True)


def test_a_run_without_resume_starts_over_and_removes_the_checkpoint(config, capsys):
    with pytest.raises(KeyboardInterrupt):
        tlcore.train(config, plugins=[fake, StopAfter(2)])
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        tlcore.train(config, plugins=[fake, StopAfter(0)])
    assert "Starting over: removing the checkpoint an interrupted run left" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="nothing to resume"):
        tlcore.train(config, plugins=[fake], resume=True)


def test_a_seedless_run_resumes_with_the_seed_it_started_with(config, tmp_path):
    config["seed"] = None
    with pytest.raises(KeyboardInterrupt):
        tlcore.train(config, plugins=[fake, StopAfter(1)])
    from tlcore.training import CHECKPOINT_FILE, state

    seed = state.load(tmp_path / "out" / CHECKPOINT / CHECKPOINT_FILE)["seed"]
    resumed = tlcore.train(config, plugins=[fake], resume=True)
    again = tlcore.train({**config, "seed": seed, "output_dir": str(tmp_path / "again"),
                          "evaluate_result_dir": str(tmp_path / "again")}, plugins=[fake])
    assert resumed.history == again.history


def photos(tmp_path, **changes):
    return {"dataset_training_dir": str(REPO / "examples" / "photos" / "dataset" / "training"),
            "dataset_validation_dir": str(REPO / "examples" / "photos" / "dataset" / "validation"),
            "weights": None, "mobilenet_alpha": 0.35, "input_tensor_size": 64, "seed": 0, "epochs": 2,
            "fine_tune_layers": 3, "fine_tune_epochs": 2, "dropout": 0.0,
            "output_dir": str(tmp_path / "out"), "evaluate_result_dir": str(tmp_path / "out"), **changes}


def resumed_in_fine_tuning(tmp_path, framework):
    """Stopped in the fine-tuning phase (after epoch 3 of 4), resumed: it ends with the uninterrupted run."""
    whole = tlcore.train(photos(tmp_path / "whole", framework=framework))
    with pytest.raises(KeyboardInterrupt):
        tlcore.train(photos(tmp_path, framework=framework), plugins=[StopAfter(3)])
    resumed = tlcore.train(photos(tmp_path, framework=framework), resume=True)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    for mine, theirs in zip(resumed.history, whole.history, strict=True):
        assert mine == pytest.approx(theirs, rel=1e-4, abs=1e-5)
    assert resumed.metrics["top_1_accuracy"] == pytest.approx(whole.metrics["top_1_accuracy"], abs=1 / 32)


@pytest.mark.tensorflow
def test_keras_resumes_in_the_fine_tuning_phase(tmp_path):
    resumed_in_fine_tuning(tmp_path, "keras")


@pytest.mark.torch
def test_torch_resumes_in_the_fine_tuning_phase(tmp_path):
    resumed_in_fine_tuning(tmp_path, "torch")


def test_an_interrupt_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    from tlcore.training import CHECKPOINT_FILE, Checkpoint, state

    checkpoint = Checkpoint(tmp_path / CHECKPOINT, "print")
    checkpoint.save({"epoch": 1})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(state, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({"epoch": 2})
    monkeypatch.undo()
    assert [path.name for path in (tmp_path / CHECKPOINT).iterdir()] == [CHECKPOINT_FILE], "no partial file"
    assert state.load(tmp_path / CHECKPOINT / CHECKPOINT_FILE)["epoch"] == 1


class Planted:
    """A pickle that, once loaded, creates the file ``path`` (as a shell command would do harm)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("name", ["state.pickle", "state.npz"])
def test_a_planted_pickle_in_the_checkpoint_folder_is_never_loaded(config, tmp_path, name):
    """An output folder someone else wrote: neither a run nor a run with --resume unpickles what is there."""
    import pickle

    from tlcore.training import state

    planted = tmp_path / "planted"
    folder = tmp_path / "out" / CHECKPOINT
    folder.mkdir(parents=True)
    payload = pickle.dumps({"epoch": 1, "trap": Planted(tmp_path / "ran")})
    (folder / name).write_bytes(payload)
    with pytest.raises(ConfigError) as error:
        tlcore.train({**config, "output_dir": str(tmp_path / "out")}, plugins=[fake], resume=True)
    assert "pickle" in str(error.value) or "nothing to resume" in str(error.value)
    tlcore.train({**config, "output_dir": str(tmp_path / "out")}, plugins=[fake])
    assert not (tmp_path / "ran").exists() and not planted.exists(), "nothing in the file ran"
    with pytest.raises(state.StateError):
        (folder.mkdir(parents=True), (folder / "x.npz").write_bytes(payload), state.load(folder / "x.npz"))


def test_the_checkpoint_keeps_what_trainers_give_and_gives_it_back_the_same(tmp_path):
    """Arrays, tuples, dicts with number keys (a torch optimizer's state), numbers and strings round-trip."""
    import numpy as np

    from tlcore.training import state

    value = {"weights": [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros(0, np.int64)],
             "optimizer": {"state": {0: {"step": np.float32(3)}}, "param_groups": [{"betas": (0.9, 0.999),
                                                                                    "lr": 0.1, "fused": None}]},
             "history": [{"epoch": 1, "loss": float("nan")}], "best": (0.5, 2, [np.ones(2)], {"val_loss": 0.5})}
    with open(tmp_path / "s.npz", "wb") as handle:
        state.dump(value, handle)
    back = state.load(tmp_path / "s.npz")
    assert back["optimizer"]["state"][0]["step"] == 3.0 and back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["weights"][0].dtype == np.float32 and np.array_equal(back["weights"][0], value["weights"][0])
    assert isinstance(back["best"], tuple) and np.array_equal(back["best"][2][0], np.ones(2))
    assert np.isnan(back["history"][0]["loss"])
