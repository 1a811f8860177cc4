"""Fault scripts: symptoms that spread across components the way real incidents do.

Every line a script writes is ground truth: ``abnormal`` when it states the failure, not
abnormal when it is a routine consequence (a restart banner, a re-replication order).
Root-cause categories, causes and actions are on the scenario cards in ``scenarios``.
"""

from __future__ import annotations

from rlog.sim.script import Script, java_trace, uptime
from rlog.sim.workload import _exec, access, hdfs, j, ras, sl
from rlog.sim.world import ATTACK_USERS, USERS


def disk_failure(s: Script) -> None:
    rng, w = s.rng, s.w
    dn = rng.choice(w.datanodes)
    dev, vol = rng.choice("bcd"), rng.randrange(1, 5)
    s.vars.update(host=dn.name, device=f"/dev/sd{dev}", volume=f"/data/{vol}")
    t = 0.0
    s.emit(t, sl(dn, "smartd", f"Device: /dev/sd{dev} [SAT], {rng.randrange(8, 200)} Currently unreadable (pending) sectors",
                 rng.randrange(400, 900)))
    for t in s.spread(2000, 40000, rng.randrange(6, 14)):
        sector = rng.randrange(10**6, 10**9)
        s.emit(t, sl(dn, "kernel", f"{uptime(rng)} blk_update_request: I/O error, dev sd{dev}, sector {sector} "
                                   f"op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0"))
        if rng.random() < 0.5:
            s.emit(t + 1, sl(dn, "kernel", f"{uptime(rng)} sd 2:0:{vol}:0: [sd{dev}] tag#{rng.randrange(32)} FAILED Result: "
                                           "hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=7s"))
    for t in s.spread(10000, 45000, rng.randrange(3, 7)):
        blk = rng.blk()
        s.emit(t, hdfs(dn, "WARN", "datanode.DataNode",
                       java_trace(f"IOException in BlockReceiver.run(): java.io.IOException: Input/output error "
                                   f"writing {blk} to /data/{vol}/dfs/dn/current",
                                   ["java.io.FileOutputStream.writeBytes(Native Method)",
                                    "org.apache.hadoop.hdfs.server.datanode.BlockReceiver.receivePacket(BlockReceiver.java:627)"])))
    t = 47000 + rng.randrange(0, 5000)
    s.emit(t, hdfs(dn, "ERROR", "datanode.DataNode",
                   f"Volume /data/{vol} failed: removing it from the list of active volumes "
                   f"(failed volumes 1, tolerated 1)"))
    s.emit(t + rng.randrange(500, 3000), hdfs(w.namenode, "WARN", "blockmanagement.BlockManager",
                                              f"Storage DS-{rng.uuid()} on {dn.ip}:50010 reported failed volume /data/{vol}; "
                                              f"{rng.randrange(800, 9000)} blocks are now under-replicated"))
    for t2 in s.spread(t + 3000, t + 30000, rng.randrange(3, 6)):  # routine consequence: re-replication orders
        src, dst = rng.sample([d for d in w.datanodes if d is not dn], 2)
        s.emit(t2, hdfs(w.namenode, "INFO", "dfs.FSNamesystem",
                        f"BLOCK* ask {src.ip}:50010 to replicate {rng.blk()} to datanode(s) {dst.ip}:50010"), abnormal=False)


