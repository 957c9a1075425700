"""Several workers: 2 torch processes on this machine, meeting on 127.0.0.1 as torchrun starts them.

Each worker gets the same configuration file in a folder of its own, as on two machines; the
chief's folder gets the outputs, the other's stays empty.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, is_output, one_line_error

PHOTOS = REPO / "examples" / "photos" / "dataset"
SETTINGS = {"framework": "torch", "dataset_training_dir": str(PHOTOS / "training"),
            "dataset_validation_dir": str(PHOTOS / "validation"), "weights": None, "mobilenet_alpha": 0.35,
            "input_tensor_size": 64, "epochs": 3, "batch_size": 16, "seed": 0, "output_dir": "out",
            "evaluate_result_dir": "out/evaluation", "worker_timeout": 30}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine(root, **changes):
    """A folder with configuration.json, as on one machine of the cluster."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "configuration.json").write_text(json.dumps({**SETTINGS, **changes}))
    return root


def start(root, rank=None, size=2, port=None, **environment):
    """``tl run`` in ``root``; with ``rank``, as one of ``size`` workers (torchrun's variables)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **environment}
    if rank is not None:
        env.update(RANK=str(rank), LOCAL_RANK="0", WORLD_SIZE=str(size), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
    return subprocess.Popen([sys.executable, "-m", "cli", "run", "configuration.json"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Finished:
    def __init__(self, output):
        self.output = output


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def error_of(output):
    return one_line_error(Finished(output))


def results(root):
    return json.loads((root / "out" / "evaluation" / "results.json").read_text())


def history(root):
    return json.loads((root / "out" / "saved_model" / "tl_run.json").read_text())["history"]


def outputs(root):
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted((root / "out").rglob("*"))
            if path.is_file() and is_output(path.relative_to(root))}





@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    root = machine(tmp_path_factory.mktemp("alone"))
    code, output = finish(start(root))
    assert code == 0, output
    return root


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    base = tmp_path_factory.mktemp("cluster")
    chief, other = machine(base / "chief"), machine(base / "other")
    port = free_port()
    workers = [start(chief, 0, port=port), start(other, 1, port=port)]
    done = [finish(worker) for worker in workers]
    for code, output in done:
        assert code == 0, output
    return chief, other, [output for _, output in done]


@pytest.mark.torch
def test_only_the_chief_writes_and_its_outputs_are_complete(two_workers):
    chief, other, (chief_output, other_output) = two_workers
    assert sorted(path.name for path in other.iterdir()) == ["configuration.json"], "worker 1 writes nothing"
    assert (chief / "out" / "saved_model" / "model.pt2").is_file() and results(chief)["num_images"] == 32
    assert "Workers: 2 (torch.distributed (gloo) at 127.0.0.1:" in chief_output
    assert "this is worker 0 of 2, the chief: it writes the outputs" in chief_output
    assert "Worker 1 of 2: training done" in other_output and "Saved model:" not in other_output
    assert "each of 2 workers its share" in chief_output


@pytest.mark.torch
def test_two_workers_train_as_one_does(one_worker, two_workers):
    chief, _, _ = two_workers
    assert abs(results(chief)["top_1_accuracy"] - results(one_worker)["top_1_accuracy"]) <= 1 / 32, \
        "Top-1 within one image"
    for mine, alone in zip(history(chief), history(one_worker), strict=True):
        assert mine == pytest.approx(alone, rel=1e-3, abs=1e-4), "the same steps, up to floating point"


@pytest.mark.torch
def test_a_worker_that_dies_stops_the_run_and_the_outputs_stay(one_worker, tmp_path):
    chief = machine(tmp_path / "chief", epochs=100000)
    shutil.copytree(one_worker / "out", chief / "out")
    before = outputs(chief)
    port = free_port()
    workers = [start(chief, 0, port=port), start(machine(tmp_path / "other", epochs=100000), 1, port=port)]
    seen = ""
    deadline = time.monotonic() + 180
    while "Epoch 2/" not in seen and time.monotonic() < deadline:
        seen += workers[0].stdout.readline()
    workers[1].send_signal(signal.SIGKILL)
    started = time.monotonic()
    code, output = finish(workers[0], timeout=120)
    assert code == 1, seen + output
    error = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "worker 0 of 2: worker 1 stopped or did not answer in time" in error[0], output
    assert time.monotonic() - started < 60, "within the worker timeout"
    assert outputs(chief) == before, "the previous outputs are untouched"
    workers[1].communicate()


@pytest.mark.torch
def test_torchrun_starts_the_workers(tmp_path):
    root = machine(tmp_path, epochs=1)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
                           "--master-addr=127.0.0.1", f"--master-port={free_port()}", "-m", "cli", "run",
                           "configuration.json"], cwd=root, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "this is worker 0 of 2, the chief" in done.stdout and "Worker 1 of 2: training done" in done.stdout
    assert results(root)["num_images"] == 32


@pytest.mark.torch
def test_ctrl_c_on_the_chief_stops_every_worker(tmp_path):
    port = free_port()
    workers = [start(machine(tmp_path / "chief", epochs=100000), 0, port=port),
               start(machine(tmp_path / "other", epochs=100000), 1, port=port)]
    seen, deadline = "", time.monotonic() + 180
    while "Epoch 2/" not in seen and time.monotonic() < deadline:
        seen += workers[0].stdout.readline()
    workers[0].send_signal(signal.SIGINT)
    code, output = finish(workers[0], timeout=120)
    assert code == 130 and "Interrupted" in output, seen + output
    code, output = finish(workers[1], timeout=120)
    assert code == 1 and "worker 1 of 2: worker 0 stopped or did not answer in time" in error_of(output)
    assert not (tmp_path / "chief" / "out" / "saved_model").exists() and not (tmp_path / "other" / "out").exists()


@pytest.mark.torch
def test_a_worker_alone_waits_at_most_the_timeout(tmp_path):
    started = time.monotonic()
    code, output = finish(start(machine(tmp_path, worker_timeout=5), 0, port=free_port()))
    assert code == 1 and time.monotonic() - started < 60
    assert "worker 0 of 2: the other workers did not all join at 127.0.0.1:" in error_of(output)
    assert 'within 5 s' in output and not (tmp_path / "out").exists()


@pytest.mark.torch
@pytest.mark.parametrize("environment, message", [
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
     "RANK is '2'; it must be a whole number from 0 to 1"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "torchrun's environment is incomplete: RANK, WORLD_SIZE set, MASTER_ADDR, "
                                       "MASTER_PORT not"),
])
def test_a_bad_environment_is_an_error_before_any_work(tmp_path, environment, message):
    code, output = finish(start(machine(tmp_path), **environment))
    assert code == 2 and message in error_of(output)
    assert not (tmp_path / "out").exists()


@pytest.mark.torch
def test_multi_worker_without_torchrun_says_how_to_start(tmp_path):
    code, output = finish(start(machine(tmp_path, distribute="multi_worker")))
    assert code == 2
    assert '"distribute" is "multi_worker", but torchrun\'s environment' in error_of(output)


# --- framework-free: how work and randomness are split ------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_parts_and_shares_split_a_batch_among_workers_exactly_once(size):
    from tlcore.distributed import Cluster

    for count in (0, 1, 5, 32, 33):
        parts = [list(range(count))[Cluster(rank, size).part(count)] for rank in range(size)]
        assert sum(parts, []) == list(range(count)), "contiguous parts, in worker order, covering the batch"
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        shares = [Cluster(rank, size).share(range(count)) for rank in range(size)]
        assert sorted(sum(shares, [])) == list(range(count))


def test_an_images_dropout_depends_on_the_seed_epoch_and_image_only():
    import numpy as np

    from tlcore.training import sample_keys, sample_uniform

    keys = sample_keys(7, 3, [0, 1, 2, 3, 4, 5])
    alone = sample_uniform(sample_keys(7, 3, [4]), 1280)
    assert np.array_equal(sample_uniform(keys, 1280)[4], alone[0]), "the same in any batch, on any worker"
    assert not np.array_equal(sample_uniform(sample_keys(7, 4, [4]), 1280), alone), "another epoch, another draw"
    assert not np.array_equal(sample_uniform(sample_keys(8, 3, [4]), 1280), alone), "another seed, another draw"
    values = sample_uniform(keys, 100_000)
    assert values.min() >= 0 and values.max() < 1 and abs(values.mean() - 0.5) < 0.01
    assert abs((values < 0.2).mean() - 0.2) < 0.01, "a dropout rate of 0.2 drops a fifth"
