"""The Grafana dashboard: valid JSON, valid PromQL, and only metrics the daemon exposes."""

from __future__ import annotations

import json

import pytest
import yaml
from deploy_tools import DEPLOY, run, tool
from metric_names import exposed, unknown

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
    }


def test_every_query_uses_only_exposed_metrics():
    known = exposed()
    problems = {f"{title}: {expr}": unknown(expr, known) for title, expr in queries(dashboard())}
    assert {k: v for k, v in problems.items() if v} == {}


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
