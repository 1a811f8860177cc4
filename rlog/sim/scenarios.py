"""Injected incidents: faults with a root cause, and benign look-alikes that must stay quiet.

A fault is a script of symptoms that spreads across components the way real incidents do
(a failing disk shows as kernel I/O errors, then a DataNode volume failure, then the
NameNode re-replicating). Every line a script writes is ground truth: ``abnormal`` when it
states the failure, not abnormal when it is a routine consequence (a restart banner, a
re-replication order). Each fault has a root-cause category from the fixed taxonomy in
``rlog.contract.prompts.CATEGORIES`` and a recommended action naming the affected host.

Look-alikes use the vocabulary of failures (errors, retries, restarts, warnings) for
things that recover by themselves; a detector that flags them is raising false alarms.
"""

from __future__ import annotations

from rlog.sim.faults import (
    auth_failure_storm,
    certificate_expiry,
    dependency_outage,
    disk_failure,
    memory_exhaustion,
    misconfiguration,
    network_partition,
    node_crash,
    process_crash,
    slow_io,
)
from rlog.sim.lookalikes import corrected_errors, retry_success, routine_warnings, scheduled_restart
from rlog.sim.script import Scenario, Script
from rlog.sim.world import Host

SCENARIOS: dict[str, Scenario] = {sc.name: sc for sc in [
    Scenario(
        "disk_failure", "fault", "a data disk fails on a DataNode", disk_failure, "hardware",
        action="Replace the failing disk {device} on {host}; keep volume {volume} excluded until then and confirm HDFS "
               "has re-replicated its blocks (hdfs fsck / shows no under-replicated blocks).",
        cause="The disk {device} behind volume {volume} on {host} has unreadable sectors and fails reads and writes.",
        components=("syslog", "storage")),
    Scenario(
        "node_crash", "fault", "a node crashes on a machine check and reboots", node_crash, "hardware",
        action="Take {host} out of service, run hardware diagnostics (MCE log, memory and CPU tests) and replace the "
               "faulty part before returning it; check that its jobs and blocks were recovered elsewhere.",
        cause="An uncorrectable machine check (CPU/cache hardware error) on {host} stopped its kernel.",
        components=("syslog", "storage", "compute")),
    Scenario(
        "network_partition", "fault", "a top-of-rack link drops and DataNodes are partitioned", network_partition,
        "network",
        action="Restore connectivity of {host}: check the links and switch {switch}, then confirm the DataNodes "
               "re-registered and upstream timeouts stopped.",
        cause="The network links of {host} went down, cutting them off from the NameNode and their peers.",
        components=("syslog", "storage", "api")),
    Scenario(
        "memory_exhaustion", "fault", "a service exhausts its heap and is OOM-killed", memory_exhaustion, "memory",
        action="Find what exhausted the {service} heap on {host} (heap dump, recent traffic), fix the leak or bound the "
               "request, and size -Xmx below the container/cgroup memory limit.",
        cause="The {service} JVM on {host} ran out of heap and the kernel OOM killer killed it.",
        components=("api", "syslog")),
    Scenario(
        "misconfiguration", "fault", "a deploy ships a bad configuration value", misconfiguration, "configuration",
        action="Roll back {service} to the previous version and correct '{property}' in its configuration; validate "
               "config in CI/staging before the next rollout of {version}.",
        cause="Version {version} of {service} was deployed with an invalid '{property}' setting, so it fails to start.",
        components=("api", "syslog")),
    Scenario(
        "dependency_outage", "fault", "an upstream dependency becomes unavailable", dependency_outage, "dependency",
        action="Restore or fail over the {dependency} used by {service}; keep the circuit breaker open and queue or "
               "degrade requests until it is healthy.",
        cause="The {dependency} that {service} depends on stopped answering.",
        components=("api",)),
    Scenario(
        "auth_failure_storm", "fault", "a brute-force login storm from one address", auth_failure_storm, "security",
        action="Block {source_ip} at the edge firewall, check that no login from it succeeded, and enforce key-only ssh "
               "and rate limits on {host}.",
        cause="A brute-force attack from {source_ip} is trying many accounts against ssh and the login API.",
        components=("syslog", "api")),
    Scenario(
        "certificate_expiry", "fault", "a service certificate expires and TLS handshakes fail", certificate_expiry,
        "security",
        action="Renew and deploy the certificate for {certificate} on {host}, fix the automatic renewal job, and "
               "alert on certificates expiring within 14 days.",
        cause="The TLS certificate of {certificate} expired after its automatic renewal failed.",
        components=("api", "syslog")),
    Scenario(
        "slow_io", "fault", "a DataNode volume becomes very slow", slow_io, "storage",
        action="Check volume {volume} on {host} for a degraded disk or RAID rebuild (iostat, SMART); move load off it "
               "or decommission the volume until write latency is back under the threshold.",
        cause="Volume {volume} on {host} takes seconds per write, stalling the HDFS write pipeline.",
        components=("storage", "syslog")),
    Scenario(
        "process_crash", "fault", "a software bug crashes a process repeatedly", process_crash, "software",
        action="Roll back or hot-fix the {service} code path that crashes on {host} (see the stack trace), and add a "
               "test for the failing input.",
        cause="A bug in {service} on {host} crashes the process on some inputs (see the stack trace / signal).",
        components=("api", "syslog", "compute")),
    Scenario("corrected_errors", "benign", "corrected ECC/parity errors that need no action", corrected_errors),
    Scenario("retry_success", "benign", "transient errors that succeed on retry", retry_success),
    Scenario("scheduled_restart", "benign", "a planned, graceful service restart", scheduled_restart),
    Scenario("routine_warnings", "benign", "routine warnings below any action threshold", routine_warnings),
]}

FAULTS = tuple(n for n, sc in SCENARIOS.items() if sc.kind == "fault")
BENIGN = tuple(n for n, sc in SCENARIOS.items() if sc.kind == "benign")


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}: use one of {', '.join(SCENARIOS)}") from None


__all__ = ["BENIGN", "FAULTS", "SCENARIOS", "Host", "Scenario", "Script", "get_scenario"]
