"""The PyTorch trainer: a new softmax head on the feature extractor.

The training policy is the core's (:func:`tlcore.training.fit`: cached features,
hold-out and early stopping, phases, schedule, class weights, epoch lines); this
module builds the classifier and gives the core its steps as a
:class:`tlcore.training.Trainable`. The base always runs in inference mode
(BatchNorm frozen), as with Keras.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from tlcore.hookspecs import hookimpl
from tlcore.outputs import require_free_space
from tlcore.sampling import sample_uniform
from tlcore.training import StepResult, fit

from tlplugins.torch.distributed import all_reduce_sum, broadcast_tensors, local_gpus

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.dataset import DatasetIndex
    from tlcore.distributed import Cluster
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter
    from tlcore.training import RunEvents

TL_FRAMEWORK = "torch"


_CLASSES: dict[str, type] = {}


def classifier_modules() -> Any:
    """The classes, defined once torch is imported (plugin modules import torch only inside hooks).

    They are reachable as attributes of this module (see :func:`__getattr__`), so a
    classifier saved with ``torch.save`` loads back with ``torch.load``.
    """
    if _CLASSES:
        return _CLASSES["Features"], _CLASSES["Classifier"]
    import torch
    from torch import nn

    class Features(nn.Module):
        """The extractor's output as one vector per image (feature maps are averaged, like Keras' pooling)."""

        def __init__(self, extractor: Any, pool: bool = False) -> None:
            super().__init__()
            self.extractor = extractor
            self.pool = pool  # decided once, so that the forward pass has no data-dependent branch to trace

        def train(self, mode: bool = True) -> Any:
            self.training = mode
            try:
                self.extractor.train(mode)
            except NotImplementedError:  # a torch.export program: fixed in inference mode
                pass
            return self

        def forward(self, images: Any) -> Any:
            features = self.extractor(images)
            if self.pool:
                features = features.mean(dim=(2, 3))
            return torch.flatten(features, 1)

    class Classifier(nn.Module):
        """Image -> features -> dropout -> linear -> softmax over label ids."""

        def __init__(self, features: Any, dim: int, num_outputs: int, dropout: float) -> None:
            super().__init__()
            self.features = features
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_outputs))

        def forward(self, images: Any) -> Any:
            return torch.softmax(self.head(self.features(images)), dim=1)

    for cls in (Features, Classifier):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
        _CLASSES[cls.__name__] = cls
    return Features, Classifier


def __getattr__(name: str) -> Any:
    """``Features`` and ``Classifier``, created on first use: how ``torch.load`` finds them."""
    if name in ("Features", "Classifier"):
        classifier_modules()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def leaf_modules(model: Any) -> Any:
    """The model's layers in order: modules without children."""
    return [module for module in model.modules() if not list(module.children())]


def freeze(extractor: Any, fine_tune_layers: int) -> None:
    """Train only the last ``fine_tune_layers`` layers of the base (none by default)."""
    layers = leaf_modules(extractor)
    for index, layer in enumerate(layers):
        trainable = index >= len(layers) - fine_tune_layers if fine_tune_layers else False
        for parameter in layer.parameters(recurse=False):
            parameter.requires_grad_(trainable)


def model_key(model: Any) -> Any:
    """A hash of ``model``'s structure and weights: the feature cache is reused only while it holds."""
    import torch

    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "torch:" + digest.hexdigest()


