"""Command line: ``python -m pipeline services start|stop|status``, ``python -m pipeline run ...``."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline import services

log = logging.getLogger(__name__)


def _services(args: argparse.Namespace) -> int:
    if args.action == "start":
        services.start_all()
    elif args.action == "stop":
        services.stop_all()
    ok = True
    for st in services.status_all():
        state = "healthy" if st["healthy"] else ("running, not answering" if st["running"] else "stopped")
        ok &= st["healthy"]
        print(f"{st['service']:<12} {st['address']:<18} {state:<24} pid={st['pid'] or '-':<8} log={st['log']}")
    return 0 if ok or args.action == "stop" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("services", help="start, stop or show the embedded services")
    sp.add_argument("action", choices=["start", "stop", "status"])
    sp.set_defaults(func=_services)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except services.ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