def node_crash(s: Script) -> None:
    rng, w = s.rng, s.w
    if rng.random() < 0.5:  # a compute node dies with a machine check
        node = rng.choice(w.compute_nodes)
        job = rng.randrange(100000, 999999)
        s.vars.update(host=node)
        s.emit(0, ras(node, "KERNEL", "FATAL",
                      f"machine check interrupt (bit=0x{rng.hexs(2)}): L2 dcache unit data parity error"))
        s.emit(rng.randrange(50, 400), ras(node, "KERNEL", "FATAL", "rts: kernel terminated for reason 1004"))
        s.emit(rng.randrange(500, 2000), ras(node, "KERNEL", "FATAL",
                                             "ciod: Error reading message prefix after LOAD_MESSAGE on CioStream socket to "
                                             f"172.16.{rng.randrange(96, 128)}.{rng.randrange(256)}:{rng.port()}: "
                                             "Link has been severed"))
        s.emit(rng.randrange(2000, 6000), ras(node, "MMCS", "ERROR", f"job {job} terminated: node {node} stopped responding"))
        s.emit(rng.randrange(6000, 15000), ras(node, "MONITOR", "FATAL",
                                               f"node card {node.split('-C:')[0]} is not fully functional"))
        s.down(node, 0, 120000)
        back = rng.randrange(90000, 150000)
        s.emit(back, ras(node, "MMCS", "INFO", f"node {node} booted: kernel image /bgl/os/cnk-2.7.ras loaded"), abnormal=False)
        s.emit(back + rng.randrange(1000, 5000), ras(node, "DISCOVERY", "INFO",
                                                     f"Ido chip status changed: {node} ip=10.3.{rng.randrange(256)}."
                                                     f"{rng.randrange(256)} v=11 t=4 status=M"), abnormal=False)
        return
    dn = rng.choice(w.datanodes)  # a DataNode host panics and reboots
    s.vars.update(host=dn.name)
    s.emit(0, sl(dn, "kernel", f"{uptime(rng)} mce: [Hardware Error]: CPU {rng.randrange(32)}: Machine Check Exception: 5 "
                               f"Bank {rng.randrange(1, 9)}: b{rng.hexs(15)}"))
    s.emit(5, sl(dn, "kernel", f"{uptime(rng)} Kernel panic - not syncing: Fatal machine check"))
    s.down(dn.name, 0, 150000)
    t = rng.randrange(30000, 45000)
    for t2 in s.spread(2000, t, rng.randrange(2, 5)):
        client = rng.choice([d for d in w.datanodes if d is not dn])
        s.emit(t2, hdfs(client, "WARN", "hdfs.DataStreamer",
                        f"Exception in createBlockOutputStream java.net.ConnectException: Connection refused to /{dn.ip}:50010"))
        s.emit(t2 + 2, hdfs(client, "WARN", "hdfs.DataStreamer", f"Excluding datanode {dn.ip}:50010"))
    s.emit(t, hdfs(w.namenode, "WARN", "blockmanagement.HeartbeatManager",
                   f"Lost heartbeat from datanode {dn.ip}:50010 for 30 s; marking it dead"))
    s.emit(t + 5, hdfs(w.namenode, "INFO", "net.NetworkTopology", f"Removing a node: /default-rack/{dn.ip}:50010"),
           abnormal=False)
    back = rng.randrange(150000, 200000)
    s.emit(back, sl(dn, "kernel", "[    0.000000] Linux version 6.1.0-27-amd64 (debian-kernel@lists.debian.org) "
                                  "(gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1"), abnormal=False)
    s.emit(back + 9000, sl(dn, "systemd", "Started hadoop-hdfs-datanode.service - Hadoop DataNode.", 1), abnormal=False)
    s.emit(back + 14000, hdfs(dn, "INFO", "datanode.DataNode", f"STARTUP_MSG: Starting DataNode host = {dn.name}/{dn.ip}"),
           abnormal=False)


def network_partition(s: Script) -> None:
    rng, w = s.rng, s.w
    side = rng.sample(w.datanodes, rng.randrange(2, 4))
    s.vars.update(host=", ".join(d.name for d in side), switch=f"tor-{rng.randrange(1, 5)}")
    for dn in side:
        s.emit(rng.randrange(0, 500), sl(dn, "kernel", f"{uptime(rng)} bnxt_en 0000:3b:00.0 eno1: NIC Link is Down"))
    for t in s.spread(3000, 60000, rng.randrange(4, 9)):
        dn = rng.choice(side)
        other = rng.choice([d for d in w.datanodes if d not in side])
        s.emit(t, hdfs(other, "WARN", "datanode.DataNode",
                       f"java.net.SocketTimeoutException: 60000 millis timeout while waiting for channel to be ready for read. "
                       f"ch : java.nio.channels.SocketChannel[connected local=/{other.ip}:{rng.port()} remote=/{dn.ip}:50010]"))
    for t in s.spread(5000, 60000, rng.randrange(3, 6)):
        gw, inv = rng.choice(w.services["gateway"]), rng.choice(w.services["inventory"])
        s.emit(t, j(gw, "ERROR", "c.s.gateway.UpstreamClient",
                    f"Upstream {inv.name} ({inv.ip}:8080) timed out after 5000 ms: connect timed out", _exec(rng)))
        s.emit(t + 1, access(rng, w, "GET", "/api/v1/catalog/search", "inventory", 504, 5001))
    for dn in side:
        s.emit(rng.randrange(31000, 40000), hdfs(w.namenode, "WARN", "blockmanagement.HeartbeatManager",
                                                  f"Lost heartbeat from datanode {dn.ip}:50010 for 30 s; marking it dead"))
    up = rng.randrange(70000, 100000)
    for dn in side:
        s.emit(up + rng.randrange(0, 500), sl(dn, "kernel", f"{uptime(rng)} bnxt_en 0000:3b:00.0 eno1: NIC Link is Up, "
                                                            "25000 Mbps full duplex, Flow control: ON - receive & transmit"),
               abnormal=False)


