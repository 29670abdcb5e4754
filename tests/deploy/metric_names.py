"""The metric names the daemon exposes, read from a real exposition of `Metrics()`, and the metric
names a PromQL expression uses."""

from __future__ import annotations

import re

from prometheus_client import generate_latest
from rotator.adapters.metrics import Metrics

# Series Prometheus itself adds to every scrape target.
SCRAPE_SERIES = {"up"}
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exposed() -> dict[str, set[str]]:
    """Every series name in the exposition, mapped to its label names."""
    metrics = Metrics()
    text = generate_latest(metrics.registry).decode()
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.setdefault(name, set())
            if kind == "histogram":
                for suffix in _HISTOGRAM_SUFFIXES:
                    names.setdefault(name + suffix, set())
        elif line and not line.startswith("#"):
            names.setdefault(re.split(r"[{ ]", line, maxsplit=1)[0], set())
    # Label names come from the collectors: labelled metrics have no samples yet.
    for collector in metrics.registry._collector_to_names:
        labels = set(getattr(collector, "_labelnames", ()))
        for name in metrics.registry._collector_to_names[collector]:
            if name in names:
                names[name] |= labels
    for name in [n for n in names if n.endswith("_bucket")]:
        names[name].add("le")
    return names


# A metric name followed by an optional selector, not followed by "(" (that is a function).
_SELECTOR = re.compile(r"(?<![\w:$.])([a-zA-Z_:][\w:]*+)\s*(\{[^}]*\})?(?!\s*\()")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "le",
}  # fmt: skip


def used(expr: str) -> dict[str, set[str]]:
    """Metric names in a PromQL expression, with the label names their selectors match on.

    Grouping clauses (`by (key, reason)`) are removed first: their contents are labels, not
    metrics. Quoted strings are removed so that label values never look like names.
    """
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors: [1h], [$__rate_interval]
    found: dict[str, set[str]] = {}
    for match in _SELECTOR.finditer(bare):
        name, selector = match.group(1), match.group(2) or ""
        if name.lower() in _KEYWORDS or re.fullmatch(r"\d.*", name):
            continue
        found.setdefault(name, set()).update(_MATCHER.findall(selector))
    return found


def unknown(expr: str, known: dict[str, set[str]]) -> list[str]:
    """What in `expr` the daemon does not expose: unknown metrics, unknown selector labels."""
    problems = []
    for name, labels in used(expr).items():
        if name in SCRAPE_SERIES:
            continue
        if name not in known:
            problems.append(f"metric {name}")
            continue
        extra = labels - known[name] - {"job", "instance"}
        if extra:
            problems.append(f"{name} has no label(s) {sorted(extra)}")
    return problems


# Labels that differ between replicas of one deployment: an alert that keeps one of them fires
# once per replica. Every key and account alert groups `by` a list without them.
PER_REPLICA = {"instance", "pod"}


def replica_problems(
    expr: str, known: dict[str, set[str]], exempt: frozenset[str] = frozenset()
) -> list[str]:
    """Why `expr`, if it reads a per-key or per-account series (other than `exempt`), would give
    one result per replica where one per key or account is meant."""
    metrics = [
        m for m in used(expr) if m not in exempt and known.get(m, set()) & {"key", "account"}
    ]
    if not metrics:
        return []
    groupings = re.findall(r"\b(by|without)\s*\(([^)]*)\)", expr)
    problems = []
    whole = re.search(r"\b(sum|min|max|avg|count|group)\s*\(", expr)  # over everything
    if not whole and not any(kind == "by" for kind, _ in groupings):
        problems.append(f"{metrics} not aggregated: add `by (job, namespace, ...)`")
    for kind, labels in groupings:
        names = {n.strip() for n in labels.split(",") if n.strip()}
        if kind == "without" or names & PER_REPLICA:
            problems.append(f"{kind} ({labels}) keeps a per-replica label")
    return problems