class Device:
    """Where the classifier computes: this process's GPUs (:func:`tlplugins.torch.distributed.local_gpus`; several:
    the base runs under ``torch.nn.DataParallel``, each GPU on its part of the batch), else the CPU; with
    ``mixed``, in float16 on a GPU (bfloat16 on the CPU) while the weights stay float32."""

    def __init__(self, mixed: bool) -> None:
        import torch

        self.gpus = local_gpus()
        self.torch = torch.device(f"cuda:{self.gpus[0]}" if self.gpus else "cpu")
        self.mixed = mixed

    def parallel(self, module: Any) -> Any:
        """``module``, or on several GPUs ``module`` under DataParallel (its gradients reach ``module``)."""
        import torch

        return torch.nn.DataParallel(module, device_ids=self.gpus) if len(self.gpus) > 1 else module

    def tensor(self, array: Any) -> Any:
        import torch

        return torch.from_numpy(array).to(self.torch, non_blocking=True)

    def autocast(self) -> Any:
        import torch

        dtype = torch.float16 if self.torch.type == "cuda" else torch.bfloat16
        return torch.autocast(self.torch.type, dtype=dtype, enabled=self.mixed)


class TorchSteps:
    """The training and test steps of one phase: on features only the head trains, else images go through
    the whole classifier (its base stays in inference mode, BatchNorm frozen)."""

    def __init__(self, classifier: Any, cached: bool, learning_rate: float, class_weights: Any, device: Any,
                 cluster: Cluster, label_smoothing: float = 0.0, weight_decay: float = 0.0) -> None:
        import torch

        self.classifier = classifier
        self.cached = cached
        self.device = device
        self.cluster = cluster
        self.trained = classifier.head if cached else classifier
        self.features = device.parallel(classifier.features)
        self.parameters = [p for p in self.trained.parameters() if p.requires_grad]
        kernel = classifier.head[1].weight  # L2 on the head's kernel only, as tl's head search trains
        groups: list[dict[str, Any]] = [
            {"params": [p for p in self.parameters if p is kernel], "weight_decay": weight_decay},
             {"params": [p for p in self.parameters if p is not kernel]}]
        self.optimizer = torch.optim.Adam(groups, lr=learning_rate)
        self.weight = torch.tensor(class_weights, device=device.torch) if class_weights is not None else None
        self.label_smoothing = label_smoothing
        self.loss_of = torch.nn.CrossEntropyLoss(weight=self.weight, label_smoothing=label_smoothing)
        self.scaler = torch.amp.GradScaler(device.torch.type, enabled=device.mixed and device.torch.type == "cuda")

    def _logits(self, inputs: Any, keys: Any = None) -> Any:
        """The head's logits; in training (``keys``: one key per image), its dropout drawn from each image's key,
        so that an image gets the same dropout whichever worker, or batch, has it."""
        with self.device.autocast():
            features = inputs if self.cached else self.features(inputs)
            dropout, linear = self.classifier.head
            if keys is None or not dropout.p:
                return self.classifier.head(features).float()
            kept = self.device.tensor(sample_uniform(keys, features.shape[1]) >= dropout.p)
            return linear(features * kept / (1.0 - dropout.p)).float()

    def _loss(self, scores: Any, labels: Any) -> Any:
        """The batch's mean loss; with several workers, this worker's share of it (its part's loss over the whole
        batch's size, or weight, which an all-reduce adds up)."""
        import torch

        if self.cluster.size == 1:
            return self.loss_of(scores, labels)

        total = torch.nn.functional.cross_entropy(scores, labels, weight=self.weight, reduction="sum",
                                                  label_smoothing=self.label_smoothing)
        size = (self.weight[labels].sum() if self.weight is not None
                else torch.tensor(float(len(labels)), device=scores.device)).detach().reshape(1).clone()
        all_reduce_sum([size], self.cluster)
        return total / size[0].clamp_min(1e-12)

    def train(self, inputs: Any, labels: Any, keys: Any = None) -> Any:
        self.classifier.features.eval()
        self.classifier.head.train()
        inputs, labels = self.device.tensor(inputs), self.device.tensor(labels)
        self.optimizer.zero_grad(set_to_none=True)
        scores = self._logits(inputs, keys)
        loss = self._loss(scores, labels)
        self.scaler.scale(loss).backward()
        if self.cluster.size > 1:  # the gradient of the whole batch: every worker's part added up
            import torch

            for parameter in self.parameters:
                if parameter.grad is None:
                    parameter.grad = torch.zeros_like(parameter)
            all_reduce_sum([parameter.grad for parameter in self.parameters], self.cluster)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return StepResult(float(loss.detach()), int((scores.argmax(dim=1) == labels).sum()))

    def test(self, inputs: Any, labels: Any) -> Any:
        import torch

        self.classifier.eval()
        with torch.inference_mode():
            inputs, labels = self.device.tensor(inputs), self.device.tensor(labels)
            scores = self._logits(inputs)
            return StepResult(float(self._loss(scores, labels)), int((scores.argmax(dim=1) == labels).sum()))

    def set_learning_rate(self, rate: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def snapshot(self) -> Any:
        return {name: value.detach().clone() for name, value in self.trained.state_dict().items()}

    def restore(self, state: Any) -> None:
        self.trained.load_state_dict(state)

    def state(self) -> Any:
        """Weights and optimizer (and gradient scaler) state, for a checkpoint: a resumed run goes on exactly."""
        return {"weights": self.snapshot(), "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state(self, state: Any) -> None:
        self.restore(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])


class TorchTrainable:
    """The PyTorch classifier as the core's training policy sees it (:class:`tlcore.training.Trainable`)."""

    def __init__(self, extractor: Any, classifier: Any, dim: int, device: Any, cluster: Cluster) -> None:
        self.extractor = extractor
        self.classifier = classifier
        self.dim = dim
        self.device = device
        self.cluster = cluster
        self.name = type(extractor).__name__
        self.layers = len(leaf_modules(extractor))
        self._features = device.parallel(classifier.features)

    def features(self, images: Any) -> Any:
        import torch

        with torch.inference_mode(), self.device.autocast():
            return self._features(self.device.tensor(images)).float().cpu().numpy()

    def head_scores(self, features: Any) -> Any:
        import torch

        self.classifier.eval()
        with torch.inference_mode():
            return torch.softmax(self.classifier.head(self.device.tensor(features)), dim=1).cpu().numpy()

    def model_key(self) -> Any:
        return model_key(self.extractor) + (":mixed" if self.device.mixed else "")

    def freeze(self, layers: int) -> None:
        freeze(self.extractor, layers)

    def steps(self, cached: bool, learning_rate: float, class_weights: Any, *, label_smoothing: float = 0.0,
              weight_decay: float = 0.0) -> Any:
        return TorchSteps(self.classifier, cached, learning_rate, class_weights, self.device, self.cluster,
                          label_smoothing, weight_decay)


@hookimpl(trylast=True)
def tl_train(model: Any, dataset: DatasetIndex, preprocessing: Preprocessing, config: RunConfig, reporter: Reporter,
             events: RunEvents) -> Any:
    import torch

    Features, Classifier = classifier_modules()
    if config.seed is not None:
        torch.manual_seed(config.seed)
    size = preprocessing.size
    with torch.inference_mode():
        output = model(torch.zeros(1, 3, size, size))
    features = Features(model, pool=output.dim() == 4).eval()
    dim = int(output.shape[1] if output.dim() == 4 else torch.flatten(output, 1).shape[1])
    classifier = Classifier(features, dim, dataset.num_outputs, config.dropout)
    parameters = sum(p.numel() for p in classifier.parameters())
    if events.cluster.chief:  # the chief saves the model
        require_free_space(config.output_dir, parameters * 4 + 16 * 2**20, "the saved model")
    device = Device(config.mixed_precision is True)
    classifier.to(device.torch)
    if events.cluster.size > 1:  # every worker starts from the chief's weights (a seedless random base differs)

        broadcast_tensors(list(classifier.state_dict().values()), events.cluster)
    try:
        fit(TorchTrainable(model, classifier, dim, device, events.cluster), dataset, preprocessing, config, reporter,
            events)
    finally:
        classifier.cpu()  # saved and evaluated from the CPU, float32 whatever the training precision
    return classifier.eval()
