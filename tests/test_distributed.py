"""Several workers: 2 processes on this machine, meeting on 127.0.0.1, for each framework: torch workers
started as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), keras workers with TF_CONFIG.

Each worker gets the same configuration file in a folder of its own, as on two machines; the
chief's folder gets the outputs, the other's stays empty.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, is_output, one_line_error

PHOTOS = REPO / "examples" / "photos" / "dataset"
SETTINGS = {"dataset_training_dir": str(PHOTOS / "training"), "dataset_validation_dir": str(PHOTOS / "validation"),
            "weights": None, "mobilenet_alpha": 0.35, "input_tensor_size": 64, "epochs": 3, "batch_size": 16,
            "seed": 0, "output_dir": "out", "evaluate_result_dir": "out/evaluation", "worker_timeout": 30,
            "head_search": False}
"""``head_search`` off: its choice among heads of nearly equal cross-validated accuracy is a discrete decision that
floating-point differences between one worker's and several workers' features can tip, and these tests compare the
workers' training steps, exactly."""
FRAMEWORKS = [pytest.param("torch", marks=pytest.mark.torch), pytest.param("keras", marks=pytest.mark.tensorflow)]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine(root, framework="torch", **changes):
    """A folder with configuration.json, as on one machine of the cluster."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "configuration.json").write_text(json.dumps({**SETTINGS, "framework": framework, **changes}))
    return root


class Cluster:
    """Where the workers of one run meet: a port for torch's store, or one per keras worker."""

    def __init__(self, framework, size=2):
        self.framework, self.size = framework, size
        self.ports = [free_port() for _ in range(size if framework == "keras" else 1)]

    def environment(self, rank):
        if self.framework == "keras":
            workers = [f"127.0.0.1:{port}" for port in self.ports]
            return {"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                             "task": {"type": "worker", "index": rank}})}
        return {"RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": str(self.size), "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(self.ports[0])}

    def start(self, root, rank):
        return start(root, **self.environment(rank))


def start(root, **environment):
    """``tl run`` in ``root`` with ``environment`` added."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)])),
           **environment}
    return subprocess.Popen([sys.executable, "-m", "tlcli", "run", "configuration.json"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Finished:
    def __init__(self, output):
        self.output = output


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def error_of(output):
    return one_line_error(Finished(output))


def read_until(process, text, timeout=180):
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline and process.poll() is None:
        seen += process.stdout.readline()
    return seen


def results(root):
    return json.loads((root / "out" / "evaluation" / "results.json").read_text())


def history(root):
    return json.loads((root / "out" / "saved_model" / "tl_run.json").read_text())["history"]


def outputs(root):
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted((root / "out").rglob("*"))
            if path.is_file() and is_output(path.relative_to(root))}





@pytest.fixture(scope="module", params=FRAMEWORKS)
def framework(request):
    return request.param


@pytest.fixture(scope="module")
def one_worker(framework, tmp_path_factory):
    root = machine(tmp_path_factory.mktemp(f"alone-{framework}"), framework)
    code, output = finish(start(root))
    assert code == 0, output
    return root


@pytest.fixture(scope="module")
def two_workers(framework, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"cluster-{framework}")
    chief, other = machine(base / "chief", framework), machine(base / "other", framework)
    cluster = Cluster(framework)
    workers = [cluster.start(chief, 0), cluster.start(other, 1)]
    done = [finish(worker) for worker in workers]
    for code, output in done:
        assert code == 0, output
    return chief, other, [output for _, output in done]


ENGINES = {"torch": "torch.distributed (gloo) at 127.0.0.1:",
           "keras": "tf.distribute (MultiWorkerMirroredStrategy) at 127.0.0.1:"}


def test_only_the_chief_writes_and_its_outputs_are_complete(framework, two_workers):
    chief, other, (chief_output, other_output) = two_workers
    assert sorted(path.name for path in other.iterdir()) == ["configuration.json"], "worker 1 writes nothing"
    assert (chief / "out" / "saved_model" / "tl_run.json").is_file() and results(chief)["num_images"] == 32
    assert f"Workers: 2 ({ENGINES[framework]}" in chief_output
    assert "this is worker 0 of 2, the chief: it writes the outputs" in chief_output
    assert "each of 2 workers its share" in chief_output
    assert "Worker 1 of 2: training done" in other_output and "Saved model:" not in other_output
    assert "The chief (worker 0) has written the outputs" in other_output


def test_two_workers_train_as_one_does(one_worker, two_workers):
    chief, _, _ = two_workers
    assert abs(results(chief)["top_1_accuracy"] - results(one_worker)["top_1_accuracy"]) <= 1 / 32, \
        "Top-1 within one image"
    for mine, alone in zip(history(chief), history(one_worker), strict=True):
        assert mine == pytest.approx(alone, rel=1e-3, abs=1e-4), "the same steps (and dropout), up to floating point"



@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_streamed_images_are_trained_and_evaluated_by_every_worker_as_by_one(tmp_path, framework):
    """Augmentation without views: images go through the whole model every epoch, each worker decoding its
    part of every batch, and the final evaluation too is spread (each worker scores its share of the
    validation images)."""
    streamed = {"augmentation": ["flip"], "augmentation_views": 0, "epochs": 2}
    alone = machine(tmp_path / "alone", framework, **streamed)
    assert finish(start(alone))[0] == 0
    cluster = Cluster(framework)
    chief, other = (machine(tmp_path / name, framework, **streamed) for name in ("chief", "other"))
    (code, output), (other_code, other_output) = [finish(w) for w in [cluster.start(chief, 0), cluster.start(other, 1)]]
    assert code == 0 and other_code == 0, output + other_output
    assert "evaluating (this worker's share, of 2) 16/16" in output and "16/16" in other_output
    mine, theirs = results(chief), results(alone)
    assert mine["num_images"] == theirs["num_images"] == 32
    assert abs(mine["top_1_accuracy"] - theirs["top_1_accuracy"]) <= 1 / 32, "Top-1 within one image"
    for row, alone_row in zip(history(chief), history(alone), strict=True):
        assert row == pytest.approx(alone_row, rel=1e-3, abs=1e-4)

def test_a_worker_that_dies_stops_the_run_and_restarted_workers_continue_from_the_checkpoint(framework, one_worker,
                                                                                              tmp_path):
    chief, other = machine(tmp_path / "chief", framework, epochs=12), machine(tmp_path / "other", framework, epochs=12)
    shutil.copytree(one_worker / "out", chief / "out")
    before = outputs(chief)
    cluster = Cluster(framework)
    workers = [cluster.start(chief, 0), cluster.start(other, 1)]
    seen = read_until(workers[0], "Epoch 2/")
    workers[1].send_signal(signal.SIGKILL)
    started = time.monotonic()
    code, output = finish(workers[0], timeout=120)
    assert code == 1, seen + output
    assert "worker 0 of 2: worker 1 stopped or did not answer in time" in error_of(output)
    assert time.monotonic() - started < 60, "within the worker timeout"
    assert outputs(chief) == before, "the previous outputs are untouched"
    workers[1].communicate()

    # restarted, as a cluster's scheduler restarts failed workers (a Kubernetes Job): no --resume needed. With a
    # longer worker_timeout, which does not shape the model (the checkpoint still holds): on a busy machine the chief
    # reads its cached features while worker 1 computes its share, and 30 s may not be enough for that difference
    for root in (chief, other):
        machine(root, framework, epochs=12, worker_timeout=180)
    cluster = Cluster(framework)
    (code, output), (other_code, other_output) = [finish(worker, timeout=600)
                                                  for worker in [cluster.start(chief, 0), cluster.start(other, 1)]]
    assert code == 0 and other_code == 0, f"{output}\n--- worker 1 ---\n{other_output}"
    resumed = re.search(r"Resuming after epoch (\d+) of 12: a run of several workers continues", output)
    assert resumed and 1 <= int(resumed[1]) < 12, output
    assert [row["epoch"] for row in history(chief)] == list(range(1, 13)), "every epoch once: none lost, none twice"
    assert sorted(path.name for path in other.iterdir()) == ["configuration.json"], "worker 1 still writes nothing"


@pytest.mark.torch
def test_torchrun_starts_the_workers(tmp_path):
    root = machine(tmp_path, epochs=1)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
                           "--master-addr=127.0.0.1", f"--master-port={free_port()}", "-m", "tlcli", "run",
                           "configuration.json"], cwd=root, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "this is worker 0 of 2, the chief" in done.stdout and "Worker 1 of 2: training done" in done.stdout
    assert results(root)["num_images"] == 32


def worker_of(launcher, rank):
    """The pid of the worker of ``rank`` that torchrun's agent (``launcher``) started."""
    for pid in subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split():
        with open(f"/proc/{pid}/environ") as handle:
            if f"RANK={rank}" in handle.read().split("\0"):
                return int(pid)
    raise AssertionError(f"torchrun has no worker of rank {rank}")


@pytest.mark.torch
def test_torchrun_restarts_the_workers_after_one_dies_and_they_continue_from_the_checkpoint(tmp_path):
    root = machine(tmp_path, epochs=40)
    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
                                 "--max-restarts=1", "--master-addr=127.0.0.1", f"--master-port={free_port()}", "-m",
                                 "tlcli", "run", "configuration.json"], cwd=root,
                                env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    seen = read_until(launcher, "Epoch 5/")
    os.kill(worker_of(launcher, 1), signal.SIGKILL)
    code, output = finish(launcher)
    assert code == 0, seen + output
    assert "worker 1 stopped or did not answer in time" in output or "Terminated: stopped before finishing" in output, \
        "the survivor stopped (on its own, or by torchrun's SIGTERM), and torchrun restarted both"
    resumed = re.search(r"Resuming after epoch (\d+) of 40: a run of several workers continues from the checkpoint",
                        output)
    assert resumed and 4 <= int(resumed[1]) < 40, output
    assert [row["epoch"] for row in history(root)] == list(range(1, 41)), "every epoch once: none lost, none twice"
    assert results(root)["num_images"] == 32 and not (root / "out" / ".tl-checkpoint").exists()


@pytest.mark.torch
def test_ctrl_c_on_the_chief_stops_every_worker(tmp_path):
    cluster = Cluster("torch")
    workers = [cluster.start(machine(tmp_path / "chief", epochs=100000), 0),
               cluster.start(machine(tmp_path / "other", epochs=100000), 1)]
    seen = read_until(workers[0], "Epoch 2/")
    workers[0].send_signal(signal.SIGINT)
    code, output = finish(workers[0], timeout=120)
    assert code == 130 and "Interrupted" in output, seen + output
    code, output = finish(workers[1], timeout=120)
    assert code == 1 and "worker 1 of 2: worker 0 stopped or did not answer in time" in error_of(output)
    assert not (tmp_path / "chief" / "out" / "saved_model").exists() and not (tmp_path / "other" / "out").exists()


@pytest.mark.torch
def test_a_worker_alone_waits_at_most_the_timeout(tmp_path):  # keras: the test below
    started = time.monotonic()
    code, output = finish(Cluster("torch").start(machine(tmp_path, worker_timeout=5), 0))
    assert code == 1 and time.monotonic() - started < 60
    assert "worker 0 of 2: the other workers did not all join" in error_of(output)
    assert "within 5 s" in output and not (tmp_path / "out").exists()


@pytest.mark.tensorflow
def test_a_keras_worker_waiting_for_the_others_stops_on_sigterm_and_on_a_missing_chief(tmp_path):
    cluster = Cluster("keras")
    waiting = cluster.start(machine(tmp_path / "chief", "keras", worker_timeout=600), 0)
    read_until(waiting, "waiting for the other workers")
    stopped = time.monotonic()
    waiting.send_signal(signal.SIGTERM)
    code, output = finish(waiting, timeout=60)
    assert code == 143 and time.monotonic() - stopped < 10, "TensorFlow's wait would ignore the signal for an hour"
    started = time.monotonic()
    code, output = finish(cluster.start(machine(tmp_path / "other", "keras", worker_timeout=5), 1))
    assert code == 1 and time.monotonic() - started < 60
    assert "worker 1 of 2: the other workers did not all join within 5 s" in error_of(output)
    assert "worker 0 did not answer at 127.0.0.1:" in output and not (tmp_path / "other" / "out").exists()


@pytest.mark.parametrize("framework, environment, message", [
    pytest.param("torch", {"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
                 "RANK is '2'; it must be a whole number from 0 to 1", marks=pytest.mark.torch),
    pytest.param("torch", {"RANK": "0", "WORLD_SIZE": "2"},
                 "torchrun's environment is incomplete: RANK, WORLD_SIZE set, MASTER_ADDR, MASTER_PORT not",
                 marks=pytest.mark.torch),
    ("keras", {"TF_CONFIG": "{cluster"}, "TF_CONFIG is not JSON; write it as"),
    ("keras", {"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
                            '"task": {"type": "worker", "index": 2}}'}, "TF_CONFIG has the task index 2; it must be "
                                                                        "0 to 1"),
    ("keras", {"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}'},
     'TF_CONFIG has the address "127.0.0.1"; addresses are "host:port"'),
    ("keras", {"TF_CONFIG": '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", '
                            '"index": 0}}'}, "TF_CONFIG has jobs ['chief']; tl uses the worker list only"),
])
def test_a_bad_environment_is_an_error_before_any_work(tmp_path, framework, environment, message):
    code, output = finish(start(machine(tmp_path, framework), **environment))
    assert code == 2 and message in error_of(output)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("framework, needed", [pytest.param("torch", "torchrun's environment",
                                                            marks=pytest.mark.torch),
                                               ("keras", "TF_CONFIG is not set")])
def test_multi_worker_without_the_engines_environment_says_how_to_start(tmp_path, framework, needed):
    code, output = finish(start(machine(tmp_path, framework, distribute="multi_worker")))
    assert code == 2
    assert f'"distribute" is "multi_worker", but {needed}' in error_of(output)


TWO_CPU_DEVICES = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tlcli.main import entry
sys.argv[0] = "tl"
entry()
"""


@pytest.mark.parametrize("framework", [pytest.param("keras", marks=pytest.mark.tensorflow)], indirect=True)
def test_mirrored_over_two_devices_trains_as_one_device_does(framework, one_worker, tmp_path):
    """One process, the CPU split into 2 logical devices (as a machine with 2 GPUs has 2): each batch is split
    between them, and the strategy adds their gradients up."""
    root = machine(tmp_path, framework, distribute="mirrored")
    done = subprocess.run([sys.executable, "-c", TWO_CPU_DEVICES, "run", "configuration.json"], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Devices: CPU" in done.stdout and "mirrored over 2 devices (CPU:0, CPU:1; tf.distribute.Mirrored" in \
        done.stdout
    assert results(root)["top_1_accuracy"] == pytest.approx(results(one_worker)["top_1_accuracy"], abs=1 / 32)
    for mine, alone in zip(history(root), history(one_worker), strict=True):
        assert mine == pytest.approx(alone, rel=1e-3, abs=1e-4), "the same steps (and dropout), up to floating point"



SPLIT_STEPS = """
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from types import SimpleNamespace
import tlplugins.keras.distributed as distributed
from tlplugins.keras.trainer import KerasTrainable, build_classifier
from tlcore.distributed import SINGLE


def steps_on(images, labels, mirrored):
    distributed._strategy = distributed.mirrored(every_device=True) if mirrored else None
    tf.keras.utils.set_random_seed(1)
    with distributed.scope():
        inputs = tf.keras.Input((8, 8, 3))
        base = tf.keras.Model(inputs, tf.keras.layers.BatchNormalization()(tf.keras.layers.Conv2D(4, 3)(inputs)))
        classifier = build_classifier(base, 3, 8, 0.0)
    trainable = KerasTrainable(base, classifier, SINGLE)
    trainable.freeze(2)
    steps = trainable.steps(False, 0.1, None)
    trained = steps.train(images, labels)
    return trained, steps.test(images, labels), trainable.features(images), classifier.model.get_weights()


rng = np.random.default_rng(0)
for count in (5, 1):
    images, labels = rng.random((count, 8, 8, 3), dtype=np.float32), rng.integers(0, 3, count)
    alone, split = steps_on(images, labels, False), steps_on(images, labels, True)
    assert distributed.strategy().num_replicas_in_sync == 2
    for one, two in zip(alone[:2], split[:2]):
        assert abs(one.loss - two.loss) < 1e-5 and one.correct == two.correct, (count, alone[:2], split[:2])
    assert split[2].shape == alone[2].shape and np.allclose(split[2], alone[2], atol=1e-5), count
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(alone[3], split[3])), count
print("same steps")
"""


@pytest.mark.tensorflow
def test_mirrored_steps_split_any_batch_between_devices_even_one_smaller_than_the_devices():
    """A batch of 1 image on 2 devices: one device gets a zero-row part that the mask leaves out (no model runs
    on an empty batch); losses, counts, features and the trained weights are those of one device."""
    done = subprocess.run([sys.executable, "-c", SPLIT_STEPS], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "same steps" in done.stdout, done.stdout + done.stderr[-3000:]

@pytest.mark.parametrize("framework, environment, named", [
    ("keras", {"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", '
                            '"index": 0}}'}, "TF_CONFIG is set"),
    pytest.param("torch", {"RANK": "0", "WORLD_SIZE": "2"}, "torchrun's environment is set (RANK, WORLD_SIZE)",
                 marks=pytest.mark.torch),
])
def test_mirrored_within_a_cluster_says_which_to_choose(tmp_path, framework, environment, named):
    code, output = finish(start(machine(tmp_path, framework, distribute="mirrored"), **environment))
    assert code == 2 and not (tmp_path / "out").exists()
    assert error_of(output).startswith(f'Error: "distribute" is "mirrored" (one process on this machine\'s '
                                       f"devices), but {named}")


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

    from tlcore.sampling import sample_keys, sample_uniform

    keys = sample_keys(7, 3, [0, 1, 2, 3, 4, 5])
    alone = sample_uniform(sample_keys(7, 3, [4]), 1280)
    assert np.array_equal(sample_uniform(keys, 1280)[4], alone[0]), "the same in any batch, on any worker"
    assert not np.array_equal(sample_uniform(sample_keys(7, 4, [4]), 1280), alone), "another epoch, another draw"
    assert not np.array_equal(sample_uniform(sample_keys(8, 3, [4]), 1280), alone), "another seed, another draw"
    values = sample_uniform(keys, 100_000)
    assert values.min() >= 0 and values.max() < 1 and abs(values.mean() - 0.5) < 0.01
    assert abs((values < 0.2).mean() - 0.2) < 0.01, "a dropout rate of 0.2 drops a fifth"
