"""Text from the dataset where it lands: escaped on the terminal, neutralised in CSV files, raw in JSON."""

import csv
import io
import json

from tlcli.predict import csv_text, table_lines
from tlcore.prediction import Prediction
from tlcore.report import Reporter
from tlplugins.reports.tables import write_csv

SET_TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"


def test_control_characters_in_names_are_shown_escaped_and_long_names_shortened():
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO(), isatty=False)
    name = "x" * 5000
    reporter.warning(f'class "{SET_TITLE}cat{CLEAR}" and the image {name}.jpg')
    shown = reporter.err.getvalue()
    assert "\x1b" not in shown and "\x07" not in shown
    assert '"\\x1b]0;pwned\\x07cat\\x1b[2J"' in shown
    assert len(shown) < 500 and "(5004 characters)" in shown
    assert reporter.warnings == [f'class "{SET_TITLE}cat{CLEAR}" and the image {name}.jpg'], "kept as given"


def test_tl_predict_neutralises_formulas_in_csv_escapes_the_table_and_keeps_json_raw():
    results = [Prediction(f"photos/=HYPERLINK(x){CLEAR}.jpg", (("=cmd|' /C calc'!A0", 0.75), ("-1+1", 0.25)))]
    rows = list(csv.reader(io.StringIO(csv_text(results))))
    assert rows[1][:3] == [f"photos/=HYPERLINK(x){CLEAR}.jpg", "1", "'=cmd|' /C calc'!A0"]
    assert rows[2][2] == "'-1+1"
    [line] = table_lines(results)
    assert "\x1b" not in line and "\\x1b[2J" in line
    assert json.loads(json.dumps([results[0].to_dict()]))[0]["predictions"][0]["label"] == "=cmd|' /C calc'!A0"


def test_report_csv_cells_a_spreadsheet_would_run_get_a_leading_quote(tmp_path):
    write_csv(tmp_path / "misclassified.csv", ["path", "true", "predicted"],
              [["=a.jpg", "+cat", "@dog"], ["\tb.jpg", "\rfox", "plain"]])
    with open(tmp_path / "misclassified.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[1:] == [["'=a.jpg", "'+cat", "'@dog"], ["'\tb.jpg", "'\rfox", "plain"]]


def test_the_top_1_line_never_rounds_up_to_one():
    from tlplugins.metrics.top1 import fraction

    assert fraction(29_999, 30_000) == "0.9999"
    assert fraction(30_000, 30_000) == "1.0000"
    assert fraction(1, 3) == "0.3333" and fraction(2, 3) == "0.6666"


def test_tl_predicts_top_k_for_the_whole_batch_best_first_ties_to_the_lower_id_and_only_classes():
    import numpy as np

    from tlcore.prediction import top_labels

    scores = np.array([[0.1, 0.4, 0.4, 0.05, 0.05], [0.9, 0.0, 0.02, 0.03, 0.05]])
    labelled = np.array([0, 1, 2, 4])  # id 3 is no class (a gap in labels.json)
    assert top_labels(scores, labelled, 3).tolist() == [[1, 2, 0], [0, 4, 2]]
    assert top_labels(scores, labelled, 10).tolist() == [[1, 2, 0, 4], [0, 4, 2, 1]]
