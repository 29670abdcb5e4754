"""Alert rules: valid, unit-tested firing and not firing, on metrics the daemon really exposes,
each linked to a runbook section that exists."""

from __future__ import annotations

import re
import unicodedata

import pytest
import yaml
from deploy_tools import DEPLOY, DOCS, REPO, run, tool
from metric_names import exposed, replica_problems, unknown, used

RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
RUNBOOK = DOCS / "runbook.md"
RUNBOOK_URL = "https://github.com/example/bybit-key-rotator/blob/main/docs/runbook.md#"


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules():
    result = run(tool("promtool"), "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    result = run(tool("promtool"), "test", "rules", RULES_TEST, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(tmp_path):
    """A unit test expecting a wrong label fails: promtool really compares."""
    suite = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    suite["rule_files"] = [str(RULES)]
    case = next(c for t in suite["tests"] for c in t["alert_rule_test"] if c.get("exp_alerts"))
    case["exp_alerts"][0]["exp_labels"]["severity"] = "info"
    broken = tmp_path / "broken_test.yml"
    broken.write_text(yaml.safe_dump(suite), encoding="utf-8")
    assert run(tool("promtool"), "test", "rules", broken, cwd=tmp_path).returncode != 0


def test_every_alert_is_tested_firing_and_not_firing():
    suite = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in suite["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"


def test_the_required_alerts_exist():
    names = {rule["alert"] for rule in alerts()}
    assert names >= {
        "RotatorKeyExpiringSoon",
        "RotatorKeyExpiryCritical",
        "RotatorRotationFailing",
        "RotatorKeyEscalated",
        "RotatorReconcileStale",
        "RotatorMasterKeyExpiringSoon",
        "RotatorMasterKeyExpiryCritical",
        "RotatorPasswordChangeDetected",
        "RotatorVaultDown",
        "RotatorVaultErrors",
        "RotatorBybitErrors",
        "RotatorDown",
        "RotatorReplicaDown",
        "RotatorNoLeader",
        "RotatorAccountStuck",
        "RotatorAckMissing",
    }


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_is_documented_and_labelled(rule):
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == RUNBOOK_URL + rule["alert"].lower()
    if any(label in rule["expr"] for label in ("rotator_key_", "rotator_rotation_", "handoff")):
        assert "$labels.key" in annotations["description"], "name the key"
    if "account" in rule["expr"] or "master" in rule["expr"]:
        assert "$labels.account" in annotations["description"], "name the account"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    lines = RUNBOOK.read_text(encoding="utf-8").splitlines()
    return {github_anchor(m.group(1)) for line in lines if (m := re.match(r"#{1,6} (.+)", line))}


def test_every_runbook_url_anchor_is_a_runbook_heading():
    anchors = runbook_anchors()
    missing = [
        r["alert"]
        for r in alerts()
        if r["annotations"]["runbook_url"].rpartition("#")[2] not in anchors
    ]
    assert missing == [], f"no heading in {RUNBOOK.relative_to(REPO)} for {missing}"


def test_every_alert_uses_only_exposed_metrics():
    known = exposed()
    problems = {r["alert"]: unknown(r["expr"], known) for r in alerts()}
    assert {k: v for k, v in problems.items() if v} == {}


def test_metric_check_can_fail():
    known = exposed()
    assert unknown("rotator_key_expiry_timestamp - time() < 3", known)
    assert unknown('rotator_bybit_requests_total{retcode!="0"}', known)
    assert not unknown('rotator_bybit_requests_total{ret_code!="0"}', known)


def test_every_key_and_account_alert_aggregates_the_replicas_away():
    known = exposed()
    problems = {r["alert"]: replica_problems(r["expr"], known) for r in alerts()}
    assert {k: v for k, v in problems.items() if v} == {}


def test_replica_check_can_fail():
    known = exposed()
    assert replica_problems("rotator_key_escalated == 1", known)
    assert replica_problems("max by (key, instance) (rotator_key_escalated) == 1", known)
    assert replica_problems("max without (pod) (rotator_orphan_keys) > 0", known)
    assert replica_problems("sum without (pod) (rotator_key_drift) > 0", known)
    assert not replica_problems("max by (job, account) (rotator_orphan_keys) > 0", known)
    assert not replica_problems("count(rotator_key_drift == 1) > 0", known)
    assert not replica_problems("rotator_vault_up == 0", known)


def replica_tested(suite: dict) -> set[str]:
    """Alerts with a firing case in a test whose input comes from three or more instances."""
    found: set[str] = set()
    for test in suite["tests"]:
        instances = {
            m.group(1)
            for series in test.get("input_series", [])
            if (m := re.search(r'instance="([^"]*)"', series["series"]))
        }
        if len(instances) >= 3:
            found |= {c["alertname"] for c in test["alert_rule_test"] if c.get("exp_alerts")}
    return found


def test_every_key_and_account_alert_is_tested_firing_with_three_replicas():
    known = exposed()
    suite = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    wanted = {
        r["alert"]
        for r in alerts()
        if any(known.get(m, set()) & {"key", "account"} for m in used(r["expr"]))
    }
    assert wanted >= {"RotatorKeyExpiringSoon", "RotatorNoLeader", "RotatorRotationFailing"}
    assert wanted - replica_tested(suite) == set()
    one_replica = [t for t in suite["tests"] if t["name"] == "key escalated"]
    assert one_replica, "the check must tell one replica from three"
    assert replica_tested({"tests": one_replica}) == set()
