"""The kustomize base and the example overlay: they render, validate strictly, and every pod meets
the Pod Security "restricted" profile."""

from __future__ import annotations

import functools
import ipaddress

import pytest
import yaml
from deploy_tools import DEPLOY, run, tool
from rotator import config

TARGETS = {"base": DEPLOY / "k8s", "overlay": DEPLOY / "k8s" / "overlays" / "example"}
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}  # CRDs: no bundled schema to validate against
REQUIRED_KINDS = {
    "Deployment",
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "ServiceMonitor",
    "PrometheusRule",
    "NetworkPolicy",
    "PodDisruptionBudget",
}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
# Volume types the "restricted" profile allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@functools.cache
def render_text(target: str) -> str:
    result = run(tool("kubectl"), "kustomize", TARGETS[target])
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(target: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(render_text(target)) if doc]


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_renders_every_required_object(target):
    kinds = {d["kind"] for d in render(target)}
    assert kinds >= REQUIRED_KINDS, f"missing: {REQUIRED_KINDS - kinds}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_core_objects_validate_strictly(target, tmp_path):
    """kubernetes-validate --strict rejects unknown fields; custom resources are left out."""
    validator = tool("kubernetes-validate")
    core = [d for d in render(target) if d["kind"] not in CUSTOM_KINDS]
    manifest = tmp_path / "core.yaml"
    manifest.write_text(yaml.safe_dump_all(core), encoding="utf-8")
    for version in ("1.27", "1.37"):
        result = run(validator, "--strict", "--quiet", "-k", version, manifest)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ERROR" not in result.stdout + result.stderr


def test_strict_validation_catches_an_unknown_field(tmp_path):
    """The validator has teeth: a misspelt field fails."""
    validator = tool("kubernetes-validate")
    deployment = one(render("base"), "Deployment")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(deployment), encoding="utf-8")
    assert run(validator, "--strict", "--quiet", manifest).returncode != 0


def pod_templates(docs: list[dict]) -> list[tuple[str, dict]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in POD_KINDS
    ]


def restricted_violations(pod: dict) -> list[str]:
    """Pod Security Standard "restricted" (plus readOnlyRootFilesystem), field by field."""
    problems = []
    pod_sc = pod.get("securityContext", {})
    problems += [
        f"{host} is set" for host in ("hostNetwork", "hostPID", "hostIPC") if pod.get(host)
    ]
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} is {kinds}")
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    if not containers:
        problems.append("no containers")
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as uid 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if caps.get("add"):
            problems.append(f"{name}: adds capabilities {caps['add']}")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{name}: seccompProfile is {seccomp!r}")
        problems += [f"{name}: hostPort" for port in c.get("ports", []) if "hostPort" in port]
    return problems


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_pod_template_meets_restricted(target):
    pods = pod_templates(render(target))
    assert pods
    for where, pod in pods:
        assert restricted_violations(pod) == [], where


def test_restricted_check_can_fail():
    """The checker finds a real violation (it is not vacuous)."""
    _, pod = pod_templates(render("base"))[0]
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert len(restricted_violations(pod)) == 2


def test_overlay_namespace_enforces_restricted():
    ns = one(render("overlay"), "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(
        d["metadata"].get("namespace") == ns["metadata"]["name"]
        for d in render("overlay")
        if d["kind"] != "Namespace"
    )


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_deployment_shape(target):
    docs = render(target)
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"][:1] == ["run"]
    # The config the pod mounts is valid and listens where probes, Service and policy point.
    configmap = one(docs, "ConfigMap")
    cfg = config.parse(configmap["data"]["rotator.toml"], source=f"{target} ConfigMap")
    port = int(cfg.metrics.listen.rpartition(":")[2])
    (metrics_port,) = [p for p in container["ports"] if p["name"] == "metrics"]
    assert metrics_port["containerPort"] == port
    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert cfg.vault.auth.jwt_file is not None
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/etc/rotator" in mounts
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    for kind in ("Service", "NetworkPolicy", "PodDisruptionBudget"):
        obj = one(docs, kind)
        sel = obj["spec"].get("selector") or obj["spec"]["podSelector"]
        sel = sel.get("matchLabels", sel)
        assert sel.items() <= labels.items(), f"{kind} does not select the pod"


def test_overlay_uses_kubernetes_auth():
    configmap = one(render("overlay"), "ConfigMap")
    cfg = config.parse(configmap["data"]["rotator.toml"])
    assert cfg.vault.auth.mount_point == "kubernetes"
    assert cfg.vault.auth.jwt_file.as_posix() == (
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_network_policy_allows_only_dns_vault_and_https(target):
    policy = one(render(target), "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = set()
    for rule in policy["egress"]:
        assert rule.get("ports"), "an egress rule without ports allows every port"
        egress_ports |= {(p["protocol"], p["port"]) for p in rule["ports"]}
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block and ipaddress.ip_network(block["cidr"]).prefixlen == 0:
                # "the internet" must exclude private ranges, and only HTTPS goes there
                assert {p["port"] for p in rule["ports"]} == {443}
                private = "169.254.0.0/16" if ":" not in block["cidr"] else "fe80::/10"
                assert private in block["except"]
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 8200), ("TCP", 443)}
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    (source,) = ingress["from"]
    assert source == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }


def test_pdb_keeps_one_of_the_two_replicas():
    """One pod may be evicted at a time (never both): with 2 replicas a drain still proceeds."""
    pdb = one(render("base"), "PodDisruptionBudget")["spec"]
    replicas = one(render("base"), "Deployment")["spec"]["replicas"]
    assert pdb.get("minAvailable") == 1
    assert replicas > pdb["minAvailable"]
    assert "maxUnavailable" not in pdb


def test_prometheusrule_is_rules_yml():
    """The PrometheusRule carries exactly the rules in deploy/prometheus/rules.yml."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text(encoding="utf-8"))
    generated = yaml.safe_load(
        (DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text(encoding="utf-8")
    )
    assert generated["spec"] == rules, "run: python deploy/prometheus/to_prometheusrule.py"
    rendered = one(render("base"), "PrometheusRule")
    assert rendered["spec"] == rules
