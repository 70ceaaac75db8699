"""Dashboard page load times on the full year, in a real browser (chromium through Playwright).

    python -m bench.dashboard [--start 2010-12-01 --end 2011-12-09] [--loads 3] [--keep]

On a fresh stack (bench ports): ingest the range and publish every mart (``IngestBackfill``,
``MartsBackfill``), run the SLA monitor once, start the app, log in, then open every page ``--loads`` times
(the first open of a page fills the query cache; later ones within its 60 s TTL read it) and time each until
Streamlit has finished running it. Last line: one JSON summary.
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

from bench.stack import ROOT, bench_stack, luigi_cmd, run_measured, succeeded

PAGES = ("Overview", "Geography", "Products", "Customers", "Anomalies", "Pipeline and SLA")
USER = "bench"
PASSWORD, SECRET = secrets.token_urlsafe(16), secrets.token_urlsafe(32)  # per run, never stored


def _run(stack, module: str, *task: str) -> float:
    wall, _, proc = run_measured(luigi_cmd(module, *task), stack.env)
    if not succeeded(proc):
        raise SystemExit(f"{' '.join(task)} failed:\n{proc.stderr[-3000:]}")
    return wall


def _settled(page, heading: str) -> None:
    """The page's heading is shown and Streamlit has finished running it (status widget came and went)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.get_by_role("heading", name=heading).wait_for(timeout=120_000)
    try:
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="attached", timeout=3000)
    except PlaywrightTimeout:
        pass
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    content = ", ".join(f'[data-testid="{t}"]' for t in ("stPlotlyChart", "stDataFrame", "stAlert", "stMetric"))
    page.locator(content).first.wait_for(timeout=120_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2010-12-01")
    parser.add_argument("--end", default="2011-12-09")
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--screenshot", help="save the Overview page (full year) to this PNG")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from dashboard import auth

    with bench_stack(keep=args.keep) as stack:
        ingest_s = _run(stack, "pipeline.tasks.ingest", "IngestBackfill", "--start", args.start, "--end", args.end)
        marts_s = _run(stack, "pipeline.tasks.dw", "MartsBackfill", "--start", args.start, "--end", args.end)
        _run(stack, "pipeline.tasks.sla", "SlaMonitor", "--now", f"{args.end}T0900")
        print(f"ingest {ingest_s:.1f} s, marts {marts_s:.1f} s", flush=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = dict(stack.env, **{auth.USERS_ENV: json.dumps({USER: auth.hash_password(PASSWORD)}),
                                 auth.SECRET_ENV: SECRET})
        app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port",
                                str(port), "--server.headless", "true"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(90):
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    time.sleep(1)
            times: dict[str, list[float]] = {p: [] for p in (*PAGES, "My purchases")}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.get_by_label("User", exact=True).fill(USER)
                page.get_by_label("Password", exact=True).fill(PASSWORD)
                t0 = time.monotonic()
                page.get_by_role("button", name="Log in").click()
                _settled(page, "Overview")
                times["Overview"].append(time.monotonic() - t0)
                if args.screenshot:
                    page.wait_for_timeout(2000)
                    page.screenshot(path=args.screenshot, full_page=True)
                for i in range(args.loads):
                    for name in PAGES if i else PAGES[1:]:
                        t0 = time.monotonic()
                        page.get_by_role("link", name=name).click()
                        _settled(page, name)
                        times[name].append(time.monotonic() - t0)
                link = auth.purchases_url(17850, url, SECRET)
                shopper = browser.new_page()
                for _ in range(args.loads):
                    t0 = time.monotonic()
                    shopper.goto(link)
                    _settled(shopper, "My purchases")
                    times["My purchases"].append(time.monotonic() - t0)
                browser.close()
        finally:
            app.terminate()
            app.wait(30)
    summary = {name: {"first_s": round(t[0], 2), "cached_median_s": round(statistics.median(t[1:] or t), 2)}
               for name, t in times.items()}
    for name, s in summary.items():
        print(f"{name:<18} first load {s['first_s']:6.2f} s   later loads (median) {s['cached_median_s']:6.2f} s")
    print(json.dumps({"range": [args.start, args.end], "pages": summary, "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
