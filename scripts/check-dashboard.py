#!/usr/bin/env python3
"""Check a Grafana dashboard's PromQL with promtool.

    scripts/check-dashboard.py deploy/grafana/tally-dashboard.json [--keep-rules FILE] [--list]

promtool has no checker for a bare expression, so every `expr` of the dashboard (every
target of every panel, rows and nested panels included, and the selectors inside the
template variables' `label_values(...)` / `query_result(...)` queries) becomes one recording
rule in a temporary rules file, and `promtool check rules` parses them all. Grafana's
variables are replaced first:

    $__rate_interval, $__interval, $__range (and ${...} forms)  -> 1m / 1h
    $__interval_ms, $__range_s, $__range_ms                     -> 60000 / 3600 / 3600000
    a variable of type interval                                 -> its current value, else 1m
    a constant variable                                         -> its value
    any other dashboard variable ($node, ${job}, [[node]])      -> .*   (they sit in =~ matchers)

A variable the dashboard does not define is an error, and so is a panel or target whose
data source is a fixed uid rather than a data source variable (it would not survive import
into another Grafana). Also checked: unique panel ids, a gridPos on every panel, uid, title
and schemaVersion.

Exit status: 0 when everything passes, 1 when something fails (each failure is printed with
its panel), 2 on a usage error or when promtool cannot be run. Python 3 standard library
only; promtool is taken from $PROMTOOL or PATH.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__auto": "1m",
}
# ${name}, ${name:format}, [[name]], [[name:format]], $name
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
RECORD_NAME = re.compile(r"[^a-zA-Z0-9_:]")


class Failures:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


def walk_panels(panels):
    """Every panel, depth first, including panels inside rows (collapsed or not)."""
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def variable_values(dashboard):
    """Replacement text for each dashboard variable, by name."""
    values = {}
    datasource_variables = set()
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable.get("name")
        if not name:
            continue
        kind = variable.get("type")
        if kind == "interval":
            current = (variable.get("current") or {}).get("value")
            values[name] = current if isinstance(current, str) and re.fullmatch(r"\d+[smhdwy]", current) else "1m"
        elif kind == "constant":
            values[name] = str(variable.get("query", ""))
        elif kind == "datasource":
            datasource_variables.add(name)
            values[name] = "datasource"
        else:
            values[name] = ".*"
    for data_input in dashboard.get("__inputs") or []:
        name = data_input.get("name")
        if name and name not in values and data_input.get("type") == "datasource":
            datasource_variables.add(name)
            values[name] = "datasource"
    return values, datasource_variables


def substitute(expr, values, where, failures):
    def replace(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in values:
            return values[name]
        failures.add(where, f"uses ${name}, which the dashboard does not define")
        return ".*"

    return VARIABLE.sub(replace, expr)


def check_datasource(datasource, where, datasource_variables, failures):
    """A Prometheus data source must be referenced through a variable, not a fixed uid."""
    if datasource is None:
        return
    if isinstance(datasource, str):
        uid = datasource
    elif isinstance(datasource, dict):
        if datasource.get("type") not in (None, "prometheus"):
            return
        uid = datasource.get("uid", "")
    else:
        return
    match = VARIABLE.fullmatch(uid or "")
    name = match and (match.group(1) or match.group(2) or match.group(3))
    if not name or name not in datasource_variables:
        failures.add(where, f"data source {uid!r} is not a data source variable (use ${{DS_PROMETHEUS}})")


def variable_query_expr(variable):
    """The PromQL inside a query variable, when it has some."""
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    if not isinstance(query, str):
        return None
    query = query.strip()
    match = re.fullmatch(r"label_values\((.*),\s*\w+\s*\)", query, re.S)
    if match:
        return match.group(1)
    match = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    if match:
        return match.group(1)
    return None  # label_names(), metrics(...), label_values(label): nothing to parse


def collect(dashboard, failures):
    """(record name, where, expression) for every expression of the dashboard."""
    for key in ("uid", "title", "schemaVersion"):
        if key not in dashboard:
            failures.add("dashboard", f"has no {key}")
    values, datasource_variables = variable_values(dashboard)
    found = []
    seen_ids = {}
    for panel in walk_panels(dashboard.get("panels")):
        panel_id = panel.get("id")
        where = f"panel {panel_id} {panel.get('title', '')!r}"
        if panel_id is None:
            failures.add(where, "has no id")
        elif panel_id in seen_ids:
            failures.add(where, f"has the same id as panel {seen_ids[panel_id]!r}")
        else:
            seen_ids[panel_id] = panel.get("title", "")
        if "gridPos" not in panel:
            failures.add(where, "has no gridPos")
        check_datasource(panel.get("datasource"), where, datasource_variables, failures)
        for index, target in enumerate(panel.get("targets") or []):
            ref = target.get("refId") or f"t{index}"
            target_where = f"{where} target {ref}"
            check_datasource(target.get("datasource"), target_where, datasource_variables, failures)
            expr = target.get("expr")
            if expr is None:
                continue
            if not expr.strip():
                failures.add(target_where, "has an empty expr")
                continue
            record = RECORD_NAME.sub("_", f"dashboard:panel_{panel_id}:{ref}")
            found.append((record, target_where, substitute(expr, values, target_where, failures)))
    for variable in dashboard.get("templating", {}).get("list", []):
        where = f"variable ${variable.get('name')}"
        if variable.get("type") == "query":
            check_datasource(variable.get("datasource"), where, datasource_variables, failures)
        expr = variable_query_expr(variable) if variable.get("type") == "query" else None
        if expr:
            record = RECORD_NAME.sub("_", f"dashboard:variable_{variable.get('name')}")
            found.append((record, where, substitute(expr, values, where, failures)))
    return found


def main():
    parser = argparse.ArgumentParser(description="Check every PromQL expression of a Grafana dashboard with promtool.")
    parser.add_argument("dashboard", help="dashboard JSON file")
    parser.add_argument("--keep-rules", metavar="FILE", help="also write the generated rules file here")
    parser.add_argument("--list", action="store_true", help="print every expression as checked")
    args = parser.parse_args()

    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not promtool:
        print("check-dashboard: promtool not found (set PROMTOOL or install prometheus)", file=sys.stderr)
        return 2
    try:
        with open(args.dashboard, encoding="utf-8") as file:
            dashboard = json.load(file)
    except (OSError, ValueError) as error:
        print(f"check-dashboard: {args.dashboard}: {error}", file=sys.stderr)
        return 1
    if isinstance(dashboard, dict) and isinstance(dashboard.get("dashboard"), dict):
        dashboard = dashboard["dashboard"]  # the API's {"dashboard": {...}, "meta": {...}} form

    failures = Failures()
    found = collect(dashboard, failures)
    if not found:
        failures.add("dashboard", "has no PromQL expression at all")

    where_by_record = {record: where for record, where, _ in found}
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": record, "expr": expr} for record, _, expr in found]}]}
    text = json.dumps(rules, indent=2) + "\n"  # JSON is YAML: promtool reads it
    if args.keep_rules:
        with open(args.keep_rules, "w", encoding="utf-8") as file:
            file.write(text)
    if args.list:
        for record, where, expr in found:
            print(f"{where}: {expr}")

    with tempfile.TemporaryDirectory(prefix="check-dashboard.") as directory:
        path = os.path.join(directory, "dashboard-rules.yml")
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        try:
            result = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        except OSError as error:
            print(f"check-dashboard: cannot run {promtool}: {error}", file=sys.stderr)
            return 2
    if result.returncode != 0:
        output = (result.stdout + result.stderr).replace(path, "<dashboard rules>")
        named = False
        for line in output.splitlines():
            for record, where in where_by_record.items():
                if f'"{record}"' in line:
                    failures.add(where, "promtool: " + line.strip())
                    named = True
                    break
        if not named:
            failures.add("promtool check rules", output.strip() or f"exit status {result.returncode}")

    if failures.items:
        print(f"check-dashboard: {args.dashboard}: FAILED")
        for item in failures.items:
            print("  " + item)
        return 1
    panels = sum(1 for panel in walk_panels(dashboard.get("panels")) if panel.get("type") != "row")
    print(f"check-dashboard: {args.dashboard}: {len(found)} expressions in {panels} panels and variables "
          f"pass promtool check rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
