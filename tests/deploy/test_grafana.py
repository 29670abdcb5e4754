"""The Grafana dashboard: valid JSON, valid PromQL, and only metrics the daemon exposes."""

from __future__ import annotations

import json

import pytest
import yaml
from deploy_tools import DEPLOY, run, tool
from metric_names import exposed, replica_problems, unknown

DASHBOARD = DEPLOY / "grafana" / "rotator-dashboard.json"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(board: dict) -> list[dict]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(board: dict) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def test_dashboard_structure():
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']} has no query"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
    titles = {p["title"] for p in panels(board)}
    assert titles >= {
        "Expiry timeline per key",
        "Days left per key",
        "Rotations completed",
        "Rotation step failures",
        "Reconcile health",
        "Bybit rate-limit headroom",
        "Lease holder per account",
        "Lease holders per account",
        "Account run time",
    }


def test_every_query_uses_only_exposed_metrics():
    known = exposed()
    problems = {f"{title}: {expr}": unknown(expr, known) for title, expr in queries(dashboard())}
    assert {k: v for k, v in problems.items() if v} == {}


# Per replica by nature: the holder table shows which replica holds which account.
PER_REPLICA_METRICS = frozenset({"rotator_leader", "rotator_account_run_seconds"})


def test_per_key_and_account_panels_show_one_series_per_key_or_account():
    """Every replica exports the holder's per-key and per-account gauges: a panel that did not
    aggregate them away would draw each key once per replica."""
    known = exposed()
    problems = {
        f"{title}: {expr}": replica_problems(expr, known, PER_REPLICA_METRICS)
        for title, expr in queries(dashboard())
    }
    assert {k: v for k, v in problems.items() if v} == {}
    assert replica_problems('rotator_orphan_keys{key=~"$key"}', known, PER_REPLICA_METRICS)


def test_the_lease_holder_panel_names_the_replica():
    exprs = [e for title, e in queries(dashboard()) if title == "Lease holder per account"]
    assert exprs == ["max by (account, instance, pod) (rotator_leader) == 1"]


def grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$key", ".*")


def test_every_query_is_valid_promql(tmp_path):
    """promtool parses each query (as a recording rule): catches syntax errors offline."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)}
                    for i, (_, expr) in enumerate(queries(dashboard()))
                ],
            }
        ]
    }
    file = tmp_path / "dashboard_rules.yml"
    file.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = run(tool("promtool"), "check", "rules", file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("expr", ["sum(rate(rotator_bybit_requests_total[5m])", "rate(x[5])"])
def test_promql_check_can_fail(expr, tmp_path):
    file = tmp_path / "bad_rules.yml"
    file.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r:x", "expr": expr}]}]}),
        encoding="utf-8",
    )
    assert run(tool("promtool"), "check", "rules", file).returncode != 0
