"""Reports built from real runs: a clean run against the reference, and a run against a faulty
variant breaking a documented rule (OAI-4 FAILs) and one breaking a contract decision (SSE-7 WARNs
at default strictness). The three runs go in parallel, loopback only, each bounded.

The pages are rendered in headless Chromium (Debian's `chromium`), checked from the DOM and saved as
screenshots next to the reports (`<run>/summary.png`, `<matrix>/matrix.png`)."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from chatconform.paths import resource
from chatconform.report import pytest_args, write_run_reports
from chatconform.report.allure_html import build_allure_html, find_allure
from chatconform.report.allure_results import CATEGORIES, feature_name
from chatconform.report.matrix import write_matrix
from chatconform.rules import FAMILIES, RULES
from chatconform.run import UNUSED_PLUGINS

from harness import reference

RUN_TIMEOUT_S = 120
CHROMIUM_TIMEOUT_S = 45
VARIANTS: dict[str, tuple[str, ...]] = {
    "reference": (),
    "faulty": ("--fault", "completion-no-done"),  # OAI-4 (D): FAIL
    "warn": ("--fault", "seq-gap"),  # SSE-7 (C): WARN without --strict
}


def _suite_cmd(report_dir: Path, target_file: Path, strict: bool) -> list[str]:
    suites = resource("suites")
    files = [str(suites / f"test_{f}.py") for f in FAMILIES if (suites / f"test_{f}.py").exists()]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *files,
        "-c",
        str(suites / "run.ini"),
        "-p",
        "chatconform.plugin",
    ]
    cmd += [
        "--rootdir",
        str(suites),
        "-q",
        "--no-header",
        "-p",
        "no:cacheprovider",
        "--assert=plain",
    ]
    cmd += ["--junitxml", str(report_dir / "junit.xml"), "-W", "ignore::DeprecationWarning"]
    cmd += ["--report-dir", str(report_dir), "--target-file", str(target_file)]
    cmd += ["--suite", ",".join(FAMILIES), *pytest_args(report_dir)]
    cmd += [a for name in UNUSED_PLUGINS for a in ("-p", f"no:{name}")]
    return [*cmd, "--strict-contract"] if strict else cmd


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three runs (`_make_runs`), made once per test session: under xdist, the first worker to
    need them makes them in the session's shared temporary folder, under a lock, and every worker
    copies them into its own, so that a test writing into a run's folder disturbs no other."""
    base = tmp_path_factory.mktemp("reports")
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        secrets = _make_runs(base)
    else:
        shared = tmp_path_factory.getbasetemp().parent / "report-runs"  # this session's
        with open(f"{shared}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = shared / "secrets.json"
            if not done.exists():
                shutil.rmtree(shared, ignore_errors=True)  # a worker that failed making them
                shared.mkdir()
                done.write_text(json.dumps(sorted(_make_runs(shared))), encoding="utf-8")
        secrets = set(json.loads(done.read_text(encoding="utf-8")))
        for name in VARIANTS:
            shutil.copytree(shared / name, base / name)
    out: dict[str, Any] = {"secrets": secrets}
    out.update({name: base / name for name in VARIANTS})
    return out


def _make_runs(base: Path) -> set[str]:
    """Three runs in parallel, each against its own reference server, in `base`/<variant>; their
    keys, for the canary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
    env["CHATCONFORM_QUIET_SUMMARY"] = "1"
    env.pop("GITHUB_STEP_SUMMARY", None)
    out: dict[str, Any] = {"secrets": set()}
    with (
        reference(*VARIANTS["reference"]) as ref,
        reference(*VARIANTS["faulty"]) as bad,
        reference(*VARIANTS["warn"]) as warn,
    ):
        procs = {}
        for name, server in (("reference", ref), ("faulty", bad), ("warn", warn)):
            d = base / name
            d.mkdir()
            creds = json.loads(server.credentials.read_text(encoding="utf-8"))
            out["secrets"].update(v for k, v in creds.items() if k.endswith("Key") and v)
            procs[name] = (
                d,
                subprocess.Popen(
                    _suite_cmd(d, server.credentials, strict=False),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                    stdin=subprocess.DEVNULL,
                ),
            )
        for name, (d, proc) in procs.items():
            try:
                log, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"the {name} run took over {RUN_TIMEOUT_S} s")
            assert (d / "summary.json").exists(), log[-3000:]
            write_run_reports(d)
    assert out["secrets"], "the reference server wrote no keys"
    return out["secrets"]


def _summary(d: Path) -> dict[str, Any]:
    return json.loads((d / "summary.json").read_text(encoding="utf-8"))


# -- headless Chromium ----------------------------------------------------------------------------
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")


def _chromium_args(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]


def render(page: Path, screenshot: Path, profile: Path) -> str:
    """The page's DOM after load (--dump-dom), and a 1280x2000 screenshot saved to `screenshot`."""
    exe = _chromium()
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [exe, *_chromium_args(profile / "dom"), "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<html" in dom.stdout
    shot = subprocess.run(
        [
            exe,
            *_chromium_args(profile / "shot"),
            f"--screenshot={screenshot}",
            "--window-size=1280,2000",
            "--hide-scrollbars",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.exists()
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
    return dom.stdout


class Dom(HTMLParser):
    """Elements with an id or a data-* attribute: their attributes and their text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.imgs: list[dict[str, str | None]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
            return
        if tag in ("meta", "link", "br", "input"):
            return
        el = {"tag": tag, "attrs": a, "text": ""}
        if "id" in a or any(k.startswith("data-") for k in a):
            self.elements.append(el)
        self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            el = self._open.pop()
            if el["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for el in self._open:
            el["text"] += data

    def by_id(self, ident: str) -> dict[str, Any]:
        found = [el for el in self.elements if el["attrs"].get("id") == ident]
        assert found, f"no element #{ident}"
        return found[0]

    def with_attr(self, name: str) -> list[dict[str, Any]]:
        return [el for el in self.elements if name in el["attrs"]]


def _pixels(png: Path, colour: tuple[int, int, int]) -> int:
    """How many pixels have (about) this colour: a verdict badge or banner is visibly painted."""
    image_mod = pytest.importorskip("PIL.Image")
    with image_mod.open(png) as img:
        data = img.convert("RGB").resize((640, 1000)).tobytes()
    r0, g0, b0 = colour
    return sum(
        1
        for i in range(0, len(data), 3)
        if abs(data[i] - r0) < 24 and abs(data[i + 1] - g0) < 24 and abs(data[i + 2] - b0) < 24
    )


RED, GREEN = (207, 34, 46), (26, 127, 55)  # the FAIL and PASS colours of the pages


# -- summary.html / summary.md --------------------------------------------------------------------
def test_summary_html_renders_with_verdicts_failures_first(runs: dict[str, Any]) -> None:
    d: Path = runs["faulty"]
    dom = Dom(render(d / "summary.html", d / "summary.png", d / "chromium"))
    banner = dom.by_id("verdict")
    assert banner["attrs"]["data-verdict"] == "FAIL"
    assert "FAIL" in banner["text"]
    rows = [el for el in dom.with_attr("data-rule") if el["tag"] == "tr"]
    verdicts = {el["attrs"]["data-rule"]: el["attrs"]["data-verdict"] for el in rows}
    assert verdicts == {r["id"]: r["verdict"] for r in _summary(d)["rules"]}
    assert verdicts["OAI-4"] == "FAIL"
    assert verdicts["SSE-7"] == "PASS"
    order = [el["attrs"]["data-verdict"] for el in rows]
    rank = {"FAIL": 0, "ERROR": 1, "WARN": 2, "SKIP": 3, "PASS": 4}
    assert order == sorted(order, key=rank.__getitem__), "FAIL first, then ERROR, WARN, SKIP, PASS"
    oai4 = next(el for el in rows if el["attrs"]["data-rule"] == "OAI-4")
    assert "FAIL" in oai4["text"]
    assert "DONE" in oai4["text"]
    evidence = {el["attrs"]["data-evidence-for"]: el for el in dom.with_attr("data-evidence-for")}
    assert set(evidence) == {"OAI-4"}
    assert "curl" in evidence["OAI-4"]["text"]
    assert "arrival ms" in evidence["OAI-4"]["text"]  # the SSE frames with arrival times
    assert _pixels(d / "summary.png", RED) > 300  # the FAIL banner and badges


def test_summary_html_of_a_run_with_warnings(runs: dict[str, Any]) -> None:
    d: Path = runs["warn"]
    dom = Dom(render(d / "summary.html", d / "summary.png", d / "chromium"))
    assert dom.by_id("verdict")["attrs"]["data-verdict"] == "PASS"  # a WARN does not fail a run
    rows = [el for el in dom.with_attr("data-rule") if el["tag"] == "tr"]
    assert rows[0]["attrs"]["data-rule"] == "SSE-7"
    assert rows[0]["attrs"]["data-verdict"] == "WARN"
    assert "WARN" in rows[0]["text"]
    evidence = {el["attrs"]["data-evidence-for"]: el for el in dom.with_attr("data-evidence-for")}
    assert "seq 4" in evidence["SSE-7"]["text"]
    assert "arrival ms" in evidence["SSE-7"]["text"]


def test_summary_html_of_a_clean_run(runs: dict[str, Any]) -> None:
    d: Path = runs["reference"]
    dom = Dom(render(d / "summary.html", d / "summary.png", d / "chromium"))
    assert dom.by_id("verdict")["attrs"]["data-verdict"] == "PASS"
    assert "PASS" in dom.by_id("verdict")["text"]
    assert not dom.with_attr("data-evidence-for")
    assert _pixels(d / "summary.png", GREEN) > 300  # the PASS banner and badges


def test_summary_md_fits_a_job_summary(runs: dict[str, Any]) -> None:
    md = (runs["faulty"] / "summary.md").read_text(encoding="utf-8")
    assert len(md) < 60_000
    assert md.startswith("## chatconform conformance: ❌ FAIL")
    assert re.search(r"^\| OAI-4 \| D \| ❌ FAIL \|", md, re.M)
    assert "```sh\ncurl " in md
    warn = (runs["warn"] / "summary.md").read_text(encoding="utf-8")
    assert re.search(r"^\| SSE-7 \| C \| ⚠️ WARN \|", warn, re.M)
    clean = (runs["reference"] / "summary.md").read_text(encoding="utf-8")
    assert clean.startswith("## chatconform conformance: ✅ PASS")


def test_step_summary_appended_once_per_section(
    runs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(runs["faulty"] / "summary.json", d / "summary.json")
    step = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    write_run_reports(d)
    write_run_reports(d)  # e.g. after `chatconform load` into the same directory
    text = step.read_text(encoding="utf-8")
    assert text.count("## chatconform conformance") == 1


# -- matrix ---------------------------------------------------------------------------------------
def test_matrix_shows_the_differing_rules(runs: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    dirs = [runs["reference"], runs["faulty"], runs["warn"]]
    html_path, json_path = write_matrix(dirs, out)
    m = json.loads(json_path.read_text(encoding="utf-8"))
    assert [t["name"] for t in m["targets"]] == ["reference", "faulty", "warn"]
    assert [t["verdict"] for t in m["targets"]] == ["PASS", "FAIL", "PASS"]
    assert {"OAI-4", "SSE-7"} <= set(m["differing"])
    row = next(r for r in m["rules"] if r["id"] == "OAI-4")
    assert [c["verdict"] for c in row["cells"]] == ["PASS", "FAIL", "PASS"]
    assert row["differs"]
    row = next(r for r in m["rules"] if r["id"] == "SSE-7")
    assert [c["verdict"] for c in row["cells"]] == ["PASS", "PASS", "WARN"]
    assert row["differs"]

    dom = Dom(render(html_path, out / "matrix.png", tmp_path / "chromium"))
    rows = {el["attrs"]["data-rule"]: el for el in dom.with_attr("data-rule")}
    assert set(rows) == {r["id"] for r in m["rules"]}
    assert "differs" in rows["OAI-4"]["attrs"]["class"]
    assert "same" in rows["AUTH-1"]["attrs"]["class"]
    assert "PASS" in rows["OAI-4"]["text"]
    assert "FAIL" in rows["OAI-4"]["text"]
    assert "WARN" in rows["SSE-7"]["text"]
    assert dom.by_id("differing-count")["text"] == str(len(m["differing"]))
    assert _pixels(out / "matrix.png", RED) > 20


def test_report_cli(runs: dict[str, Any], tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "chatconform.report.cli"]
    done = subprocess.run(
        [*cmd, "--compare", str(runs["reference"]), str(runs["faulty"]), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "OAI-4" in done.stdout
    assert (tmp_path / "matrix.html").exists()
    missing = subprocess.run(
        [*cmd, str(tmp_path / "nope")], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2
    assert "not a directory" in missing.stderr
    empty = subprocess.run([*cmd, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2
    assert "summary.json" in empty.stderr


# -- Allure ---------------------------------------------------------------------------------------
STATUSES = {"passed", "failed", "broken", "skipped", "unknown"}


def _results(d: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((d / "allure-results").glob("*-result.json"))
    ]


def _labels(r: dict[str, Any], name: str) -> list[str]:
    return [lb["value"] for lb in r.get("labels", []) if lb["name"] == name]


def _category(r: dict[str, Any]) -> str | None:
    """The category Allure puts a result in (first match; regexes searched, as Allure 3 does)."""
    msg = (r.get("statusDetails") or {}).get("message") or ""
    for c in CATEGORIES:
        if r["status"] not in c.get("matchedStatuses", []):
            continue
        if "messageRegex" in c and not re.search(c["messageRegex"], msg):
            continue
        return str(c["name"])
    return None


def test_allure_results_are_what_allure_reads(runs: dict[str, Any]) -> None:
    for name in VARIANTS:
        results_dir = runs[name] / "allure-results"
        results = _results(runs[name])
        assert len(results) >= 20, f"{name}: {len(results)} results"
        for r in results:
            assert isinstance(r["uuid"], str)
            assert isinstance(r["name"], str)
            assert isinstance(r["historyId"], str)
            assert isinstance(r["fullName"], str)
            assert r["status"] in STATUSES
            assert isinstance(r["start"], int)
            assert isinstance(r["stop"], int)
            assert r["stop"] >= r["start"]
            for lb in r["labels"]:
                assert set(lb) == {"name", "value"}
                assert isinstance(lb["value"], str)
            for a in r.get("attachments", []):
                assert set(a) == {"name", "source", "type"}
                assert (results_dir / a["source"]).is_file(), a
            for link in r.get("links", []):
                assert link["url"]
                assert link["name"]
                assert link["type"] == "link"
            rules = _labels(r, "rule")
            assert rules, f"{r['name']} has no rule label"
            assert set(_labels(r, "level")) <= {"D", "C"}
            assert _labels(r, "level")
            assert _labels(r, "family")
            assert len(_labels(r, "verdict")) == 1
            # Behaviors read by rule: epic = family, feature = rule, story = a clause of one
            assert _labels(r, "epic") == list(dict.fromkeys(RULES[x].family for x in rules))
            assert _labels(r, "feature") == [feature_name(RULES[x]) for x in rules]
            for story in _labels(r, "story"):
                rid, _, clause = story.split(":")[0].partition("/")
                assert rid in rules, story
                assert clause in RULES[rid].clause_ids, story
            assert {ln["name"].split(":")[0] for ln in r["links"]} == set(rules)
        env = (results_dir / "environment.properties").read_text(encoding="utf-8")
        for key in ("target", "harness.version", "spec.sha256", "strictness", "seed"):
            assert re.search(rf"^{re.escape(key)}=\S", env, re.M), key
        cats = json.loads((results_dir / "categories.json").read_text(encoding="utf-8"))
        assert [c["name"] for c in cats] == [c["name"] for c in CATEGORIES]


def test_allure_grading_attachments_and_categories(runs: dict[str, Any]) -> None:
    by_verdict: dict[str, list[dict[str, Any]]] = {}
    for name in ("faulty", "warn"):
        for r in _results(runs[name]):
            r["_dir"] = runs[name]
            by_verdict.setdefault(_labels(r, "verdict")[0], []).append(r)
    fails, warns = by_verdict["FAIL"], by_verdict["WARN"]
    assert all(r["status"] == "failed" for r in fails)
    assert any("OAI-4" in r["statusDetails"]["message"] for r in fails)
    assert {_category(r) for r in fails} == {"Contract failures: documented rules (D)"}
    assert all(r["status"] == "passed" for r in warns)
    assert {_category(r) for r in warns} == {"Contract-decision warnings (C)"}
    assert all(r["status"] == "passed" and not r.get("statusDetails") for r in by_verdict["PASS"])
    for r in fails + warns:
        names = [a["name"] for a in r["attachments"]]
        assert any(n.endswith("request and response") for n in names), names
        assert any(n.endswith("SSE wire log (arrival times)") for n in names), names
        assert any(n.endswith("reproduce (curl)") for n in names), names
        assert "findings.json" in names
    warn = warns[0]
    d: Path = warn["_dir"]
    wire = next(a for a in warn["attachments"] if "SSE wire log" in a["name"])
    text = (d / "allure-results" / wire["source"]).read_text(encoding="utf-8")
    assert "arrival ms" in text
    assert "event: agent_message" in text
    assert re.search(r"^\s+\d+\.\d{3}\s+\d+\s+agent_message", text, re.M)
    curl = next(a for a in warn["attachments"] if a["name"].endswith("(curl)"))
    assert "$FLOWYTE_API_KEY" in (d / "allure-results" / curl["source"]).read_text()


def _report_data(index: Path, name: str) -> Any:
    """A data file of a single-file Allure 3 report (embedded base64 JSON)."""
    m = re.search(rf'd\("{re.escape(name)}","([A-Za-z0-9+/=]+)"\)', index.read_text("utf-8"))
    assert m, f"{name} is not in {index}"
    return json.loads(base64.b64decode(m.group(1)))


@pytest.fixture(scope="module")
def allure_reports(runs: dict[str, Any]) -> dict[str, Path]:
    """One Allure 3 build per run of this module (each ~10 s), shared by the tests below."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the Allure HTML report needs it")
    if find_allure() is None:
        pytest.skip(
            "Allure 3 is not installed: npm install --prefix ~/.cache/chatconform/allure allure@3"
        )
    out = {}
    for name in VARIANTS:
        d: Path = runs[name]
        build = build_allure_html(d / "allure-results", d / "allure-report", install=False)
        out[name] = build.index
    return out


def test_allure_html_builds(runs: dict[str, Any], allure_reports: dict[str, Path]) -> None:
    for name in VARIANTS:
        d: Path = runs[name]
        assert allure_reports[name].stat().st_size > 100_000
        stats = json.loads((d / "allure-report" / "summary.json").read_text(encoding="utf-8"))
        assert stats["stats"]["total"] == len(_results(d))
        expected = "failed" if name == "faulty" else "passed"
        assert stats["status"] == expected


def test_allure_tree_reads_rule_by_rule(allure_reports: dict[str, Path]) -> None:
    """The report's tree is the contract: families, then rules, then clauses of a rule."""
    tree = _report_data(allure_reports["faulty"], "widgets/tree.json")
    groups = tree["groupsById"]
    families = [groups[g]["name"] for g in tree["root"]["groups"]]
    assert families
    assert set(families) <= set(FAMILIES)
    features = {
        groups[c]["name"] for g in tree["root"]["groups"] for c in groups[g].get("groups", [])
    }
    assert feature_name(RULES["OAI-4"]) in features
    assert {f.split(":")[0] for f in features} <= set(RULES)


def test_summary_links_each_rule_to_its_allure_entry(
    runs: dict[str, Any], allure_reports: dict[str, Path]
) -> None:
    d: Path = runs["faulty"]
    write_run_reports(d)  # as `chatconform report DIR --allure` does after the build
    html = (d / "summary.html").read_text(encoding="utf-8")
    m = re.search(r'id="rule-OAI-4".*?href="allure-report/index\.html#([0-9a-f]{32})"', html)
    assert m, "OAI-4 has no link to its Allure entry"
    linked = {
        r["uuid"]
        for r in _results(d)
        if "OAI-4" in _labels(r, "rule") and _labels(r, "verdict") == ["FAIL"]
    }
    assert m.group(1) in {hashlib.md5(u.encode()).hexdigest() for u in linked}
    assert m.group(1) in allure_reports["faulty"].read_text(encoding="utf-8")


# -- secrets --------------------------------------------------------------------------------------
def test_no_secret_in_any_report_file(runs: dict[str, Any], tmp_path: Path) -> None:
    """Canary: the reference servers' generated keys appear in no file any report step wrote."""
    write_matrix([runs[name] for name in VARIANTS], tmp_path)
    secrets: set[str] = runs["secrets"]
    scanned = 0
    for root in (*(runs[name] for name in VARIANTS), tmp_path):
        for path in root.rglob("*"):
            if not path.is_file() or "chromium" in path.parts:
                continue
            data = path.read_bytes()
            scanned += 1
            for secret in secrets:
                assert secret.encode() not in data, f"a key leaked into {path}"
    assert scanned > 50
