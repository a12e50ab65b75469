"""The conformance report's bookkeeping (compat_tests/conformance.py): test outcomes -> cell statuses -> markdown."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from compat_tests import conformance as c

SYNC = "compat_tests/test_java_features.py::test_request_reply_sync[java-5.3.3]"
CALLBACK = "compat_tests/test_java_features.py::test_request_reply_callback[java-5.3.3]"


def report(nodeid: str, when: str = "call", outcome: str = "passed", **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(
        nodeid=nodeid,
        when=when,
        passed=outcome == "passed",
        failed=outcome == "failed",
        skipped=outcome == "skipped",
        duration=0.1,
        longrepr=extra.pop("longrepr", None),
        **extra,
    )


def run(*reports: SimpleNamespace) -> dict[str, Any]:
    rec = c.Recorder()
    for r in reports:
        rec.collect(r.nodeid)
        rec.record(r)
    return c.build_matrix(rec.collected, rec.finished())


def cell(matrix: dict[str, Any], client: str, scenario: str) -> dict[str, Any]:
    return matrix["columns"][client]["cells"][scenario]


def xfail(nodeid: str) -> SimpleNamespace:
    return report(nodeid, outcome="skipped", wasxfail="client bug #1", longrepr=("f", 1, "Skipped: client bug #1"))


def test_a_verified_client_bug_neither_passes_nor_fails_the_cell() -> None:
    m = run(report(CALLBACK), xfail(SYNC))
    entry = cell(m, "java-5.3.3", "request-reply")
    assert entry["status"] == c.PASS
    assert any("client bug #1" in r for r in entry["reasons"])
    assert {t["outcome"] for t in entry["tests"]} == {c.PASS, c.CLIENT_BUG}


def test_only_client_bugs_is_not_a_pass() -> None:
    m = run(xfail(SYNC), report(CALLBACK, outcome="skipped", longrepr=("f", 1, "Skipped: no java")))
    assert cell(m, "java-5.3.3", "request-reply")["status"] == c.SKIPPED
    m = run(xfail(SYNC))  # a session that collected only the bug's test
    assert cell(m, "java-5.3.3", "request-reply")["status"] == c.SKIPPED


def test_a_failure_beats_everything_and_names_its_reason() -> None:
    crash = SimpleNamespace(reprcrash=SimpleNamespace(message="AssertionError: reply body differs\nmore"))
    m = run(xfail(SYNC), report(CALLBACK, outcome="failed", longrepr=crash))
    entry = cell(m, "java-5.3.3", "request-reply")
    assert entry["status"] == c.FAIL
    assert entry["reasons"] == [
        "test_java_features.py::test_request_reply_callback[java-5.3.3]: AssertionError: reply body differs"
    ]


def test_an_unexpected_pass_of_a_strict_xfail_fails_the_cell() -> None:
    m = run(report(CALLBACK), report(SYNC, outcome="failed", wasxfail="client bug #1", longrepr="[XPASS(strict)]"))
    entry = cell(m, "java-5.3.3", "request-reply")
    assert entry["status"] == c.FAIL
    assert "unexpectedly passed" in entry["reasons"][0]


def test_unsupported_and_untested_cells() -> None:
    m = run(report(CALLBACK))
    assert cell(m, "cpp", "request-reply")["status"] == c.UNSUPPORTED_STATUS
    assert cell(m, "cpp", "request-reply")["unsupported"] == c.UNSUPPORTED[("cpp", "request-reply")]
    # A cell with a mapped test that this session did not run is "not run", never "pass".
    assert cell(m, "java-4.9.8", "request-reply")["status"] == c.NOT_RUN


def test_markdown_notes_for_caveats_of_passing_cells(tmp_path: Any) -> None:
    data = c.write_report(
        [CALLBACK, SYNC],
        {CALLBACK: c.Outcome(c.PASS), SYNC: c.Outcome(c.CLIENT_BUG, "xfail: client bug #1")},
        doc_path=tmp_path / "c.md",
        json_path=tmp_path / "c.json",
    )
    text = (tmp_path / "c.md").read_text()
    assert data["columns"]["java-5.3.3"]["cells"]["request-reply"]["status"] == c.PASS
    assert f"**Java 5.3.3 {c.TIMES} Request-reply** — pass:" in text
    assert "client bug #1" in text


def test_every_mapping_points_at_real_cells() -> None:
    for pattern, cells in c.CELLS:
        for client, scenario in cells:
            assert scenario in c.cells_of(c.CLIENT_BY_ID[client]), (pattern, client, scenario)
    for client, scenario in [*c.UNSUPPORTED, *c.CELL_NOTES]:
        assert scenario in c.cells_of(c.CLIENT_BY_ID[client]), (client, scenario)
