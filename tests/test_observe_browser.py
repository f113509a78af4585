"""The observer's page in a real browser: Debian's headless Chromium, driven over DevTools.

After the page's JavaScript ran, the DOM must show both nodes, a registered
actor, a supervision tree's children, plots and an actor's stack on click;
an actor spawned afterwards must appear without a reload (server-sent
events). Needs ``chromium`` (``scripts/test`` installs it on Debian): skipped
with the reason where it is missing, except in CI (``CI`` set), where that fails.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pytest
from cdp import CHROMIUM, Page, chromium
from nodes import cluster, cookie, local_node  # noqa: F401 - fixtures
from observe_cluster import observed_cluster, observer, pids_of
from support import LONG_TIMEOUT, free_port, wait_until

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.timeout(240),
    # In CI scripts/test installs it: missing there is a failure, not a skip.
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                       reason="chromium is not installed (Debian: apt-get install chromium)"),
]


def js(page: Page, expression: str) -> Any:
    return page.evaluate(expression)


def rows_named(page: Page, name: str) -> Any:
    return js(page, "[...document.querySelectorAll('#actors tbody tr')]"
                    f".filter(r => r.querySelector('[data-col=name]').textContent === {json.dumps(name)})"
                    ".map(r => r.dataset.pid)")


def test_the_observer_page_shows_the_cluster_and_updates_live(cluster: int) -> None:  # noqa: F811
    with local_node("brw", hidden=True), \
            observed_cluster(f"pga{os.getpid()}", f"pgb{os.getpid()}") as (a, b), \
            observer(a.name, "--port", str(free_port())) as (url, _), \
            chromium() as page:
        page.navigate(url)
        # Both nodes, each with the other as its connection.
        wait_until(lambda: js(page, "[...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.node)")
                   == sorted([a.name, b.name]), LONG_TIMEOUT, what="both nodes in the table")
        assert js(page, "document.querySelectorAll('#graph [data-edge]').length") == 1
        wait_until(lambda: js(page, "document.getElementById('status').textContent") == "live", LONG_TIMEOUT,
                   what="the event stream to open")
        # A registered actor, with its pid.
        on_a = pids_of(a)
        assert rows_named(page, "counter") == [str(on_a["counter"])]
        # The supervision tree, drawn from the supervisors' own which_children.
        tree = "document.querySelector('#trees')"
        assert js(page, f"{tree}.querySelector(':scope > ul > li').dataset.pid") == str(on_a["shop_sup"])
        children = js(page, f"[...{tree}.querySelectorAll(':scope > ul > li > ul > li')].map(l => l.dataset.childId)")
        assert children == ["counter", "workers_sup"]
        nested = js(page, f"[...{tree}.querySelectorAll('li[data-child-id=workers_sup] > ul > li')]"
                          ".map(l => [l.dataset.childId, l.dataset.pid])")
        assert nested == [["chatter1", str(on_a["chatter1"])], ["chatter2", str(on_a["chatter2"])]]
        # Plots fill in as samples arrive.
        wait_until(lambda: js(page, "document.querySelectorAll('#charts polyline').length") >= 4, LONG_TIMEOUT,
                   what="rate and memory plots of both nodes")
        # A new actor appears without a reload.
        js(page, "window.notReloaded = true")
        new = b.call("result = mpactors.spawn(oc.blocked_in_observe_test)\n"
                     "mpactors.register('newcomer', result)")
        wait_until(lambda: rows_named(page, "newcomer") == [str(new)], LONG_TIMEOUT, what="the new actor's row")
        assert js(page, "window.notReloaded") is True
        # A click on a row shows that actor's stack.
        js(page, f"document.querySelector('#actors tr[data-pid=\"{new}\"]').click()")
        wait_until(lambda: js(page, "document.getElementById('detail-text').dataset.ready") == "1", LONG_TIMEOUT,
                   what="the stack to arrive")
        text = js(page, "document.getElementById('detail-text').textContent")
        assert text.startswith(f"Stack of {new}:") and "in blocked_in_observe_test" in text
        # And the state button, for the GenServer.
        js(page, f"document.querySelector('#actors tr[data-pid=\"{on_a['counter']}\"]').click()")
        js(page, "document.getElementById('show-state').click()")
        wait_until(lambda: js(page, "document.getElementById('detail-text').dataset.ready === '1' && "
                                    "document.getElementById('detail-text').dataset.what") == "state", LONG_TIMEOUT)
        assert "'count': 0" in js(page, "document.getElementById('detail-text').textContent")
