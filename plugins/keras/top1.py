"""Top-1 accuracy on the validation split, overall and per class."""

from tlcore.hookspecs import hookimpl

from plugins.keras.pipeline import make_dataset, report_undecodable, unseen


@hookimpl(trylast=True)
def tl_evaluate(model, dataset, preprocessing, config, reporter):
    import numpy as np
    import tensorflow as tf

    split = dataset.validation
    predict = tf.function(  # traced once for every batch size
        lambda images: tf.argmax(model(images, training=False), axis=-1, output_type=tf.int32),
        input_signature=[tf.TensorSpec(model.inputs[0].shape, tf.float32)],
    )
    correct = np.zeros(dataset.num_outputs, dtype=np.int64)
    total = np.zeros(dataset.num_outputs, dtype=np.int64)
    bar = reporter.progress(len(split), label="evaluating ", unit="img")
    seen = set()
    for images, labels, index in make_dataset(split, preprocessing, config.batch_size, indexed=True):
        predicted = predict(images).numpy()
        labels = labels.numpy()
        np.add.at(total, labels, 1)
        np.add.at(correct, labels, predicted == labels)
        seen.update(index.numpy().tolist())
        bar.update(len(seen), top_1_accuracy=correct.sum() / len(seen))
    bar.finish(top_1_accuracy=correct.sum() / max(len(seen), 1))
    report_undecodable(split, unseen(split, seen), config, reporter)
    seen = len(seen)
    if not seen:
        from tlcore.errors import DatasetError

        raise DatasetError(f"no validation image could be decoded in {split.root}; check the images")
    accuracy = float(correct.sum() / max(seen, 1))
    reporter.info(f"Top-1 accuracy: {accuracy:.4f} ({int(correct.sum())} of {seen} validation images)")
    per_class = {
        name: {"top_1_accuracy": float(correct[label] / total[label]), "num_images": int(total[label])}
        for name, label in sorted(dataset.labels.items(), key=lambda item: item[1])
        if total[label]
    }
    return {"top_1_accuracy": accuracy, "num_images": seen, "per_class": per_class}
