"""Knowing when Streamlit has finished a page of the dashboard in a real browser (Playwright), for the benchmark
and the browser tests.

Streamlit's app root carries ``data-test-script-state`` (``initial``, ``running``, ``rerunRequested``,
``notRunning``...). A page is shown when a script run started after the action has ended, its heading is
visible and some content is drawn. A run that brings a heading the page did not show is seen by that heading;
on the same page, by the state going through anything else and back to ``notRunning``. A short run can pass
unseen in the state alone: the browser may apply its start and its end in one render.
"""

from __future__ import annotations

from collections.abc import Callable

APP = '[data-testid="stApp"]'
CONTENT = ", ".join(f'[data-testid="{t}"]' for t in ("stPlotlyChart", "stDataFrame", "stAlert", "stMetric"))
WATCH = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  window.__scriptStates = [];
  new MutationObserver(() => window.__scriptStates.push(app.getAttribute('data-test-script-state')))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
# an element whose code Streamlit loads on first use (a table's grid) shows a skeleton until it is drawn
NO_SKELETON = """() => !document.querySelector('[data-testid="stSkeleton"]')"""
RAN = """() => window.__scriptStates.some(s => s !== 'notRunning')
  && document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state') === 'notRunning'"""


def finish(page, heading: str, timeout_ms: int = 120_000, content: bool = True) -> None:
    """The current script run is over, ``heading`` is visible, (``content``) a chart, table, metric or
    message is drawn, and no element still waits for its code (``NO_SKELETON``)."""
    page.locator(f'{APP}[data-test-script-state="notRunning"]').wait_for(timeout=timeout_ms)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout_ms)
    if content:
        page.locator(CONTENT).first.wait_for(timeout=timeout_ms)
    page.wait_for_function(NO_SKELETON, timeout=timeout_ms)


def act(page, action: Callable[[], None], heading: str, timeout_ms: int = 120_000, content: bool = True) -> None:
    """Do ``action`` (a click) on a loaded app and wait until the script run it caused has finished."""
    page.locator(APP).wait_for(timeout=timeout_ms)
    target = page.get_by_role("heading", name=heading).first
    new_heading = target.count() == 0
    page.evaluate(WATCH)
    action()
    if new_heading:
        target.wait_for(timeout=timeout_ms)
    else:
        page.wait_for_function(RAN, timeout=timeout_ms)
    finish(page, heading, timeout_ms, content)


def open_url(page, url: str, heading: str, timeout_ms: int = 120_000, content: bool = True) -> None:
    """Load ``url`` in a fresh document and wait for its first script run to finish."""
    page.goto(url)
    finish(page, heading, timeout_ms, content)