def memory_exhaustion(s: Script) -> None:
    rng, w = s.rng, s.w
    svc = rng.choice(("orders", "inventory", "payments"))
    h = rng.choice(w.services[svc])
    s.vars.update(host=h.name, service=svc)
    for t in s.spread(0, 20000, rng.randrange(2, 4)):  # precursors: long GC pauses (not failures yet)
        s.emit(t, j(h, "WARN", "c.s.common.GcMonitor", f"GC pause (G1 Evacuation Pause) took {rng.randrange(1500, 4000)}ms, "
                                                        f"heap {rng.randrange(93, 99)}% used after collection", "gc-monitor"),
               abnormal=False)
    t = rng.randrange(25000, 35000)
    s.emit(t, j(h, "ERROR", f"c.s.{svc}.Application",
                java_trace("Uncaught exception in thread http-nio-8080-exec-17: java.lang.OutOfMemoryError: Java heap space",
                            ["java.base/java.util.Arrays.copyOf(Arrays.java:3537)",
                             f"com.shop.{svc}.ReportBuilder.render(ReportBuilder.java:{rng.randrange(40, 400)})"]),
                "http-nio-8080-exec-17"))
    pid = h.pid
    s.emit(t + 2000, sl(h, "kernel", f"{uptime(rng)} java invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|"
                                     "__GFP_COMP), order=0, oom_score_adj=0"))
    s.emit(t + 2001, sl(h, "kernel", f"{uptime(rng)} Out of memory: Killed process {pid} (java) total-vm:"
                                     f"{rng.randrange(9, 16) * 10**6}kB, anon-rss:{rng.randrange(7, 8) * 10**6}kB, "
                                     "file-rss:0kB, shmem-rss:0kB, UID:1001 pgtables:16400kB oom_score_adj:0"))
    s.emit(t + 2100, sl(h, "systemd", f"{svc}.service: A process of this unit has been killed by the OOM killer.", 1))
    s.emit(t + 2101, sl(h, "systemd", f"{svc}.service: Main process exited, code=killed, status=9/KILL", 1))
    s.emit(t + 2102, sl(h, "systemd", f"{svc}.service: Failed with result 'oom-kill'.", 1))
    s.down(h.name, t + 2000, t + 20000)
    for t2 in s.spread(t + 2200, t + 15000, rng.randrange(3, 6)):
        gw = rng.choice(w.services["gateway"])
        s.emit(t2, j(gw, "ERROR", "c.s.gateway.UpstreamClient",
                     f"Upstream {h.name} ({h.ip}:8080) refused connection: Connection refused", _exec(rng)))
        s.emit(t2 + 1, access(rng, w, "GET", f"/api/v1/{svc}", svc, 502, rng.randrange(1, 5)))
    s.emit(t + 12100, sl(h, "systemd", f"{svc}.service: Scheduled restart job, restart counter is at 1.", 1), abnormal=False)
    s.emit(t + 12102, sl(h, "systemd", f"Started {svc}.service - {svc.capitalize()} service.", 1), abnormal=False)


