"""`chatconform verify`: release verification in one command.

The configured conformance suites (with the expectations file) and a configured load profile with
its thresholds, against ONE target, into ONE report directory: one verdict, one summary page, and
`verification.json` recording what was run (chatconform version, spec and contract hashes, seed,
target, redacted config, start and end, the verdict). Exit codes as for `run`: 0 PASS, 1 FAIL (a rule
failed, an expected failure passed under --strict-expectations, or a load threshold broke), 2 usage,
3 ERROR (no rule failed but the run could not judge some rule).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from chatconform.errors import EXIT_ERROR, EXIT_FAIL, EXIT_OK, UsageError
from chatconform.paths import resource

VERIFICATION_FILE = "verification.json"
DEFAULT_PROFILE = "verify"  # loadtests/profiles/verify.conf: every stream judged, no violation


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--load-profile", default=None, metavar="NAME",
        help="a [load.profiles.NAME] of the config file, or a built-in profile "
        f"(default: the config's verify.load_profile, else {DEFAULT_PROFILE})",
    )  # fmt: skip
    p.add_argument(
        "--no-load", dest="load", action="store_false", default=None,
        help="conformance only (verification.json records that no load test ran)",
    )  # fmt: skip


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def load_argv(profile: str, cfg_profiles: dict[str, dict[str, Any]], report_dir: Path) -> list[str]:
    """`chatconform load` arguments for a profile of the config file (or a built-in one)."""
    argv = ["--report-dir", str(report_dir)]
    spec = cfg_profiles.get(profile)
    if spec is None:
        from chatconform.load import profiles

        if profile not in profiles.available():
            known = sorted({*cfg_profiles, *profiles.available()})
            raise UsageError(f"unknown load profile {profile!r}; choose from {', '.join(known)}")
        return [*argv, "--profile", profile]
    if spec.get("base"):
        argv += ["--profile", str(spec["base"])]
    for key, value in spec.items():
        if key != "base":
            argv += ["--" + key.replace("_", "-"), str(value)]
    return argv


def verify_command(args: argparse.Namespace) -> int:
    from chatconform import __version__, config
    from chatconform.embedded import EmbeddedError, EmbeddedServer, reference_args_from_env
    from chatconform.run import run_command
    from chatconform.target import TARGET_FIELDS, Limits, TargetError, resolve_target

    started, t0 = _now(), time.monotonic()
    cfg: config.Config = getattr(args, "config_file", None) or config.Config()
    report_dir = Path(
        args.report_dir or Path("reports") / f"verify-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    args.report_dir = str(report_dir)
    do_load = args.load is not False
    profile = args.load_profile or DEFAULT_PROFILE
    load_args = load_argv(profile, cfg.profiles, report_dir) if do_load else []
    server: EmbeddedServer | None = None
    try:
        explicit = {a: getattr(args, a) for a in TARGET_FIELDS}
        try:
            target = resolve_target(explicit, args.target_file, Limits())
        except TargetError as exc:
            raise UsageError(str(exc)) from None
        if target is None:  # one reference for both parts: the same target throughout
            server = EmbeddedServer(reference_args_from_env())
            try:
                server.start()
            except EmbeddedError as exc:
                raise UsageError(str(exc)) from None
            args.target_file = str(server.credentials)
            print(
                f"chatconform verify: no --base-url given; started the reference ({server.credentials})"
            )
        code = run_command(args)
        conformance = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
        load_code, load_verdict = None, None
        if do_load:
            load_code, load_verdict = _run_load(args, load_args, report_dir)
    finally:
        if server is not None:
            server.stop()
    verdict = _verdict(conformance["verdict"], load_verdict)
    exit_code = {"PASS": EXIT_OK, "FAIL": EXIT_FAIL}.get(verdict, EXIT_ERROR)
    if code == 130:
        exit_code = 130
    from chatconform.config import redacted

    record = {
        "chatconform": __version__,
        "verdict": verdict,
        "exitCode": exit_code,
        "conformance": {
            "verdict": conformance["verdict"],
            "counts": conformance.get("counts"),
            "strict": conformance.get("strict"),
            "suites": conformance.get("families"),
            "expectations": (conformance.get("expectations") or {}).get("counts"),
        },
        "load": None
        if not do_load
        else {"profile": profile, "verdict": load_verdict, "exitCode": load_code},
        "spec": {"chat-api.yaml": _sha256(resource("specs") / "chat-api.yaml")},
        "contract": {"CONTRACT.md": _sha256(resource("specs") / "CONTRACT.md")},
        "seed": conformance.get("fuzzSeed"),
        "target": conformance.get("target"),
        "config": {
            "file": str(cfg.path) if cfg.path else None,
            "settings": redacted(getattr(args, "config_settings", {}) or {}),
        },
        "started": started,
        "ended": _now(),
        "seconds": round(time.monotonic() - t0, 1),
    }
    (report_dir / VERIFICATION_FILE).write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    from chatconform.report import write_run_reports

    write_run_reports(report_dir)  # one page: conformance and load
    print(
        f"chatconform verify: {verdict} (conformance {conformance['verdict']}"
        + (f", load {load_verdict}" if do_load else ", no load test")
        + f") in {record['seconds']} s; {report_dir / VERIFICATION_FILE}"
    )
    return exit_code


def _verdict(conformance: str, load: str | None) -> str:
    if conformance == "FAIL" or load in ("FAIL", "INVALID"):
        return "FAIL"
    if conformance == "ERROR" or (load is not None and load != "PASS"):
        return "ERROR"
    return "PASS"


def _run_load(args: argparse.Namespace, argv: list[str], report_dir: Path) -> tuple[int, str]:
    from chatconform.load.cli import build_parser
    from chatconform.load.cli import run as run_load
    from chatconform.target import TARGET_FIELDS

    try:
        largs = build_parser().parse_args(argv)
    except SystemExit:
        raise UsageError(f"the load profile's settings are not valid: {' '.join(argv)}") from None
    for attr in TARGET_FIELDS:
        setattr(largs, attr, getattr(args, attr, None))
    largs.target_file = args.target_file
    largs.timeout, largs.stream_timeout = args.timeout, args.stream_timeout
    print("chatconform verify: load " + " ".join(argv), flush=True)
    code = run_load(largs)
    path = report_dir / "load-summary.json"
    if code == 2 or not path.exists():
        return code, "ERROR"
    verdict = json.loads(path.read_text(encoding="utf-8")).get("verdict", "ERROR")
    sys.stdout.flush()
    return code, str(verdict)
