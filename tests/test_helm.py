"""The Helm chart (deploy/helm/rlog), rendered by Helm's own engine (helm-python-sdk, no binary,
no cluster), every manifest checked against the Kubernetes API schema (kubernetes-validate), and
the rendered commands run here against the embedded broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CHART = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "rlog"
CI_VALUES = sorted((CHART / "ci").glob("values-*.yaml"))
KUBE = "1.30.0"

helm_python = pytest.importorskip("helm_python", reason="needs helm-python-sdk (Helm's engine) to render the chart")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="needs kubernetes-validate")


def render(values: dict, name: str = "rl", namespace: str = "obs") -> dict[str, str]:
    chart = helm_python.Chart.load(str(CHART))
    try:
        return chart.render(values, name=name, namespace=namespace, is_install=True)
    finally:
        chart.close()


def manifests(rendered: dict[str, str]) -> list[dict]:
    out = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        out += [d for d in yaml.safe_load_all(text) if d]
    return out


def load_config_text(text: str):
    """The rendered rlog.yaml through rlog's own loader (types, ranges, unknown keys)."""
    import tempfile

    from rlog.config import load_config

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return load_config(f.name)
    finally:
        os.unlink(f.name)


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_ci_values_file_lints_renders_and_validates(values_file):
    values = yaml.safe_load(values_file.read_text())
    lint = helm_python.lint(str(CHART), values)
    assert lint["errors"] == [] and not [m for m in lint["messages"] if m["severity"] >= 3], lint
    docs = manifests(render(values))
    assert of_kind(docs, "Deployment") and of_kind(docs, "ConfigMap") and of_kind(docs, "Service")
    [cm] = [d for d in of_kind(docs, "ConfigMap") if "rlog.yaml" in d["data"]]
    load_config_text(cm["data"]["rlog.yaml"])  # the worker's own validation accepts the rendered config
    for d in docs:
        if d["apiVersion"].split("/")[0] in CRD_GROUPS:  # not in the Kubernetes schema: checked below
            assert_custom_resource(d)
            continue
        kubernetes_validate.validate(d, KUBE, strict=True)


CRD_GROUPS = {"keda.sh", "monitoring.coreos.com"}
# the fields each custom resource's CRD requires (KEDA 2.x, Prometheus Operator v1), and their types
CRD_REQUIRED = {
    "ScaledObject": {"spec.scaleTargetRef.name": str, "spec.triggers": list},
    "TriggerAuthentication": {"spec.secretTargetRef": list},
    "ServiceMonitor": {"spec.selector.matchLabels": dict, "spec.endpoints": list},
}


def _at(doc: dict, dotted: str):
    for part in dotted.split("."):
        doc = doc[part]
    return doc


def assert_custom_resource(d: dict) -> None:
    assert d["metadata"]["name"] and d["kind"] in CRD_REQUIRED, d["kind"]
    for field, kind in CRD_REQUIRED[d["kind"]].items():
        assert isinstance(_at(d, field), kind) and _at(d, field), f"{d['kind']} {field}"
    if d["kind"] == "ScaledObject":
        for t in d["spec"]["triggers"]:
            assert t["type"] == "kafka" and all(isinstance(v, str) for v in t["metadata"].values())
            assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(t["metadata"])
    if d["kind"] == "TriggerAuthentication":
        assert all({"parameter", "name", "key"} <= set(r) for r in d["spec"]["secretTargetRef"])


