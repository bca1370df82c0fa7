"""Command line: ``python -m chatconform.reference`` and the ``chatconform serve`` subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from chatconform.reference.faults import FAULTS, VARIATIONS, Switches

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The reference server's options (shared by ``chatconform serve``)."""
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_int_at_least(0), default=0, help="port; 0 picks a free one (default)"
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="SQLite file kept across restarts (default: a temp file, deleted)",
    )
    parser.add_argument(
        "--ttft-ms",
        type=_int_at_least(0),
        default=20,
        help="time to the first delta, ms (default 20)",
    )
    parser.add_argument(
        "--itl-ms", type=_int_at_least(0), default=5, help="delay between deltas, ms (default 5)"
    )
    parser.add_argument(
        "--tokens", type=_int_at_least(1), default=8, help="deltas per reply (default 8)"
    )
    parser.add_argument(
        "--rate-limit-rps",
        type=_int_at_least(0),
        default=20,
        help="reads of one session per second per key before a 429 (default 20; 0 = off)",
    )
    parser.add_argument(
        "--credentials-out",
        metavar="FILE",
        default=None,
        help="write the generated credentials here (JSON, mode 0600)",
    )
    parser.add_argument(
        "--fault",
        metavar="NAME",
        action="append",
        default=None,
        help="break one rule on purpose: " + ", ".join(FAULTS),
    )
    parser.add_argument(
        "--fault-rate",
        type=_share,
        default=1.0,
        metavar="F",
        help="the share of requests the --fault hits, drawn per request (default 1: all)",
    )
    parser.add_argument(
        "--variation",
        metavar="NAME",
        action="append",
        default=None,
        help="a legitimate wire variation (repeatable): " + ", ".join(VARIATIONS),
    )
    parser.add_argument(
        "--calibration",
        action="store_true",
        help="for load calibration: the least work per event (uvloop and httptools when "
        "installed, no delivery layer) and the server's own send times of completion deltas at "
        "GET /_calibration/send-times (?reset=1 starts anew); no --fault or --variation",
    )
    parser.add_argument(
        "--exit-on-stdin-close",
        action="store_true",
        help="end when standard input closes: a parent that holds a pipe to it ends the server "
        "by closing it or by dying, however it dies (chatconform's embedded server runs so)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                        help="log level (default warning); keys are never logged")  # fmt: skip


def _usage_error(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return 2


def serve(args: argparse.Namespace) -> int:
    """Run the server per parsed ``args``; 0 on clean shutdown, 2 on a usage error."""
    faults = list(args.fault or [])
    if len(faults) > 1:
        return _usage_error("at most one --fault; valid faults: " + ", ".join(FAULTS))
    if faults and faults[0] not in FAULTS:
        return _usage_error(f"unknown fault {faults[0]!r}; valid faults: " + ", ".join(FAULTS))
    variations = list(args.variation or [])
    unknown = [v for v in variations if v not in VARIATIONS]
    if unknown:
        valid = ", ".join(VARIATIONS)
        return _usage_error(f"unknown variation {unknown[0]!r}; valid variations: {valid}")
    calibration = bool(getattr(args, "calibration", False))
    if calibration and (faults or variations):
        return _usage_error("--calibration takes no --fault or --variation")
    fault_rate = getattr(args, "fault_rate", 1.0)
    if fault_rate < 1.0 and not faults:
        return _usage_error("--fault-rate needs a --fault")
    from chatconform.reference.server import ServerOptions, run
    from chatconform.reference.settings import Settings

    switches = Switches(faults[0] if faults else None, frozenset(variations), fault_rate)
    settings = Settings(args.ttft_ms, args.itl_ms, args.tokens, args.rate_limit_rps, switches,
                        calibration)  # fmt: skip
    options = ServerOptions(args.host, args.port, args.db, args.credentials_out, args.log_level,
                            bool(getattr(args, "exit_on_stdin_close", False)))  # fmt: skip
    return run(settings, options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatconform.reference",
        description="The chatconform reference server for the Flowyte Chat API.",
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))
