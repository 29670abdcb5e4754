# ruff: noqa: INP001  -- a stand-alone script in deploy/, not part of a package
"""Write deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/rules.yml (the rules' source).

    python deploy/prometheus/to_prometheusrule.py          # rewrite the file
    python deploy/prometheus/to_prometheusrule.py --check  # exit 1 if it is out of date

Text in, text out (no YAML library): the rule groups are copied verbatim under `spec:`.
tests/deploy/test_prometheus.py fails when the two files disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules.yml"
TARGET = HERE.parent / "k8s" / "base" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by deploy/prometheus/to_prometheusrule.py: edit the
# rules there and re-run the script. Prometheus Operator only; your Prometheus may select rules by
# label (kube-prometheus-stack: release=<name>): add it in your overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: rotator
spec:
"""


def render() -> str:
    lines = RULES.read_text(encoding="utf-8").splitlines()
    start = lines.index("groups:")
    body = "\n".join(("  " + line) if line else line for line in lines[start:])
    return HEADER + body + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python {Path(__file__).as_posix()}")  # noqa: T201 - CLI output
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
