"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no web driver, no
websocket library): open a page from disk, collect its console errors, evaluate JavaScript, take a screenshot.

Used by the summary page's browser test and by bench/browser.py.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
LAPTOP = (1366, 768)
"""The most common laptop screen, in CSS pixels."""


def find_chromium():
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, size=LAPTOP, timeout=60):
        self.timeout = timeout
        self.size = size
        self.events = []
        self._buffer = b""
        self._next_id = 0
        # Chromium reads commands from fd 3 and writes answers to fd 4: pipes duplicated above the low numbers
        to_chrome_read, to_chrome_write = os.pipe()
        from_chrome_read, from_chrome_write = os.pipe()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_read, from_chrome_write)]
        for fd in (to_chrome_read, from_chrome_write):
            os.close(fd)

        def on_fds_3_and_4():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [find_chromium(), "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             f"--window-size={size[0]},{size[1]}", "about:blank"],
            # fds 3 and 4 are made in the child, inheritable; Python opens every other fd non-inheritable
            close_fds=False, preexec_fn=on_fds_3_and_4, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in high:
            os.close(fd)
        self._write, self._read = to_chrome_write, from_chrome_read
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=size[0], height=size[1],
                  deviceScaleFactor=1, mobile=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for fd in (self._write, self._read):
            try:
                os.close(fd)
            except OSError:
                pass
        self.process.kill()
        self.process.wait(timeout=30)

    def _message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed its pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, session=False, **params):
        """Send a DevTools command and return its result; events that arrive meanwhile are kept in
        :attr:`events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method):
        deadline = time.monotonic() + self.timeout
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._message(deadline))

    def open(self, path):
        """Open ``path`` (a file) and wait for its load event and for its images."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self):
        """Console errors, uncaught exceptions and failed loads the page has had, as text."""
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
            elif event.get("method") == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif event.get("method") == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f'{params["entry"].get("text")} ({params["entry"].get("url", "")})')
        return errors

    def screenshot(self, path, full_page=False):
        """A PNG of the page at the window's size (or the whole page); returns its size in bytes."""
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"])
        path.write_bytes(data)
        return len(data)
