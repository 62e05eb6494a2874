"""The monitoring of docker-compose.yml asks only for metrics the code exports.

Every metric name in the Grafana dashboard's queries and in the Prometheus alert
rules must be a sample name of the process's metric registry (the worker's and
the API's metrics, as ``/metrics`` shows them), and the provisioning files must
point at the files compose mounts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import api.main  # noqa: F401  (registers the API's metrics)
import streams.app  # noqa: F401  (registers the worker's metrics)

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "infra" / "monitoring"
METRIC = re.compile(r"\beduknit_[a-z0-9_]+")


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported() -> set[str]:
    """The series names ``/metrics`` can show (a labelled metric has no sample until used)."""
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana/dashboards/eduknit.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_queries() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_every_dashboard_and_alert_metric_exists() -> None:
    names = exported()
    queries = dashboard_queries() + alert_queries()
    used = {name for query in queries for name in METRIC.findall(query)}
    assert len(used) >= 15
    assert used <= names, f"not exported: {sorted(used - names)}"


def test_the_dashboard_shows_what_operations_must_watch() -> None:
    used = {name for query in dashboard_queries() for name in METRIC.findall(query)}
    for needed in (
        "eduknit_sink_writes_total", "eduknit_sink_failures_total",
        "eduknit_api_request_seconds_bucket", "eduknit_consistency_checked_total",
        "eduknit_consistency_mismatched_total", "eduknit_events_counted_total",
    ):  # fmt: skip
        assert needed in used


def test_compose_mounts_what_the_provisioning_reads() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/eduknit.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert (ROOT / mounts[path]).resolve() == (MONITORING / "grafana/dashboards").resolve()
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    ports = {c["job_name"]: c for c in prometheus["scrape_configs"]}
    worker_env = services["worker"]["environment"]
    assert str(ports["eduknit-worker"]["dns_sd_configs"][0]["port"]) == str(
        worker_env["EDUKNIT_WORKER_METRICS_PORT"]
    )
    for volume in services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source
