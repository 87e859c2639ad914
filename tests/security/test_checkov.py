"""checkov over everything the platform puts on a cluster and in CI (tests/security/checkov_scan.py): nothing is
reported outside the committed, reasoned skip list, and no skip is stale."""

from __future__ import annotations

import pytest
import yaml

from tests.security.checkov_scan import (
    CHECKOV,
    FRAMEWORKS,
    Finding,
    Skip,
    copy_files,
    findings,
    load_skips,
    run_checkov,
    scanned_files,
    write_objects,
)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make setup` creates checkov's venv"
    root = tmp_path_factory.mktemp("checkov")
    sources = write_objects(root)
    copy_files(root, scanned_files())
    reports = run_checkov(root)
    return sources, reports, findings(reports, root, sources)


def test_every_source_was_scanned(scan):
    sources, reports, _ = scan
    by_type = {r.get("check_type"): r for r in reports}
    assert set(FRAMEWORKS) <= set(by_type), sorted(by_type)
    for framework in FRAMEWORKS:
        summary = by_type[framework]["summary"]
        assert summary["passed"] > 0 and summary["parsing_errors"] == 0, (framework, summary)
    origins = {s.split(" ")[1] for s in sources.values()}
    assert origins == {"program", "chart", "build"} and len(sources) > 300


def test_checkov_reports_nothing_outside_the_skip_list(scan):
    *_, found = scan
    skips = load_skips()
    unexplained = [str(f) for f in found if not any(s.covers(f) for s in skips)]
    assert not unexplained, "fix these, or add them to security/checkov_skips.yaml with the reason:\n" + "\n".join(
        unexplained
    )


def test_no_skip_is_stale(scan):
    *_, found = scan
    stale = [
        f"{skip.check_id} {pattern}"
        for skip in load_skips()
        for pattern in skip.objects
        if not any(Skip(skip.check_id, (pattern,), skip.reason).covers(f) for f in found)
    ]
    assert not stale, "these skips cover no finding any more; remove them from security/checkov_skips.yaml:\n" + (
        "\n".join(stale)
    )


def test_the_scan_can_fail(tmp_path):
    """A root, unlimited, tag-pinned pod is reported, and the skip list does not cover it."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "triton"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}  # fmt: skip
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(pod))
    found = findings(run_checkov(tmp_path), tmp_path, {"bad.yaml": "dev program bad"})
    checks = {f.check_id for f in found}
    assert {"CKV_K8S_43", "CKV_K8S_13", "CKV_K8S_23"} <= checks, checks
    assert not any(any(s.covers(f) for s in load_skips()) for f in found if f.check_id == "CKV_K8S_23")


def test_a_skip_without_a_reason_is_refused(tmp_path):
    skips = tmp_path / "skips.yaml"
    skips.write_text("- check: CKV_K8S_11\n  objects: ['* chart *']\n  reason: because\n")
    with pytest.raises(ValueError, match="give the reason it is right, in a sentence"):
        load_skips(skips)
    skips.write_text("- check: K8S_11\n  objects: ['*']\n  reason: a long enough reason for the test\n")
    with pytest.raises(ValueError, match="needs 'check'"):
        load_skips(skips)
    assert Skip("CKV_K8S_11", ("* chart *",), "x").covers(Finding("CKV_K8S_11", "", "dev chart dcgm DaemonSet.a.b"))