def test_the_default_fleet_is_one_consumer_group_running_every_role():
    docs = manifests(render({"kafka": {"bootstrap": "kafka:9092"}}))
    [dep] = of_kind(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["rlog"] and c["args"][:3] == ["run", "--config", "/etc/rlog/rlog.yaml"]
    assert [c["args"][i + 1] for i, a in enumerate(c["args"]) if a == "--role"] == ["parse", "detect", "explain"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {v["mountPath"] for v in c["volumeMounts"]} >= {"/etc/rlog", "/var/lib/rlog", "/tmp"}
    assert c["readinessProbe"]["httpGet"]["path"] == "/health" and c["livenessProbe"]["httpGet"]["path"] == "/live"
    [cm] = of_kind(docs, "ConfigMap")
    cfg = yaml.safe_load(cm["data"]["rlog.yaml"])
    assert cfg["stream"]["web_bind"] == "0.0.0.0" and cfg["stream"]["partitions"] == 12
    [job] = of_kind(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert of_kind(docs, "PodDisruptionBudget")


def test_kafka_credentials_come_from_the_existing_secret_only():
    docs = manifests(render(yaml.safe_load((CHART / "ci" / "values-sasl.yaml").read_text())))
    for d in of_kind(docs, "Deployment") + of_kind(docs, "Job"):
        env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["RLOG_KAFKA_SASL_PLAIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "kafka-credentials"
        assert "value" not in env["RLOG_KAFKA_SASL_PLAIN_PASSWORD"]
        assert env["RLOG_KAFKA_SSL_CAFILE"]["value"] == "/etc/rlog/kafka-tls/ca.crt"
    assert not of_kind(docs, "Secret")  # the chart never writes a credential


def test_state_records_are_sealed_with_a_key_from_a_secret_and_workers_stop_within_the_grace_period():
    """Issue 30: the chart wires the state key (RLOG_STATE_KEY, and a previous key for rotation) from an
    existing Secret only, and sets stream.stop_timeout_s 10 s under terminationGracePeriodSeconds."""
    docs = manifests(render({"kafka": {"bootstrap": "k:9092"}, "terminationGracePeriodSeconds": 90,
                             "stateKey": {"existingSecret": "rlog-state", "previousKey": "old_key"}}))
    [dep] = of_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 90
    env = {e["name"]: e for e in _container(dep)["env"]}
    assert env["RLOG_STATE_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "rlog-state", "key": "state_key"}
    assert env["RLOG_STATE_KEY_PREVIOUS"]["valueFrom"]["secretKeyRef"]["key"] == "old_key"
    assert not of_kind(docs, "Secret")
    [cm] = of_kind(docs, "ConfigMap")
    assert load_config_text(cm["data"]["rlog.yaml"]).stream.stop_timeout_s == 80
    plain = manifests(render({"kafka": {"bootstrap": "k:9092"}}))
    [dep] = of_kind(plain, "Deployment")
    assert "RLOG_STATE_KEY" not in {e["name"] for e in _container(dep)["env"]}
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60


def test_split_fleets_scale_apart_within_the_partitions():
    docs = manifests(render(yaml.safe_load((CHART / "ci" / "values-split-roles.yaml").read_text())))
    fleets = {d["metadata"]["labels"]["rlog.dev/fleet"]: d for d in of_kind(docs, "Deployment")}
    assert set(fleets) == {"parse", "model"}
    groups = {next(a for i, a in enumerate(d["spec"]["template"]["spec"]["containers"][0]["args"])
                   if d["spec"]["template"]["spec"]["containers"][0]["args"][i - 1] == "--app-id") for d in fleets.values()}
    assert len(groups) == 2  # one consumer group per fleet
    [hpa] = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == 24 and "replicas" not in fleets["parse"]["spec"]


def test_the_gpu_model_server_serves_both_adapters_and_the_workers_call_it():
    docs = manifests(render(yaml.safe_load((CHART / "ci" / "values-gpu-model-server.yaml").read_text())))
    server = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/component"]
                  == "model-server")
    pod = server["spec"]["template"]["spec"]
    c = pod["containers"][0]
    args = c["args"]
    assert c["command"] == ["vllm"] and args[:2] == ["serve", "/opt/rlog/models/SmolLM2-135M-Instruct"]
    assert "--enable-lora" in args and "--enable-prefix-caching" in args
    i = args.index("--lora-modules")
    assert set(args[i + 1: i + 3]) == {"rlog-fast=/opt/rlog/adapters/rlog-fast", "rlog=/opt/rlog/adapters/rlog"}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and pod["runtimeClassName"] == "nvidia"
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])  # shm
    assert pod["tolerations"] and pod["nodeSelector"]
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    assert "rl-rlog-model-server" in services
    [cm] = [d for d in of_kind(docs, "ConfigMap") if "rlog.yaml" in d["data"]]
    cfg = load_config_text(cm["data"]["rlog.yaml"])
    for stage, served in (("fast", "rlog-fast"), ("full", "rlog")):
        spec = getattr(cfg.cascade, stage)
        assert spec.backend == "openai" and spec.base_url == "http://rl-rlog-model-server:8000/v1"
        assert spec.adapter == served  # its served name, and the local calibration / category model
    model_fleet = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["labels"].get("rlog.dev/fleet") == "model")
    env = {e["name"]: e for e in _container(model_fleet)["env"]}
    assert env["RLOG_MODEL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "model-server-key"


def test_the_in_process_fleet_loads_the_models_itself():
    docs = manifests(render(yaml.safe_load((CHART / "ci" / "values-in-process.yaml").read_text())))
    assert not [d for d in of_kind(docs, "Deployment") if "model-server" in d["metadata"]["name"]]
    [cm] = [d for d in of_kind(docs, "ConfigMap") if "rlog.yaml" in d["data"]]
    cfg = load_config_text(cm["data"]["rlog.yaml"])
    assert cfg.cascade.fast.backend == cfg.cascade.full.backend == "transformers"
    assert cfg.cascade.fast.adapter == "rlog-fast"  # the shipped adapters on the built-in model


def test_keda_scales_each_fleet_on_the_lag_of_the_topics_it_reads():
    docs = manifests(render(yaml.safe_load((CHART / "ci" / "values-keda.yaml").read_text())))
    scaled = {d["metadata"]["labels"]["rlog.dev/fleet"]: d for d in of_kind(docs, "ScaledObject")}
    parse, model = scaled["parse"]["spec"], scaled["model"]["spec"]
    assert [t["metadata"]["topic"] for t in parse["triggers"]] == ["rlog.raw"]
    assert [t["metadata"]["topic"] for t in model["triggers"]] == ["rlog.sessions", "rlog.escalations"]
    # the consumer groups the rendered workers join, as the worker itself names them
    from stream.app import group_id

    for dep in of_kind(docs, "Deployment"):
        args = _container(dep)["args"]
        app_id = args[args.index("--app-id") + 1]
        roles = [args[i + 1] for i, a in enumerate(args) if a == "--role"]
        fleet = scaled[dep["metadata"]["labels"]["rlog.dev/fleet"]]["spec"]
        assert {t["metadata"]["consumerGroup"] for t in fleet["triggers"]} == {group_id(app_id, roles)}
    assert parse["triggers"][0]["metadata"]["consumerGroup"] == "rl-rlog-parse.parse"
    assert model["maxReplicaCount"] == 16 and not of_kind(docs, "HorizontalPodAutoscaler")
    assert all("replicas" not in d["spec"] for d in of_kind(docs, "Deployment"))  # KEDA owns the count
    [auth] = of_kind(docs, "TriggerAuthentication")
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"sasl", "username", "password", "tls"}
    assert all(t["authenticationRef"]["name"] == auth["metadata"]["name"] for t in model["triggers"])
    [sm] = of_kind(docs, "ServiceMonitor")
    [svc] = of_kind(docs, "Service")
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "http-metrics"
    assert set(sm["spec"]["selector"]["matchLabels"].items()) <= set(svc["metadata"]["labels"].items())


def test_the_dashboard_plots_metrics_the_worker_exports():
    """Every metric a panel queries is one stream/metrics.py registers (counters with _total,
    histograms with _bucket): a renamed metric fails here, not as an empty panel."""
    import json
    import re

    from stream.metrics import WorkerMetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exported = {m.name + sfx for m in WorkerMetrics().registry.collect() for sfx in suffixes.get(m.type, ("",))}
    docs = manifests(render({"kafka": {"bootstrap": "k:9092"}, "metrics": {"dashboard": {"enabled": True}}}))
    [cm] = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["rlog.json"])
    queried = {name for p in dash["panels"] for t in p["targets"] for name in re.findall(r"\b(rlog_[a-z_]+)", t["expr"])}
    assert queried and queried <= exported, queried - exported
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for what in ("lines", "sessions", "verdicts", "escalations", "alerts", "latency", "hit ratio", "lag", "dead letters"):
        assert what in titles


