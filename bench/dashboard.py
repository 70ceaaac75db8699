"""Dashboard page load times on the full year, in a real browser (chromium through Playwright).

    python -m bench.dashboard [--start 2010-12-01 --end 2011-12-09] [--loads 3] [--keep | --reuse STATE_DIR]
                              [--screenshots DIR]

On a fresh stack (bench ports): ingest the range and publish every mart (``IngestBackfill``,
``MartsBackfill``) and run the SLA monitor once. Then time every page, until Streamlit has finished running it
(``dashboard.browser``), three ways in one app: "cold", the first open after HiveServer2 (restarted for it) and
the app started (new sessions list each table's partitions once); "uncached", an open right after "Refresh
data" emptied the query cache; "cached", ``--loads`` later opens within the cache's TTL (median). Last line:
one JSON summary. ``--screenshots DIR`` then saves every page, and the shopper's, as ``DIR/<page>.png``
(``docs/screenshots`` holds the full year's).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.stack import ROOT, BenchFailure, Stack, bench_stack, restart_service, run_task
from dashboard import auth
from dashboard.browser import act, open_url

CHROMIUM = "/usr/bin/chromium"
PAGES = ("Overview", "Geography", "Products", "Customers", "Anomalies", "Pipeline and SLA")
USER = "bench"
PASSWORD, SECRET = secrets.token_urlsafe(16), secrets.token_urlsafe(32)  # per run, never stored


def _shoot(page, shots: Path | None, name: str) -> None:
    if shots:
        page.wait_for_timeout(1500)  # charts finish drawing after the script run
        page.screenshot(path=str(shots / f"{name.lower().replace(' ', '_')}.png"), full_page=True)


def _visit(browser, env: dict, loads: int, shots: Path | None) -> dict[str, dict[str, list[float]]]:
    """Start the app, log in and open every page three ways (see the module's text), then the shopper's link."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
                            "--server.headless", "true"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    times: dict[str, dict[str, list[float]]] = {p: {"cold": [], "uncached": [], "cached": []}
                                                 for p in (*PAGES, "My purchases")}

    def timed(page, action, heading, name, way):
        """Do ``action`` and record how long until the page ``heading`` has finished."""
        t0 = time.monotonic()
        act(page, action, heading)
        times[name][way].append(time.monotonic() - t0)

    try:
        for _ in range(90):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(1)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_url(page, url, "E-commerce warehouse", content=False)
        page.get_by_label("User", exact=True).fill(USER)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        timed(page, page.get_by_role("button", name="Log in").click, "Overview", "Overview", "cold")
        for name in PAGES[1:]:
            timed(page, page.get_by_role("link", name=name).click, name, name, "cold")
        for i, name in enumerate(PAGES):
            here = PAGES[i - 1]
            act(page, page.get_by_role("button", name="Refresh data").click, here)
            timed(page, page.get_by_role("link", name=name).click, name, name, "uncached")
        for _ in range(loads):
            for name in PAGES:
                timed(page, page.get_by_role("link", name=name).click, name, name, "cached")
        for name in PAGES if shots else ():
            act(page, page.get_by_role("link", name=name).click, name)
            _shoot(page, shots, name)
        page.close()
        link = auth.purchases_url(17850, url, SECRET)
        shopper = browser.new_page()
        for way in ("cold", *["cached"] * loads):
            t0 = time.monotonic()
            open_url(shopper, link, "My purchases")
            times["My purchases"][way].append(time.monotonic() - t0)
        _shoot(shopper, shots, "My purchases")
        shopper.close()
    finally:
        app.terminate()
        app.wait(30)
    return times


def page_times(stack: Stack, loads: int, shots: Path | None = None,
               restart_hiveserver2: bool = True) -> dict[str, dict[str, list[float]]]:
    """Every page's load times on ``stack`` in headless chromium (``_visit``), HiveServer2 restarted first so
    "cold" is the first open after it started; ``BenchFailure`` when chromium is missing."""
    if not Path(CHROMIUM).exists():
        raise BenchFailure(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    if restart_hiveserver2:
        restart_service("hiveserver2")
    env = dict(stack.env, **{auth.USERS_ENV: json.dumps({USER: auth.hash_password(PASSWORD)}),
                             auth.SECRET_ENV: SECRET})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            return _visit(browser, env, loads, shots)
        finally:
            browser.close()


def medians(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float | None]]:
    """Per page and way (cold, uncached, cached), the median seconds (None when not measured)."""
    return {name: {way: round(statistics.median(t), 2) if t else None for way, t in ways.items()}
            for name, ways in times.items()}


def main(argv: list[str] | None = None) -> int:
    """Command line: publish the range on a bench stack (or reuse a kept one) and time every page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2010-12-01")
    parser.add_argument("--end", default="2011-12-09")
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the stack (its state dir is printed)")
    parser.add_argument("--reuse", type=Path, help="a kept stack's state dir: skip publishing, time the pages")
    parser.add_argument("--screenshots", type=Path, help="save every page as DIR/<page>.png")
    args = parser.parse_args(argv)
    with bench_stack(keep=args.keep, reuse=args.reuse) as stack:
        print(f"stack {stack.state}", flush=True)
        if args.reuse is None:
            ingest_s = run_task(stack, "pipeline.tasks.ingest", "IngestBackfill", "--start", args.start,
                                "--end", args.end).wall_s
            marts_s = run_task(stack, "pipeline.tasks.ready", "MartsBackfill", "--start", args.start,
                               "--end", args.end).wall_s
            run_task(stack, "pipeline.tasks.sla", "SlaMonitor", "--now", f"{args.end}T0900")
            print(f"ingest {ingest_s:.1f} s, marts {marts_s:.1f} s", flush=True)
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
        times = page_times(stack, args.loads, args.screenshots, restart_hiveserver2=args.reuse is None)
    summary = medians(times)
    print(f"{'page':<18} {'cold':>7} {'uncached':>9} {'cached':>7}   (seconds; medians)")
    for name, s in summary.items():
        cells = [f"{s[w]:{n}.2f}" if s[w] is not None else " " * (n - 1) + "-" for w, n in
                 (("cold", 7), ("uncached", 9), ("cached", 7))]
        print(f"{name:<18} {' '.join(cells)}")
    print(json.dumps({"range": [args.start, args.end], "pages": summary, "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
