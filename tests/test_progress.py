"""Every step of more than a few seconds says so while it runs (the SDK's rule: progress for every step over
5 s), also when the output is a log file rather than a terminal."""

import time

from tests.test_run import run_with
from tlcore.dataset import Split


def test_fingerprinting_many_images_for_the_checkpoint_shows_an_activity_line(project, monkeypatch):
    stat_every_image = Split.fingerprint

    def slow(self):  # as stat-ing 300k images takes seconds
        time.sleep(0.7)
        return stat_every_image(self)

    monkeypatch.setattr(Split, "fingerprint", slow)
    _, reporter = run_with(project)
    assert "Fingerprinting the images for the checkpoint: done in 1." in reporter.stream.getvalue()


def test_a_quick_fingerprint_says_nothing(project):
    _, reporter = run_with(project)
    assert "Fingerprinting" not in reporter.stream.getvalue()
