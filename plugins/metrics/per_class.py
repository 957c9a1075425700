"""Top-1 accuracy of each class on the validation images, by class name in label-id order."""

from tlcore.hookspecs import hookimpl


@hookimpl(trylast=True)
def tl_evaluate(predictions, dataset):
    predicted = predictions.predicted
    per_class = {}
    for name, label in sorted(dataset.labels.items(), key=lambda item: item[1]):
        mine = predictions.label_ids == label
        total = int(mine.sum())
        if total:
            per_class[name] = {"top_1_accuracy": float((predicted[mine] == label).sum() / total), "num_images": total}
    return {"per_class": per_class}