def misconfiguration(s: Script) -> None:
    rng, w = s.rng, s.w
    svc = rng.choice(("orders", "payments", "inventory"))
    hosts = w.services[svc]
    version = f"{rng.randrange(2, 4)}.{rng.randrange(0, 30)}.{rng.randrange(0, 9)}"
    prop, bad, why = rng.choice([
        ("spring.datasource.url", "jdbc:postgresql://db-primary:5423/shop", "Connection to db-primary:5423 refused"),
        ("payments.provider.endpoint", "htps://api.paylink.example/v2", "unknown protocol: htps"),
        ("server.ssl.key-store", "/etc/shop/keystore-prod.p12", "/etc/shop/keystore-prod.p12 (No such file or directory)"),
        ("cache.redis.port", "63790", "port out of range:63790"),
    ])
    s.vars.update(host=", ".join(h.name for h in hosts), service=svc, version=version, property=prop)
    s.emit(0, j(hosts[0], "INFO", "c.s.deploy.RolloutAgent",
                f"Deploying {svc} version {version} (commit {rng.hexs(7)}) to {len(hosts)} hosts", "main"), abnormal=False)
    t = 0.0
    for h in hosts:
        t += rng.randrange(8000, 20000)
        s.emit(t, j(h, "ERROR", "o.s.boot.SpringApplication",
                    java_trace(f"Application run failed: org.springframework.beans.factory.BeanCreationException: "
                                f"Error creating bean with name '{svc}Client': invalid value '{bad}' for property "
                                f"'{prop}': {why}",
                                ["org.springframework.beans.factory.support.AbstractAutowireCapableBeanFactory"
                                 ".initializeBean(AbstractAutowireCapableBeanFactory.java:1806)",
                                 f"com.shop.{svc}.Application.main(Application.java:{rng.randrange(12, 40)})"]), "main"))
        s.emit(t + 300, sl(h, "systemd", f"{svc}.service: Main process exited, code=exited, status=1/FAILURE", 1))
        s.emit(t + 301, sl(h, "systemd", f"{svc}.service: Failed with result 'exit-code'.", 1))
        s.down(h.name, t, t + 60000)
    for t2 in s.spread(t, t + 25000, rng.randrange(3, 6)):
        gw = rng.choice(w.services["gateway"])
        s.emit(t2, j(gw, "ERROR", "c.s.gateway.UpstreamClient", f"No healthy upstream for service {svc}: 0 of {len(hosts)} "
                                                                 "instances passing health checks", _exec(rng)))
        s.emit(t2 + 1, access(rng, w, "GET", f"/api/v1/{svc}", svc, 503, rng.randrange(1, 4)))
    s.emit(t + 30000, j(hosts[0], "INFO", "c.s.deploy.RolloutAgent", f"Rolled back {svc} to the previous version", "main"),
           abnormal=False)


def dependency_outage(s: Script) -> None:
    rng, w = s.rng, s.w
    if rng.random() < 0.5:
        pay = w.services["payments"]
        s.vars.update(host=w.provider, service="payments", dependency=f"payment provider {w.provider}")
        s.emit(0, j(pay[0], "WARN", "c.s.payments.ProviderClient",
                    f"HTTP 503 Service Unavailable from {w.provider} for POST /v2/authorizations "
                    f"(attempt 3/3, {rng.randrange(2000, 6000)}ms)", _exec(rng)))
        for t in s.spread(1000, 50000, rng.randrange(6, 12)):
            h = rng.choice(pay)
            s.emit(t, j(h, "ERROR", "c.s.payments.PaymentService",
                        f"Payment authorization failed for order ORD-{rng.randrange(10**7, 10**8)}: provider {w.provider} "
                        "unavailable (connect timed out)", _exec(rng)))
            s.emit(t + 2, access(rng, w, "POST", "/api/v1/orders", "orders", 503, rng.randrange(5000, 9000)))
        s.emit(rng.randrange(5000, 9000), j(pay[0], "ERROR", "i.g.r.circuitbreaker.CircuitBreaker",
                                            "CircuitBreaker 'paylink' changed state from CLOSED to OPEN", "resilience4j"))
        s.emit(rng.randrange(70000, 90000), j(pay[0], "INFO", "i.g.r.circuitbreaker.CircuitBreaker",
                                              "CircuitBreaker 'paylink' changed state from HALF_OPEN to CLOSED", "resilience4j"),
               abnormal=False)
        return
    svc = rng.choice(("orders", "inventory"))
    s.vars.update(host=w.db.name, service=svc, dependency=f"database {w.db.name}")
    for t in s.spread(0, 45000, rng.randrange(5, 10)):
        h = rng.choice(w.services[svc])
        s.emit(t, j(h, "ERROR", "com.zaxxer.hikari.pool.HikariPool",
                    "HikariPool-1 - Connection is not available, request timed out after 30000ms.", _exec(rng)))
        if rng.random() < 0.6:
            s.emit(t + 5, j(h, "ERROR", "o.h.engine.jdbc.spi.SqlExceptionHelper",
                            f"Connection to {w.db.name}:5432 refused. Check that the hostname and port are correct and "
                            "that the postmaster is accepting TCP/IP connections.", _exec(rng)))
        s.emit(t + 7, access(rng, w, "GET", f"/api/v1/{svc}", svc, 500, 30000 + rng.randrange(5, 50)))


