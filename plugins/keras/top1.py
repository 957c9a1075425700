"""Top-1 accuracy on the validation split, overall and per class."""

from tlcore.hookspecs import hookimpl

from plugins.keras.pipeline import make_dataset


@hookimpl(trylast=True)
def tl_evaluate(model, dataset, preprocessing, config, reporter):
    import numpy as np
    import tensorflow as tf

    split = dataset.validation
    predict = tf.function(lambda images: tf.argmax(model(images, training=False), axis=-1, output_type=tf.int32))
    correct = np.zeros(dataset.num_outputs, dtype=np.int64)
    total = np.zeros(dataset.num_outputs, dtype=np.int64)
    bar = reporter.progress(len(split), label="evaluating ", unit="img")
    seen = 0
    for images, labels in make_dataset(split, preprocessing, config.batch_size):
        predicted = predict(images).numpy()
        labels = labels.numpy()
        np.add.at(total, labels, 1)
        np.add.at(correct, labels, predicted == labels)
        seen += len(labels)
        bar.update(seen, top_1_accuracy=correct.sum() / seen)
    bar.finish(top_1_accuracy=correct.sum() / max(seen, 1))
    accuracy = float(correct.sum() / max(seen, 1))
    reporter.info(f"Top-1 accuracy: {accuracy:.4f} ({int(correct.sum())} of {seen} validation images)")
    per_class = {
        name: {"top_1_accuracy": float(correct[label] / total[label]), "num_images": int(total[label])}
        for name, label in sorted(dataset.labels.items(), key=lambda item: item[1])
        if total[label]
    }
    return {"top_1_accuracy": accuracy, "num_images": seen, "per_class": per_class}
