"""What the terminal shows: progress lines, activity ticks, messages that never run into them."""

import io
import re
import time

from tlcore.report import Progress, Reporter


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_in_a_log_prints_a_line_every_interval_with_rate_and_eta():
    stream, clock = io.StringIO(), Clock()
    bar = Progress(stream, 100, label="features ", interval=2.0, isatty=False, clock=clock)
    for done in range(10, 101, 10):
        clock.now += 0.5
        bar.update(done, loss=0.5)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, "one line per 2 s of work, not one per update"
    assert lines[0].startswith("features 40/100 [") and "20.0 img/s" in lines[0] and "ETA 0:03" in lines[0]
    assert "loss: 0.5000" in lines[0]
    bar.finish(loss=0.25)
    assert stream.getvalue().splitlines()[-1].startswith("features 100/100 [========================] - 20.0 img/s")


def test_progress_on_a_terminal_redraws_one_line_in_place():
    stream, clock = io.StringIO(), Clock()
    bar = Progress(stream, 4, isatty=True, clock=clock)
    for done in range(1, 5):
        clock.now += 0.2
        bar.update(done)
    bar.finish()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.count("\r") == 5


def test_messages_erase_a_line_drawn_in_place_on_a_terminal():
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO(), isatty=True)
    reporter.info("Base model: x")
    reporter.warning("careful")
    assert reporter.stream.getvalue() == "\r\x1b[KBase model: x\n"
    assert reporter.err.getvalue() == "\r\x1b[KWarning: careful\n"
    plain = Reporter(stream=io.StringIO(), err=io.StringIO(), isatty=False)
    plain.info("Base model: x")
    assert plain.stream.getvalue() == "Base model: x\n"


def test_activity_ticks_while_a_long_step_runs_and_says_how_long_it_took():
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO(), isatty=False, interval=0.05)
    with reporter.activity("Saving the SavedModel"):
        time.sleep(0.3)
    lines = reporter.stream.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("Saving the SavedModel ... 0:00") for line in lines[:-1])
    assert lines[-1].startswith("Saving the SavedModel: done in 0.")


def test_activity_that_fails_does_not_claim_it_is_done():
    reporter = Reporter(stream=io.StringIO(), err=io.StringIO(), isatty=False, interval=10)
    try:
        with reporter.activity("Loading"):
            raise ValueError("no")
    except ValueError:
        pass
    assert "done" not in reporter.stream.getvalue()


def test_a_delayed_progress_line_stays_silent_for_a_quick_step_and_shows_for_a_slow_one():
    for isatty in (True, False):
        stream, clock = io.StringIO(), Clock()
        quick = Progress(stream, None, label="indexing ", unit="files", isatty=isatty, clock=clock, delay=2.0)
        for done in range(1, 500):
            clock.now += 0.001
            quick.update(done)
        quick.finish()
        assert stream.getvalue() == "", "a quick step prints nothing"

        slow = Progress(stream, None, label="indexing ", unit="files", isatty=isatty, clock=clock, delay=2.0)
        for done in range(1, 5000):
            clock.now += 0.001
            slow.update(done)
        slow.finish()
        assert "indexing 4999 - " in stream.getvalue().splitlines()[-1]


def test_a_delayed_activity_prints_nothing_when_it_ends_sooner():
    stream = io.StringIO()
    reporter = Reporter(stream=stream, err=io.StringIO(), isatty=False, interval=0.05)
    with reporter.activity("Checking the feature cache", delay=5.0):
        time.sleep(0.2)
    assert stream.getvalue() == ""
    with reporter.activity("Checking the feature cache", delay=0.05):
        time.sleep(0.3)
    assert re.search(r"^Checking the feature cache \.\.\. 0:0\d$", stream.getvalue(), re.M), stream.getvalue()
    assert "done in" in stream.getvalue()


def test_in_a_notebook_progress_updates_one_line_in_place_without_terminal_codes():
    """Jupyter redraws a line on a carriage return but shows terminal codes as garbage."""
    OutStream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream", "isatty": lambda self: False})
    stream = OutStream()
    reporter = Reporter(stream=stream, err=io.StringIO(), interval=2.0)
    bar = reporter.progress(1000, label="features ")
    for done in range(1, 1001):
        bar.update(done)
    reporter.info("a message")
    bar.finish()
    text = stream.getvalue()
    assert "\x1b" not in text
    assert text.count("\n") == 2, "one updating line, the message, the final line: not a line per update"
    assert "\rfeatures " in text and "a message\n" in text
    before_message = text.split("a message")[0]
    assert before_message.endswith("\r"), "the progress line is blanked before the message"
