"""Benign look-alike scripts: the vocabulary of failures for things that recover by themselves.

A detector that flags these is raising false alarms; every line they write is normal.
"""

from __future__ import annotations

from rlog.sim.script import Script, uptime
from rlog.sim.workload import _exec, hdfs, j, ras, sl
from rlog.sim.world import CLIENTS


def corrected_errors(s: Script) -> None:
    rng, w = s.rng, s.w
    node = rng.choice(w.compute_nodes)
    for t in s.spread(0, 30000, rng.randrange(6, 14)):
        s.emit(t, rng.choice([
            lambda: ras(node, "KERNEL", "INFO", "instruction cache parity error corrected"),
            lambda: ras(node, "KERNEL", "INFO", f"CE sym {rng.randrange(40)}, at 0x{rng.hexs(8)}, mask 0x{rng.hexs(2)}"),
            lambda: ras(node, "KERNEL", "INFO", f"total of {rng.randrange(1, 20)} ddr error(s) detected and corrected"),
        ])(), abnormal=False)
    h = rng.choice(w.linux_hosts())
    s.emit(rng.randrange(0, 30000), sl(h, "kernel", f"{uptime(rng)} EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1"
                                                    f"_DIMM#0 (channel:1 slot:0 page:0x{rng.hexs(6)} offset:0x0 grain:32 "
                                                    "syndrome:0x0 - area:DRAM err_code:0001:0091)"), abnormal=False)


def retry_success(s: Script) -> None:
    rng, w = s.rng, s.w
    if rng.random() < 0.5:
        h = rng.choice(w.services["orders"])
        inv = rng.choice(w.services["inventory"])
        for t in s.spread(0, 20000, rng.randrange(2, 5)):
            oid = f"ORD-{rng.randrange(10**7, 10**8)}"
            s.emit(t, j(h, "WARN", "c.s.orders.InventoryClient",
                        f"Request to {inv.name} for order {oid} failed (attempt 1/3): Read timed out; retrying in 200 ms",
                        _exec(rng)), abnormal=False)
            s.emit(t + rng.randrange(220, 600), j(h, "INFO", "c.s.orders.InventoryClient",
                                                  f"Request to {inv.name} for order {oid} succeeded on attempt 2", _exec(rng)),
                   abnormal=False)
        return
    dn = rng.choice(w.datanodes)
    for k in range(rng.randrange(1, 3)):
        s.emit(k * 1000, hdfs(dn, "INFO", "ipc.Client",
                              f"Retrying connect to server: {w.namenode.name}/{w.namenode.ip}:8020. Already tried {k} time(s); "
                              "retry policy is RetryUpToMaximumCountWithFixedSleep(maxRetries=10, sleepTime=1000 MILLISECONDS)"),
               abnormal=False)
    s.emit(2500, hdfs(dn, "INFO", "datanode.DataNode", f"Block pool BP-{rng.randrange(10**8, 10**9)} (Datanode Uuid "
                                                       f"{rng.uuid()}) service to {w.namenode.name}/{w.namenode.ip}:8020 "
                                                       "successfully registered"), abnormal=False)


def scheduled_restart(s: Script) -> None:
    rng, w = s.rng, s.w
    svc = rng.choice(("orders", "payments", "inventory"))
    h = rng.choice(w.services[svc])
    s.down(h.name, 0, 15000)
    s.emit(0, sl(h, "systemd", f"Stopping {svc}.service - {svc.capitalize()} service...", 1), abnormal=False)
    s.emit(50, j(h, "INFO", f"c.s.{svc}.Application", "Received SIGTERM (planned maintenance window): draining "
                                                      f"{rng.randrange(0, 40)} in-flight requests, shutting down gracefully",
                 "SpringApplicationShutdownHook"), abnormal=False)
    s.emit(3000, sl(h, "systemd", f"{svc}.service: Deactivated successfully.", 1), abnormal=False)
    s.emit(3001, sl(h, "systemd", f"Stopped {svc}.service - {svc.capitalize()} service.", 1), abnormal=False)
    s.emit(4000, sl(h, "systemd", f"Started {svc}.service - {svc.capitalize()} service.", 1), abnormal=False)
    s.emit(rng.randrange(11000, 15000), j(h, "INFO", f"c.s.{svc}.Application",
                                          f"Started Application in {rng.randrange(50, 120) / 10:.1f} seconds "
                                          f"(process running for {rng.randrange(60, 130) / 10:.1f})", "main"), abnormal=False)


def routine_warnings(s: Script) -> None:
    rng, w = s.rng, s.w
    for t in s.spread(0, 40000, rng.randrange(4, 9)):
        h = rng.choice(w.services[rng.choice(("orders", "payments", "inventory"))])
        dn = rng.choice(w.datanodes)
        s.emit(t, rng.choice([
            lambda h=h: j(h, "WARN", "c.s.common.GcMonitor", f"GC pause (G1 Evacuation Pause) took {rng.randrange(200, 600)}ms, "
                                                          f"heap {rng.randrange(40, 70)}% used after collection", "gc-monitor"),
            lambda h=h: j(h, "WARN", "c.s.common.CertificateMonitor",
                      f"TLS certificate for {h.name.split('-')[0]}.shop.internal expires in {rng.randrange(14, 30)} days "
                      "(notAfter is fine, renewal is automatic)", "scheduling-1"),
            lambda dn=dn: hdfs(dn, "WARN", "datanode.DataNode", f"Disk usage on /data/{rng.randrange(1, 5)} is "
                                                          f"{rng.randrange(70, 80)}% (warning threshold 70%, critical 90%)"),
            lambda h=h: j(h, "WARN", "c.s.common.ApiVersionFilter",
                      f"Client {rng.choice(CLIENTS)} uses deprecated API version v1; it is retired on 2027-06-30", _exec(rng)),
        ])(), abnormal=False)
