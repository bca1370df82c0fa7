"""Fixtures shared by the self-tests: expensive things made once and shared where isolation allows.

`shared_reference`: one plain reference server (no fault, no variation) for the whole test session
of a worker, for tests that only need *a* correct target and do not care what other tests did to it
(sessions they created, keys they tried). Tests that need a fault, a variation, a fresh database or
timing of their own still start their own (`harness.reference(...)`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatconform.embedded import EmbeddedServer

from harness import reference


@pytest.fixture(scope="session")
def shared_reference() -> Iterator[EmbeddedServer]:
    with reference() as server:
        yield server


# Scheduling on few cores (CI: `pytest -n 4` on 2 cores). The suite's wall time is set by its long end-to-end
# tests (each fault's run, the strict runs, the fuzz faults, the README walk-through, the hostile
# families, load runs). xdist's `worksteal` gives each worker a contiguous share of the collection
# and lets an idle worker take the back half of a busy one's queue. Started last, or all on one
# worker, the long tests leave the other worker idle at the end. So the collection is laid out in
# one contiguous share per worker, each starting with its part of the long tests, dealt longest
# first to the share with the least expected time (LPT), the short tests filling the rest. No test is
# dropped or changed, only the order. Expected seconds per test, as measured with `pytest -n 4` on 2
# cores (issue 14; a parametrized test: its median); anything not listed counts as short.
EXPECTED_S: tuple[tuple[str, float], ...] = (
    ("test_hostile.py::test_default_options_end_every_hostile_kind_in_bounded_time", 287),
    ("test_hostile.py::test_hostile_target_is_survived", 121),
    ("test_fuzz.py::test_reference_passes_strict_and_reproducibly", 75),
    ("test_fuzz.py::test_fuzz_only_faults", 25),
    ("test_readme.py::test_readme_walk_through_verbatim", 54),
    ("test_secrets.py::test_no_key_in_any_output_of_any_command", 48),
    ("test_conformance.py::test_reference_passes_strict_with_the_same_verdicts_twice", 47),
    ("test_load_sweep.py::test_sweep_of_a_capped_server", 42),
    ("test_fuzz.py::test_lenient_server_passes_strict", 36),
    ("test_report.py::test_summary_html_of_a_run_with_warnings", 34),
    ("test_hostile.py::test_load_against_a_hostile_target_ends_on_time", 30),
    ("test_report.py::test_summary_html_renders_with_verdicts_failures_first", 27),
    ("test_load_conformance.py::test_slo_attainment_either_side_of_the_injected_ttft", 26),
    ("test_report.py::test_summary_html_of_a_clean_run", 25),
    ("test_conformance.py::test_fault_fails_its_rule", 15),
    ("test_report.py::test_summary_md_fits_a_job_summary", 24),
    ("test_examples.py::test_verify_writes_one_verdict_and_verification_json", 23),
    ("test_report.py::test_allure_html_builds", 20),
    ("test_load_cli.py::test_two_workers_merge_and_a_broken_threshold_exits_1", 20),
    ("test_load_distributed.py::test_master_and_two_workers_merge_exactly_the_workers_samples", 19),
    ("test_load_profiles.py::test_profile_honours_run_time", 13),
    ("test_fuzz.py::test_cases_depend_on_the_seed_alone", 18),
    ("test_sdk.py::test_strict_completions_run_against_random_replies", 16),
    ("test_wheel.py::test_wheel_carries_suites_and_runs", 16),
    ("test_reference_server.py::test_fault_starts_and_bites", 16),
    ("test_fuzz.py::test_schemathesis_cli_applies_the_rejection_list", 16),
    ("test_conformance.py::test_legitimate_variation_passes", 14),
    ("test_agent_budget.py::test_small_cap_skips_with_its_reason_and_default_judges_all", 16),
    ("test_confirm.py::test_pytest_suites_strict_expectations_fails_on_xpass", 15),
    ("test_fuzz.py::test_capped_fuzz_run_skips_naming_the_cap", 15),
    ("test_agent_budget.py::test_concurrency_keeps_the_verdicts_and_the_bill", 14),
    ("test_load_stream.py::test_the_last_requests_in_flight_are_waited_for_and_counted", 14),
    ("test_spec.py::test_reference_passes_a_short_schemathesis_run", 14),
    ("test_load_stream.py::test_open_loop_shows_a_stalled_server_as_latency", 13),
    (
        "test_load_conformance.py::test_a_fault_on_a_share_of_streams_fails_the_run_naming_rule_and_share",
        13,
    ),
    ("test_report.py::test_summary_links_each_rule_to_its_allure_entry", 13),
    ("test_load_cli.py::test_smoke_profile_against_the_embedded_reference", 12),
    ("test_cli.py::test_ctrl_c", 6),
    ("test_load_distributed.py", 12),
    ("test_load_profiles.py", 9),
    ("test_load_cli.py", 8),
    ("test_load_stream.py", 4),
    ("test_agent_budget.py", 9),
    ("test_secrets.py", 8),
    ("test_examples.py", 8),
    ("test_confirm.py", 3),
    ("test_run_verdicts.py", 3),
    ("test_wheel.py", 10),
    ("test_cli.py", 3),
    ("test_report.py", 3),
    ("test_load_sweep.py", 4),
    ("test_load_conformance.py", 4),
    ("test_reference_stress.py", 4),
    ("test_sse_differential.py", 1),
)


def _expected(item: pytest.Item) -> float:
    nodeid = item.nodeid.removeprefix("tests/")
    return next((s for prefix, s in EXPECTED_S if nodeid.startswith(prefix)), 0.0)


def _layout(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """`workers` contiguous shares of equal length, each led by its part of the long tests."""
    timed = sorted(
        (i for i in items if _expected(i) >= 1), key=_expected, reverse=True
    )  # stable: equal estimates keep their collected order
    short = [i for i in items if _expected(i) < 1]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for item in timed:
        k = min(range(workers), key=lambda w: (loads[w], len(shares[w])))
        shares[k].append(item)
        loads[k] += _expected(item)
    remaining = len(items)
    for i, share in enumerate(shares):  # the sizes worksteal's first distribution sends
        size = remaining // (workers - i)
        remaining -= size
        while len(share) < size and short:
            share.append(short.pop(0))
    shares[-1].extend(short)
    return [i for share in shares for i in share]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    items[:] = _layout(items, max(1, workers))


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "dist", None) == "load" and getattr(config.option, "tx", None):
        config.option.dist = "worksteal"