def auth_failure_storm(s: Script) -> None:
    rng, w = s.rng, s.w
    attacker = rng.ext_ip()
    target = rng.choice(w.services["gateway"])
    s.vars.update(host=target.name, source_ip=attacker)
    dur = rng.randrange(40000, 90000)
    pid = rng.randrange(1000, 60000)
    for t in s.spread(0, dur, rng.randrange(15, 35)):
        user = rng.choice(ATTACK_USERS)
        port = rng.port()
        if rng.random() < 0.5:
            s.emit(t, sl(target, "sshd", f"Invalid user {user} from {attacker} port {port}", pid))
            s.emit(t + 300, sl(target, "sshd", f"Failed password for invalid user {user} from {attacker} port {port} ssh2", pid))
        else:
            s.emit(t, sl(target, "sshd", f"Failed password for root from {attacker} port {port} ssh2", pid))
        pid += rng.randrange(1, 4)
    auth = w.services["auth"][0]
    for t in s.spread(5000, dur, rng.randrange(10, 25)):
        user = rng.choice(USERS)
        s.emit(t, j(auth, "WARN", "c.s.auth.LoginController", f"Login failed for user {user} from {attacker}: bad credentials",
                    _exec(rng)))
        if rng.random() < 0.3:
            s.emit(t + 1, j(auth, "WARN", "c.s.auth.LockoutPolicy",
                            f"Account {user} locked for 15 minutes after 5 failed login attempts from {attacker}", _exec(rng)))
    s.emit(dur / 2, sl(target, "sshd", f"error: maximum authentication attempts exceeded for root from {attacker} port "
                                       f"{rng.port()} ssh2 [preauth]", pid))
    s.emit(dur / 2 + 10, j(target, "WARN", "c.s.gateway.RateLimiter",
                           f"Rate limit exceeded for {attacker}: {rng.randrange(120, 900)} login requests in 60s, "
                           "blocking for 900s",
                           _exec(rng)))


def certificate_expiry(s: Script) -> None:
    rng, w = s.rng, s.w
    svc = rng.choice(("payments", "inventory", "auth"))
    cn = f"{svc}.shop.internal"
    s.vars.update(host=", ".join(h.name for h in w.services[svc]), service=svc, certificate=cn)
    s.emit(0, j(w.services[svc][0], "WARN", "c.s.common.CertificateMonitor",
                f"TLS certificate for {cn} expired at {s.t0 // 1000 - rng.randrange(60, 600)} (notAfter passed); "
                "automatic renewal failed: ACME order invalid", "scheduling-1"))
    for t in s.spread(1000, 60000, rng.randrange(6, 12)):
        gw = rng.choice(w.services["gateway"])
        s.emit(t, j(gw, "ERROR", "c.s.gateway.UpstreamClient",
                    java_trace(f"TLS handshake with {cn}:8443 failed: javax.net.ssl.SSLHandshakeException: PKIX path "
                                "validation failed: java.security.cert.CertPathValidatorException: validity check failed",
                                ["java.base/sun.security.ssl.Alert.createSSLException(Alert.java:131)",
                                 "java.base/sun.security.ssl.CertificateMessage$T13CertificateConsumer.checkServerCerts"
                                 "(CertificateMessage.java:1357)"]), _exec(rng)))
        s.emit(t + 2, access(rng, w, "GET", f"/api/v1/{svc}", svc, 502, rng.randrange(3, 30)))
    for t in s.spread(2000, 40000, rng.randrange(2, 5)):
        gw = rng.choice(w.services["gateway"])
        s.emit(t, sl(gw, "nginx", f"{rng.randrange(1000, 9000)}#0: *{rng.randrange(10**5, 10**7)} upstream SSL certificate "
                                  f"verify error: (10:certificate has expired) while SSL handshaking to upstream",
                     rng.randrange(1000, 9000)))


