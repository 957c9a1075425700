"""The PyTorch trainer: a new softmax head on the feature extractor.

With a frozen base and no augmentation, the core computes each image's features
once and the head trains on them (:func:`tlcore.training.training_data`);
otherwise images stream through the whole model every epoch. The epoch loop,
progress and events are the core's; this module builds the model and its
training step. The base always runs in inference mode (BatchNorm frozen), as
with Keras.
"""

import hashlib

from tlcore.hookspecs import hookimpl
from tlcore.outputs import require_free_space
from tlcore.training import TrainingLoop, announce_training, run_epochs, run_seed, training_data

TL_FRAMEWORK = "torch"


_CLASSES = {}


def classifier_modules():
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

        def __init__(self, extractor, pool=False):
            super().__init__()
            self.extractor = extractor
            self.pool = pool  # decided once, so that the forward pass has no data-dependent branch to trace

        def train(self, mode=True):
            self.training = mode
            try:
                self.extractor.train(mode)
            except NotImplementedError:  # a torch.export program: fixed in inference mode
                pass
            return self

        def forward(self, images):
            features = self.extractor(images)
            if self.pool:
                features = features.mean(dim=(2, 3))
            return torch.flatten(features, 1)

    class Classifier(nn.Module):
        """Image -> features -> dropout -> linear -> softmax over label ids."""

        def __init__(self, features, dim, num_outputs, dropout):
            super().__init__()
            self.features = features
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_outputs))

        def forward(self, images):
            return torch.softmax(self.head(self.features(images)), dim=1)

    for cls in (Features, Classifier):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
        _CLASSES[cls.__name__] = cls
    return Features, Classifier


def __getattr__(name):
    """``Features`` and ``Classifier``, created on first use: how ``torch.load`` finds them."""
    if name in ("Features", "Classifier"):
        classifier_modules()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def leaf_modules(model):
    """The model's layers in order: modules without children."""
    return [module for module in model.modules() if not list(module.children())]


def freeze(extractor, fine_tune_layers):
    """Train only the last ``fine_tune_layers`` layers of the base (none by default)."""
    layers = leaf_modules(extractor)
    for index, layer in enumerate(layers):
        trainable = index >= len(layers) - fine_tune_layers if fine_tune_layers else False
        for parameter in layer.parameters(recurse=False):
            parameter.requires_grad_(trainable)


def model_key(model):
    """A hash of ``model``'s structure and weights: the feature cache is reused only while it holds."""
    import torch

    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "torch:" + digest.hexdigest()


def training_steps(classifier, cached, learning_rate):
    """``(train_step, test_step)`` over numpy batches, each returning ``(mean loss, number correct)``.

    ``cached``: the batches are features and only the head trains; else images go through
    the whole classifier, whose base stays in inference mode.
    """
    import torch

    trained = classifier.head if cached else classifier
    parameters = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    loss_of = torch.nn.CrossEntropyLoss()

    def logits(inputs):
        features = inputs if cached else classifier.features(inputs)
        return classifier.head(features)

    def train(inputs, labels):
        classifier.features.eval()
        classifier.head.train()
        inputs, labels = torch.from_numpy(inputs), torch.from_numpy(labels)
        optimizer.zero_grad(set_to_none=True)
        scores = logits(inputs)
        loss = loss_of(scores, labels)
        loss.backward()
        optimizer.step()
        return float(loss.detach()), int((scores.argmax(dim=1) == labels).sum())

    def test(inputs, labels):
        classifier.eval()
        with torch.inference_mode():
            inputs, labels = torch.from_numpy(inputs), torch.from_numpy(labels)
            scores = logits(inputs)
            return float(loss_of(scores, labels)), int((scores.argmax(dim=1) == labels).sum())

    return train, test


@hookimpl(trylast=True)
def tl_train(model, dataset, preprocessing, config, reporter, events):
    import torch

    Features, Classifier = classifier_modules()
    seed = run_seed(config)
    if config.seed is not None:
        torch.manual_seed(config.seed)
    size = preprocessing.size
    with torch.inference_mode():
        output = model(torch.zeros(1, 3, size, size))
    features = Features(model, pool=output.dim() == 4).eval()
    dim = int(output.shape[1] if output.dim() == 4 else torch.flatten(output, 1).shape[1])
    classifier = Classifier(features, dim, dataset.num_outputs, config.dropout)
    freeze(model, config.fine_tune_layers)
    parameters = sum(p.numel() for p in classifier.parameters())
    require_free_space(config.output_dir, parameters * 4 + 16 * 2**20, "the saved model")

    def compute(images):
        with torch.inference_mode():
            return features(torch.from_numpy(images)).numpy()

    data = training_data(dataset, preprocessing, config, reporter, seed, compute=compute, dim=dim,
                         model_key=lambda: model_key(model))
    train_step, test_step = training_steps(classifier, data.cached, config.learning_rate)
    announce_training(reporter, config, dataset.num_outputs, type(model).__name__, len(leaf_modules(model)),
                      data.cached)
    loop = TrainingLoop(reporter, events, config.epochs, data.num_train, data.num_validation)
    run_epochs(loop, data.training, data.validation, train_step, test_step)
    return classifier.eval()
