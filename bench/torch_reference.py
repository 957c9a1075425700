"""The plain-PyTorch way, as a tutorial does it: the reference tl's torch path is measured against.

torchvision.datasets.ImageFolder + transforms (Resize((size, size)), ToTensor, Normalize with
the ImageNet mean/std; RandomHorizontalFlip too with --augment) + DataLoader(shuffle=True,
num_workers=2), the same frozen torchvision MobileNetV2 (weights from the state-dict file tl
is given) with its classifier replaced by Dropout(0.2) + Linear, Adam(lr=1e-3) and
CrossEntropyLoss for N epochs. The base stays in eval mode and every epoch forwards every
image through the whole model (no feature caching: that is the point), then validates.
The model (with softmax, like tl's) is saved with torch.export.export + torch.export.save,
as tl saves it, then Top-1 is measured on the validation folder. Prints one JSON line:
wall time, per-epoch seconds (training + validation), Top-1.

    python bench/torch_reference.py WEIGHTS.pt DATASET_DIR SIZE EPOCHS BATCH ALPHA [--augment] [--workers N]

num_workers: PyTorch's transfer-learning tutorial uses 4; 2 here, the number of cores of the
machine the figures in README.md were measured on (--workers changes it). Wall time starts
after torch and torchvision are imported, as bench/reference.py starts after TensorFlow.
"""

import argparse
import json
import os
import tempfile
import time

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def main(weights_path, dataset, size, epochs, batch_size, alpha, augment=False, workers=2, seed=0):
    out_dir = tempfile.mkdtemp(prefix="tl-bench-torch-reference-")
    import torch
    import torchvision
    from torch import nn
    from torchvision import datasets, transforms

    started = time.monotonic()
    torch.manual_seed(seed)
    labels = json.load(open(os.path.join(dataset, "labels.json")))
    class_names = sorted(labels, key=labels.get)

    normalise = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train_transform = transforms.Compose(
        [transforms.Resize((size, size))] + ([transforms.RandomHorizontalFlip()] if augment else []) + normalise)
    test_transform = transforms.Compose([transforms.Resize((size, size))] + normalise)
    training = datasets.ImageFolder(os.path.join(dataset, "training"), transform=train_transform)
    validation = datasets.ImageFolder(os.path.join(dataset, "validation"), transform=test_transform)
    expected = {name: index for index, name in enumerate(class_names)}
    for folder in (training, validation):
        # ImageFolder numbers classes by sorted folder name; the model's outputs must follow labels.json's ids
        if folder.class_to_idx != expected:
            raise SystemExit(f"ImageFolder's class_to_idx {folder.class_to_idx} differs from labels.json's ids "
                             f"{expected}")
    loaders = dict(batch_size=batch_size, num_workers=workers, persistent_workers=False)
    train_loader = torch.utils.data.DataLoader(training, shuffle=True, **loaders)
    val_loader = torch.utils.data.DataLoader(validation, shuffle=False, **loaders)

    model = torchvision.models.mobilenet_v2(weights=None, width_mult=alpha)
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    for parameter in model.parameters():
        parameter.requires_grad = False
    model.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(model.last_channel, len(class_names)))
    optimizer = torch.optim.Adam(model.classifier.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()

    def evaluate():
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for images, targets in val_loader:
                correct += int((model(images).argmax(dim=1) == targets).sum())
                total += len(targets)
        return correct / total

    epoch_seconds = []
    for _ in range(epochs):
        epoch_started = time.monotonic()
        model.train()
        model.features.eval()  # frozen base: BatchNorm keeps its statistics
        for images, targets in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), targets)
            loss.backward()
            optimizer.step()
        evaluate()
        epoch_seconds.append(time.monotonic() - epoch_started)

    exported = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(exported, (torch.zeros(2, 3, size, size),), dynamic_shapes=({0: batch},))
    torch.export.save(program, os.path.join(out_dir, "model.pt2"))
    top1 = evaluate()
    print(json.dumps({"wall_seconds": time.monotonic() - started, "epoch_seconds": epoch_seconds,
                      "top_1_accuracy": top1, "num_workers": workers}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("dataset")
    parser.add_argument("size", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("batch_size", type=int)
    parser.add_argument("alpha", type=float)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    main(args.weights, args.dataset, args.size, args.epochs, args.batch_size, args.alpha, args.augment, args.workers)