@pytest.mark.parametrize("values, message", [
    ({"kafka": {"bootstrap": ""}}, "kafka.bootstrap is required"),
    ({"kafka": {"bootstrap": "k:9092"}, "workers": [{"name": "all", "roles": ["parse", "detect", "explain"]},
                                                  {"name": "parse", "roles": ["parse"]}]},
     "role parse is in fleets all and parse"),
    ({"kafka": {"bootstrap": "k:9092"}, "workers": [{"name": "parse", "roles": ["parse"]}]},
     "role detect is in no fleet"),
    ({"kafka": {"bootstrap": "k:9092"}, "topics": {"partitions": 4},
      "workers": [{"name": "all", "roles": ["parse", "detect", "explain"],
                   "autoscaling": {"hpa": {"enabled": True, "minReplicas": 1, "maxReplicas": 8,
                                           "targetCPUUtilizationPercentage": 70}}}]},
     "maxReplicas \\(8\\) exceeds topics.partitions \\(4\\)"),
    ({"kafka": {"bootstrap": "k:9092"},
      "workers": [{"name": "all", "roles": ["parse", "detect", "explain"], "autoscaling": {"keda": {"enabled": True}}}]},
     "no KEDA API"),
    ({"kafka": {"bootstrap": "k:9092"}, "metrics": {"serviceMonitor": {"enabled": True}}}, "no Prometheus Operator API"),
    ({"kafka": {"bootstrap": "k:9092"}, "keda": {"assumeInstalled": True}, "topics": {"partitions": 2},
      "workers": [{"name": "all", "roles": ["parse", "detect", "explain"],
                   "autoscaling": {"keda": {"enabled": True, "maxReplicaCount": 3}}}]},
     "maxReplicaCount \\(3\\) exceeds topics.partitions \\(2\\)"),
])
def test_a_deployment_that_cannot_work_fails_with_the_reason(values, message):
    with pytest.raises(helm_python.HelmError, match=message):
        render(values)


