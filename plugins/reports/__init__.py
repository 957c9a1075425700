"""Report plugins: what a run did, as tables and pictures beside results.json.

They implement ``tl_write_reports`` over the predictions on the validation images and the epoch
history, so they work for every framework; the core publishes their files into
``evaluate_result_dir`` only when the whole run succeeds. ``reports.summary`` is asked last and
links every file the others wrote into one page, ``summary.html``.
"""

CONFUSION_JSON = "confusion_matrix.json"
CONFUSION_PNG = "confusion_matrix.png"
MISCLASSIFIED_CSV = "misclassified.csv"
HISTORY_CSV = "history.csv"
CURVES_PNG = "training_curves.png"
TENSORBOARD_DIR = "tensorboard"
SUMMARY_HTML = "summary.html"

HISTORY_COLUMNS = ("epoch", "loss", "acc", "val_loss", "val_acc")
"""The columns of history.csv that every run has, in this order; other values a trainer logs follow."""

MAX_DRAWN_CLASSES = 60
"""Above this many classes, confusion_matrix.png shows the classes with the most errors (the JSON has all)."""
