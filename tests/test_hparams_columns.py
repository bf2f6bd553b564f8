"""The HParams dashboard opens on what was swept: `dlx tb` on a folder with a sweep and an
unrelated run shows the swept keys ticked, read from a real TensorBoard server, both through
the plugin's data route the page reads and in headless Chromium's rendering of the page."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from dlx.analysis.hparams import overridden_keys

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.progress=false",
]
#: the keys the runs below overrode or varied, as TensorBoard sorts them (by name); the
#: trainer.* keys every run overrode alike (TINY) vary nothing and are not among them
SHOWN = [
    "model.name",  # model=resnet, the lone run
    "optim.lr",  # varied by the sweep
    "optim.weight_decay",  # varied by the sweep
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4), so no
    websocket library is needed."""

    def __init__(self, exe: str, url: str, profile: str) -> None:
        self._to_r, self._to_w = os.pipe()
        self._from_r, self._from_w = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            "--remote-debugging-pipe",
            url,
        ]
        redirect = f'exec "$0" "$@" 3<&{self._to_r} 4>&{self._from_w}'
        self.proc = subprocess.Popen(
            ["bash", "-c", redirect, exe, *flags],
            pass_fds=(self._to_r, self._from_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its renderers and helpers: one group to end together
        )
        os.close(self._to_r)
        os.close(self._from_w)
        self._buf = b""
        self._id = 0
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._from_r, 1 << 16)
                assert chunk, "chromium closed its DevTools pipe"
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True
        )
        return result["result"].get("value")

    def close(self) -> None:
        """Close the browser, then end its whole process group: a helper still writing to
        the profile would race the profile folder's removal."""
        with contextlib.suppress(Exception):
            self.call("Browser.close")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)


#: the HParams dashboard's hparam checkboxes (inside Polymer's shadow roots): [name, ticked]
CHECKBOXES = """(() => {
  const out = [];
  const walk = (n) => {
    if (n.matches && n.matches('paper-checkbox.hparam-checkbox'))
      out.push([n.textContent.trim(), !!n.checked]);
    for (const c of [...(n.shadowRoot ? n.shadowRoot.children : []), ...n.children]) walk(c);
  };
  walk(document.documentElement);
  return out;
})()"""


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory):
    """A folder with one model=resnet run (left to TensorBoard, its model.* keys, differing
    from the sweep's LeNet, would take four of the five ticked columns) and a 2-trial random
    sweep of lr and weight decay, served by `dlx tb`."""
    from conftest import run_dlx

    root = tmp_path_factory.mktemp("hp")
    r = run_dlx("train", "model=resnet", *TINY, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_dlx("train", "-m", "sweep=random", "hydra.sweeper.n_trials=2", *TINY, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", "tb", "outputs", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "tensorboard did not answer"
        try:
            urllib.request.urlopen(base + "/data/plugins_listing", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def test_the_swept_keys_are_the_first_columns_and_ticked(tensorboard):
    """What the page fetches (`/experiment`, with the page's hparamsLimit): SHOWN first,
    flagged `differs`, every other config key after them; then the page itself."""
    exp = post(tensorboard + "/data/plugin/hparams/experiment", {"hparamsLimit": 1000})
    names = [h["name"] for h in exp["hparamInfos"]]
    flagged = [h["name"] for h in exp["hparamInfos"] if h.get("differs")]
    # fewer than five varied keys: the unvaried ones are left out, else the dashboard would
    # tick them (it ticks its first five) and push the metrics off the screen
    assert flagged == SHOWN == names
    assert "trainer.max_epochs" not in names and "data.batch_size" not in names
    assert [m["name"]["tag"] for m in exp["metricInfos"]][:2] == ["val/acc", "test/acc"]
    groups = post(
        tensorboard + "/data/plugin/hparams/session_groups",
        {
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE"],
            "colParams": [{"hparam": "optim.lr", "includeInResult": True}],
            "startIndex": 0,
            "sliceSize": 100,
        },
    )
    assert len(groups["sessionGroups"]) == 3  # the run and both trials, each with its lr
    runs = json.loads(urllib.request.urlopen(tensorboard + "/data/runs").read())
    assert "." not in runs and len(runs) == 3, runs  # no empty run for the column list

    exe = next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    if exe is None:
        pytest.skip("no chromium to render the page: apt-get install chromium (.ci/run does)")
    with tempfile.TemporaryDirectory() as profile:
        browser = Chromium(exe, tensorboard + "/#hparams", profile)
        try:
            deadline = time.monotonic() + 60
            boxes, before = [], None
            # until the page has drawn the columns and stopped changing (a loaded machine
            # renders them in several passes)
            while (len(boxes) < len(SHOWN) or boxes != before) and time.monotonic() < deadline:
                time.sleep(0.5)
                before, boxes = boxes, browser.evaluate(CHECKBOXES) or []
        finally:
            browser.close()
    names = [name for name, _ in boxes]
    ticked = [name for name, on in boxes if on]
    assert names[: len(SHOWN)] == SHOWN
    # the dashboard ticks its first five columns: only the varied keys are there
    assert ticked == SHOWN
    assert {"optim.lr", "optim.weight_decay"} <= set(ticked)


def test_overridden_keys_map_group_choices_to_their_name():
    keys = ["model.name", "model.arch", "optim.name", "optim.lr", "augment.flip.p"]
    assert overridden_keys(["model=resnet", "optim.lr=0.1", "hydra.job.chdir=true"], keys) == {
        "model.name",
        "optim.lr",
    }
    assert overridden_keys(["+augment=[flip]", "~optim"], keys) == {"augment.flip.p", "optim.name"}
    assert overridden_keys(["sweep=random"], keys) == set()