@pytest.mark.parametrize("values, field", [
    ({"kafka": {"bootstrap": "k:9092"}, "topics": {"partitions": "many"}}, "partitions"),
    ({"kafka": {"bootstrap": "k:9092"}, "replicaCount": 3}, "replicaCount"),
    ({"kafka": {"bootstrap": "k:9092"}, "workers": [{"name": "all", "roles": ["parse", "judge"]}]}, "judge|roles"),
    ({"kafka": {"bootstrap": "k:9092", "password": "hunter2"}}, "password"),
])
def test_the_schema_rejects_wrong_types_and_unknown_keys(values, field):
    with pytest.raises(helm_python.HelmError, match=field):
        render(values)


# ---------------------------------------------------------------------- the rendered commands, run here


def _container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def _env_here(container: dict, bootstrap: str) -> dict[str, str]:
    """The container's plain environment with the cluster's addresses swapped for this machine's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLOG_KAFKA_")}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
    env["RLOG_KAFKA_BROKER"] = bootstrap
    env["HOME"] = os.environ.get("HOME", "/tmp")
    env["RLOG_CACHE_DIR"] = os.environ.get("RLOG_CACHE_DIR", str(Path.home() / ".cache" / "rlog"))
    return env


@pytest.mark.slow
def test_the_rendered_topic_job_and_worker_run_against_a_broker(tmp_path, tiny_model_dir):
    """The chart's Job command creates the topics, and its worker command is a working `rlog run` that
    publishes alerts for a replayed simulation (the tiny model answers nothing readable, so the worker
    fails open: every judged session is an alert, as in the stream tests)."""
    from rlog.sim.engine import SimConfig
    from rlog.sim.output import analysis_config, simulate
    from stream.broker import EmbeddedBroker, free_port
    from stream.kafka_io import make_admin, make_producer, read_topic_to_end
    from stream.replay import replay
    from stream.worker_proc import stop_worker, wait_ready

    # the settings the stream tests run the tiny model with: simulator envelopes, short windows, decoded
    # answers (a random model's unreadable ones fail open), a fast consumer-group join on the embedded broker
    c = analysis_config()
    c["session"].update(size=10, timeout_s=3)
    spec = {"model": str(tiny_model_dir), "adapter": None, "max_new_tokens": 6, "batch_size": 8}
    c["cascade"] = {"fast": spec, "full": spec, "alert_on_unknown": True, "escalate": False, "max_wait_s": 0.5,
                    "scoring": "generate", "memory": {"templates": 0}}
    c["stream"] = {"state_interval_s": 0.5, "session_timeout_s": 10}
    values = {"kafka": {"bootstrap": "kafka:9092"}, "topics": {"prefix": "hc", "input": "hc.raw", "partitions": 2,
                                                              "replication": 1}, "config": c}
    docs = manifests(render(values))
    [job] = of_kind(docs, "Job")
    [dep] = of_kind(docs, "Deployment")
    [cm] = of_kind(docs, "ConfigMap")
    cfg_file = tmp_path / "rlog.yaml"
    cfg_file.write_text(cm["data"]["rlog.yaml"])
    port = free_port()
    with EmbeddedBroker() as broker:
        c = _container(job)
        r = subprocess.run([sys.executable, "-m", "rlog.cli", *c["args"]], env=_env_here(c, broker.bootstrap),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        admin = make_admin(broker.bootstrap)
        try:
            assert {"hc.raw", "hc.sessions", "hc.alerts", "hc.parse-state"} <= set(admin.list_topics())
        finally:
            admin.close()
        c = _container(dep)
        args = [str(cfg_file) if a == "/etc/rlog/rlog.yaml" else a for a in c["args"]]
        env = _env_here(c, broker.bootstrap)
        env["RLOG_STREAM__WEB_PORT"] = str(port)
        env["RLOG_STREAM__WEB_BIND"] = "127.0.0.1"
        log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - the worker's lifetime
        proc = subprocess.Popen([sys.executable, "-m", "rlog.cli", *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            assert wait_ready(port, proc, tmp_path / "worker.log"), (tmp_path / "worker.log").read_text()[-3000:]
            sim = tmp_path / "sim"
            simulate(SimConfig(seed=5, lines=200, fault_gap_s=20, warmup_s=5), sim, progress=False)
            producer = make_producer(broker.bootstrap)
            replay(sim / "logs.jsonl", "hc.raw", producer, progress=False)
            producer.flush()
            producer.close()
            import time

            deadline = time.monotonic() + 240
            alerts: list = []
            while time.monotonic() < deadline and not alerts:
                time.sleep(3)
                alerts = read_topic_to_end(broker.bootstrap, "hc.alerts", timeout_s=20)
            assert alerts, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
        finally:
            stop_worker(proc)
            log.close()
