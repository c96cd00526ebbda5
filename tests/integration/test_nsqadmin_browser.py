"""nsqadmin's UI in a real headless browser: Debian's Chromium, driven by Playwright.

Playwright is pointed at ``/usr/bin/chromium`` (``NSQADMIN_CHROMIUM`` for
another) and never downloads a browser.  Without the browser or Playwright
the test fails rather than skips: CI installs both (``.ci/run``).

Against two nsqd and a lookupd of ours, it walks every page: the topics page
lists a topic created by ``/pub``, the topic page its channel on both nodes,
the channel page a connected consumer (address, user agent, RDY); clicking
Pause there (accepting the confirmation) pauses the channel in each nsqd's
``/stats``; nodes, node and counter pages show the cluster.  Each page is
photographed into the test's temporary folder, and each check asserts data
on the page, so an empty page fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Daemon
from tests.integration.test_nsqadmin import (
    BOUND,
    Cluster,
    Consumer,
    addr,
    channel_of,
    create,
    nsqd_stats,
    pub,
    registered,
    start_nsqadmin,
    wait_until,
)

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("NSQADMIN_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = int(BOUND * 1000)


@pytest.fixture
def browser_cluster(nsqlookupd_factory: Callable[..., Daemon], nsqd_factory: Callable[..., Daemon]) -> Iterator[Cluster]:
    lookupd = nsqlookupd_factory()
    nsqds = [nsqd_factory(f"--lookupd-tcp-address={addr(lookupd, 'TCP')}", "--broadcast-address=127.0.0.1") for _ in range(2)]
    admin = start_nsqadmin(f"--lookupd-http-address={addr(lookupd)}")
    try:
        yield Cluster(lookupd, nsqds, admin)
    finally:
        admin.close()


@pytest.fixture
def page() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1360, "height": 900})
            tab.set_default_timeout(TIMEOUT_MS)
            yield tab
        finally:
            browser.close()


def number(text: str) -> int:
    assert re.fullmatch(r"[\d,]+", text.strip()), f"not a number: {text!r}"
    return int(text.strip().replace(",", ""))


def loaded(page: Any, name: str) -> None:
    page.wait_for_selector(f"main#page[data-page={name}][data-loaded=true]")


def test_the_ui_shows_the_cluster_and_pauses_a_channel(browser_cluster: Cluster, page: Any, tmp_path: Path) -> None:
    cluster = browser_cluster
    n1, n2 = cluster.nsqds
    for node in (n1, n2):
        create(node, "orders", "billing")
    for _ in range(3):
        pub(n1, "orders", b"from the browser test")
    pub(n2, "orders")
    wait_until(registered(cluster.lookupd, "orders", 2), "both nsqd registered orders")
    consumer = Consumer(n1, "orders", "billing", user_agent="browser-test/2.0", rdy=5)
    try:
        base = f"http://{cluster.api}"

        # Topics: the topic from /pub, with its figures.
        page.goto(f"{base}/topics")
        loaded(page, "topics")
        row = page.locator("[data-testid=topic-row][data-topic=orders]")
        row.wait_for()
        assert number(row.locator("[data-col=messages]").inner_text()) == 4
        assert number(row.locator("[data-col=nodes]").inner_text()) == 2
        assert number(row.locator("[data-col=channels]").inner_text()) == 1
        page.screenshot(path=str(tmp_path / "topics.png"), full_page=True)

        # Topic: its channel, summed and per node.
        row.locator("a").click()
        loaded(page, "topic")
        channel_row = page.locator("[data-testid=channel-row][data-channel=billing]")
        channel_row.wait_for()
        assert number(channel_row.locator("[data-col=messages]").inner_text()) == 4
        assert page.locator("[data-testid=channel-node-row][data-channel=billing]").count() == 2
        assert page.locator("[data-testid=topic-node-row]").count() == 2
        assert number(page.locator("[data-testid=topic-messages]").inner_text()) == 4
        page.screenshot(path=str(tmp_path / "topic.png"), full_page=True)

        # Channel: the consumer, as nsqd sees it.
        channel_row.locator("a").click()
        loaded(page, "channel")
        client = page.locator(f"[data-testid=client-row][data-address='{consumer.local}']")
        client.wait_for()
        assert client.locator("[data-col=user_agent]").inner_text() == "browser-test/2.0"
        assert number(client.locator("[data-col=ready]").inner_text()) == 5
        assert client.locator("[data-col=node]").inner_text() == addr(n1)
        assert "no TLS" in client.locator("[data-col=flags]").inner_text()
        page.wait_for_function("document.querySelector('[data-testid=channel-in-flight-count]').textContent === '3'")
        page.screenshot(path=str(tmp_path / "channel.png"), full_page=True)

        # Pause through the UI (accepting its confirmation): nsqd's own /stats says paused.
        dialogs: list[str] = []

        def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        pause = page.locator("button[data-testid=pause-channel]")
        assert pause.inner_text() == "Pause channel"
        pause.click()
        wait_until(lambda: all(channel_of(nsqd_stats(n), "orders", "billing")["paused"] for n in (n1, n2)), "billing paused on both nsqd")  # type: ignore[index]
        assert dialogs == ["Are you sure you want to pause channel orders/billing?"]
        page.locator("h1 [data-testid=paused-badge]").wait_for()
        page.wait_for_function("document.querySelector('button[data-testid=pause-channel]').textContent === 'Unpause channel'")
        page.screenshot(path=str(tmp_path / "channel-paused.png"), full_page=True)

        # Nodes, a node, the counter.
        page.locator("[data-testid=nav-nodes]").click()
        loaded(page, "nodes")
        assert page.locator("[data-testid=node-row]").count() == 2
        page.screenshot(path=str(tmp_path / "nodes.png"), full_page=True)
        page.locator(f"[data-testid=node-row][data-node='{addr(n2)}'] a").click()
        loaded(page, "node")
        assert number(page.locator("[data-testid=node-messages]").inner_text()) == 1
        assert page.locator("[data-testid=node-topic-row]").count() == 1
        page.screenshot(path=str(tmp_path / "node.png"), full_page=True)
        page.locator("[data-testid=nav-counter]").click()
        loaded(page, "counter")
        assert number(page.locator("[data-testid=counter-total]").inner_text()) == 4
        page.screenshot(path=str(tmp_path / "counter.png"), full_page=True)
    finally:
        consumer.close()

    shots = sorted(p.name for p in tmp_path.glob("*.png"))
    assert shots == ["channel-paused.png", "channel.png", "counter.png", "node.png", "nodes.png", "topic.png", "topics.png"]
    assert all((tmp_path / s).stat().st_size > 10_000 for s in shots)