def slow_io(s: Script) -> None:
    rng, w = s.rng, s.w
    dn = rng.choice(w.datanodes)
    vol = rng.randrange(1, 5)
    s.vars.update(host=dn.name, volume=f"/data/{vol}")
    dur = rng.randrange(60000, 120000)
    for t in s.spread(0, dur, rng.randrange(8, 16)):
        s.emit(t, hdfs(dn, "WARN", "datanode.DataNode",
                       rng.choice((f"Slow BlockReceiver write data to disk cost {rng.randrange(4000, 30000)}ms "
                                   "(threshold=300ms), volume=/data/" + str(vol),
                                   f"Slow flushOrSync took {rng.randrange(4000, 25000)}ms (threshold=300ms), "
                                   f"isSync:false, flushTotalNanos={rng.randrange(10**9, 10**11)}ns, volume=/data/{vol}",
                                   f"Slow manageWriterOsCache took {rng.randrange(3000, 20000)}ms (threshold=300ms), "
                                   f"volume=/data/{vol}"))))
    for t in s.spread(dur / 3, dur, rng.randrange(2, 4)):
        s.emit(t, sl(dn, "kernel", f"{uptime(rng)} INFO: task java:{dn.pid} blocked for more than 120 seconds."))
    for t in s.spread(dur / 4, dur, rng.randrange(2, 5)):
        client = rng.choice(w.services["orders"])
        s.emit(t, hdfs(rng.choice([d for d in w.datanodes if d is not dn]), "WARN", "hdfs.DataStreamer",
                       f"Slow waitForAckedSeqno took {rng.randrange(30000, 65000)}ms (threshold=30000ms). File being written: "
                       f"/user/{rng.choice(USERS)}/exports/{client.name}.parquet, block: {rng.blk()}, "
                       f"Write pipeline datanodes: [{dn.ip}:50010]"))


def process_crash(s: Script) -> None:
    rng, w = s.rng, s.w
    if rng.random() < 0.5:
        svc = rng.choice(("orders", "inventory"))
        h = rng.choice(w.services[svc])
        field_ = rng.choice(("customer", "shippingAddress", "priceList"))
        s.vars.update(host=h.name, service=svc)
        crashes = rng.randrange(3, 6)
        t = 0.0
        for k in range(crashes):
            s.emit(t, j(h, "ERROR", f"c.s.{svc}.Application",
                        java_trace(f"Unhandled exception in worker, exiting: java.lang.NullPointerException: Cannot invoke "
                                    f"\"com.shop.{svc}.{field_.capitalize()}.getId()\" because \"{field_}\" is null",
                                    [f"com.shop.{svc}.OrderAssembler.assemble(OrderAssembler.java:{rng.randrange(50, 300)})",
                                     f"com.shop.{svc}.Worker.run(Worker.java:{rng.randrange(30, 90)})"]), "worker-1"))
            s.emit(t + 100, sl(h, "systemd", f"{svc}.service: Main process exited, code=exited, status=70/SOFTWARE", 1))
            s.emit(t + 101, sl(h, "systemd", f"{svc}.service: Failed with result 'exit-code'.", 1))
            s.emit(t + 5100, sl(h, "systemd", f"{svc}.service: Scheduled restart job, restart counter is at {k + 1}.", 1),
                   abnormal=False)
            t += rng.randrange(10000, 25000)
        s.emit(t, sl(h, "systemd", f"{svc}.service: Start request repeated too quickly.", 1))
        s.emit(t + 1, sl(h, "systemd", f"Failed to start {svc}.service - {svc.capitalize()} service.", 1))
        s.down(h.name, 0, t + 60000)
        return
    node = rng.choice(w.compute_nodes)
    app = rng.choice(("lammps", "wrf", "namd"))
    job = rng.randrange(100000, 999999)
    s.vars.update(host=node, service=app)
    s.emit(0, ras(node, "APP", "FATAL", f"ciod: Received signal 11 (SIGSEGV) for job {job} program "
                                        f"/bgl/apps/{app}/bin/{app}.rts, address 0x{rng.hexs(8)}"))
    s.emit(rng.randrange(100, 900), ras(node, "KERNEL", "FATAL", "rts panic! - stopping execution"))
    s.emit(rng.randrange(1000, 3000), ras(node, "APP", "FATAL",
                                          f"ciod: generated {rng.randrange(32, 512)} core files for program "
                                          f"/bgl/apps/{app}/bin/{app}.rts"))
    s.emit(rng.randrange(3000, 6000), ras(node, "MMCS", "ERROR", f"job {job} exited abnormally with status 139"))
