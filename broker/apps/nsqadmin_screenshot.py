"""Photograph nsqadmin's topic page: ``python -m broker.apps.nsqadmin_screenshot docs/images/nsqadmin-topic.png``.

A development tool, not part of the core (it starts processes and a
browser): it runs a small cluster on 127.0.0.1 (one nsqlookupd, two nsqd,
nsqadmin and an ``nsq_tail`` consumer), publishes to a topic for a few
seconds so the rates and sparklines have something to show, opens the topic
page in headless Chromium through Playwright (Debian's ``/usr/bin/chromium``;
``--chromium`` for another) and writes the screenshot.  Everything it started
is stopped before it exits.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Process", "main", "start"]

CHROMIUM = "/usr/bin/chromium"


class Process:
    """A daemon of ours as a subprocess, with the addresses it logged."""

    def __init__(self, module: str, *args: str, wait_for: tuple[str, ...] = ("HTTP",)) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addresses: dict[str, str] = {}
        seen: list[str] = []
        deadline = time.monotonic() + 30
        assert self.proc.stderr is not None
        while any(p not in self.addresses for p in wait_for):
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{module} did not start:\n" + "".join(seen))
            seen.append(line)
            m = re.search(r"INFO: (TCP|HTTP): listening on (\S+)$", line.rstrip("\n"))
            if m:
                self.addresses[m.group(1)] = m.group(2)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for _ in self.proc.stderr:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def start(module: str, *args: str, wait_for: tuple[str, ...] = ("HTTP",)) -> Iterator[Process]:
    process = Process(module, *args, wait_for=wait_for)
    try:
        yield process
    finally:
        process.stop()


def _post(url: str, body: bytes = b"") -> None:
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=5):
        pass


def photograph(out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, start(
        "broker.apps.nsqlookupd", "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", wait_for=("TCP", "HTTP")
    ) as lookupd:
        lookupd_tcp, lookupd_http = lookupd.addresses["TCP"], lookupd.addresses["HTTP"]
        nsqd_args = ("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", "--broadcast-address=127.0.0.1", f"--lookupd-tcp-address={lookupd_tcp}")
        for sub in ("1", "2"):
            Path(tmp, sub).mkdir()
        with start("broker.apps.nsqd", *nsqd_args, f"--data-path={tmp}/1", wait_for=("TCP", "HTTP")) as n1, start(
            "broker.apps.nsqd", *nsqd_args, f"--data-path={tmp}/2", wait_for=("TCP", "HTTP")
        ) as n2, start("broker.apps.nsqadmin", "--http-address=127.0.0.1:0", f"--lookupd-http-address={lookupd_http}") as admin:
            nsqds = [n1.addresses["HTTP"], n2.addresses["HTTP"]]
            for i, address in enumerate(nsqds):
                _post(f"http://{address}/pub?topic=orders", b"first")
                for channel in ("billing", "shipping", "archive"):
                    _post(f"http://{address}/channel/create?topic=orders&channel={channel}")
                _post(f"http://{address}/pub?topic=audit", b"x" * (i + 1))
            _post(f"http://{nsqds[1]}/channel/pause?topic=orders&channel=archive")
            stop = threading.Event()

            def publish() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    # Bursts now and then, so the sparklines have a shape.
                    size = 40 if n % 16 < 3 else 2 + n % 5
                    body = b"\n".join(b"order %d" % (n * 100 + k) for k in range(size))
                    _post(f"http://{nsqds[n % 2]}/mpub?topic=orders", body)
                    stop.wait(0.25)

            publisher = threading.Thread(target=publish, daemon=True)
            consumers = [
                Process("broker.apps.nsq_tail", "--topic=orders", f"--channel={c}", f"--lookupd-http-address={lookupd_http}", wait_for=())
                for c in ("billing", "shipping")
            ]
            try:
                publisher.start()
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
                    try:
                        page = browser.new_page(viewport={"width": 1360, "height": 860}, device_scale_factor=1)
                        page.goto(f"http://{admin.addresses['HTTP']}/topics/orders")
                        page.select_option("[data-testid=refresh-interval]", "2000")
                        page.wait_for_selector("[data-testid=channel-row][data-channel=billing]")
                        # Enough refreshes for the sparklines to draw a line.
                        time.sleep(14)
                        page.screenshot(path=str(out), full_page=True)
                    finally:
                        browser.close()
            finally:
                stop.set()
                publisher.join(5)
                for c in consumers:
                    c.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="where to write the PNG")
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium binary (default: %(default)s)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    photograph(args.out, args.chromium)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
