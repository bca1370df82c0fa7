"""`chatconform config show`: the configuration `run` would use, merged from the command line, the
environment and the config file, secrets redacted, each value with where it came from."""

from __future__ import annotations

import argparse

from chatconform import config
from chatconform.errors import EXIT_OK


def show(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    as_run = parser.parse_args(["run"])
    for extra in ("deterministic", "load", "load_profile"):
        if not hasattr(as_run, extra):
            setattr(as_run, extra, None)
    merged = config.apply(as_run, cfg, set())
    for line in config.show_lines(merged, cfg):
        print(line)
    return EXIT_OK
