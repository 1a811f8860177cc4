"""Normal operation: what each component logs when nothing is wrong.

Each activity is a small script (an HDFS block written through a three-DataNode pipeline,
a checkout through the gateway, a batch job on compute nodes, an ssh login) that emits a
few lines spread over time, with ids, addresses, sizes and durations drawn fresh every
time. Routine warnings (slow writes under threshold, deprecated API use, certificates
expiring in weeks) belong here too: real systems are never silent.
"""

from __future__ import annotations

from collections.abc import Callable

from rlog.sim.render import Msg
from rlog.sim.world import APPS, CLIENTS, DATASETS, PRODUCTS, USERS, Host, Rand, World

Lines = list[tuple[int, Msg]]  # (delay in ms from the activity's start, message)
Activity = Callable[[Rand, World], Lines]


# ----------------------------------------------------------------------------- storage


def hdfs(host: Host, level: str, comp: str, text: str) -> Msg:
    return Msg("storage", host.name, level, comp, text, str(host.pid))


def _pipeline(rng: Rand, w: World, n: int = 3) -> list[Host]:
    return rng.sample(w.datanodes, n)


def block_write(rng: Rand, w: World) -> Lines:
    blk, size, user = rng.blk(), rng.size(), rng.choice(USERS)
    path = f"/user/{user}/{rng.choice(DATASETS)}/{rng.randrange(2024, 2027)}/part-{rng.randrange(100000):05d}"
    dns = _pipeline(rng, w)
    client = rng.choice([*w.datanodes, w.namenode])
    out: Lines = [(0, hdfs(w.namenode, "INFO", "dfs.FSNamesystem", f"BLOCK* NameSystem.allocateBlock: {path}. {blk}"))]
    t = rng.randrange(5, 60)
    srcs = [client, *dns[:-1]]
    for src, dn in zip(srcs, dns, strict=True):
        out.append((t, hdfs(dn, "INFO", "dfs.DataNode$DataXceiver",
                            f"Receiving block {blk} src: /{src.ip}:{rng.port()} dest: /{dn.ip}:50010")))
        t += rng.randrange(1, 20)
    t += rng.lognormal_ms(900)
    for k, dn in enumerate(reversed(dns)):
        out.append((t, hdfs(dn, "INFO", "dfs.DataNode$PacketResponder", f"PacketResponder {k} for block {blk} terminating")))
        out.append((t + rng.randrange(0, 3), hdfs(dn, "INFO", "dfs.DataNode$PacketResponder",
                                                  f"Received block {blk} of size {size} from /{srcs[len(dns) - 1 - k].ip}")))
        out.append((t + rng.randrange(2, 40), hdfs(w.namenode, "INFO", "dfs.FSNamesystem",
                                                   f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {dn.ip}:50010 "
                                                   f"is added to {blk} size {size}")))
        t += rng.randrange(1, 30)
    return out


def block_read(rng: Rand, w: World) -> Lines:
    dn, blk = rng.choice(w.datanodes), rng.blk()
    reader = rng.choice([*w.datanodes, *w.services["orders"]])
    out: Lines = [(0, hdfs(dn, "INFO", "dfs.DataNode$DataXceiver", f"{dn.ip}:50010 Served block {blk} to /{reader.ip}"))]
    if rng.random() < 0.3:
        out.append((rng.randrange(50, 2000), hdfs(dn, "INFO", "dfs.DataBlockScanner", f"Verification succeeded for {blk}")))
    return out


def block_delete(rng: Rand, w: World) -> Lines:
    dns, blks = _pipeline(rng, w, rng.choice((2, 3))), [rng.blk() for _ in range(rng.randrange(1, 4))]
    out: Lines = []
    t = 0
    for blk in blks:
        for dn in dns:
            out.append((t, hdfs(w.namenode, "INFO", "dfs.FSNamesystem",
                                f"BLOCK* NameSystem.delete: {blk} is added to invalidSet of {dn.ip}:50010")))
            t += rng.randrange(0, 5)
    t += rng.randrange(500, 3000)
    for dn in dns:
        out.append((t, hdfs(w.namenode, "INFO", "dfs.FSNamesystem", f"BLOCK* ask {dn.ip}:50010 to delete {' '.join(blks)}")))
        t2 = t + rng.randrange(200, 1500)
        for blk in blks:
            sub = f"subdir{rng.randrange(64)}/subdir{rng.randrange(64)}"
            out.append((t2, hdfs(dn, "INFO", "dfs.FSDataset",
                                 f"Deleting block {blk} file /data/{rng.randrange(1, 5)}/dfs/dn/current/{sub}/{blk}")))
            t2 += rng.randrange(1, 20)
        t += rng.randrange(5, 50)
    return out


def block_replicate(rng: Rand, w: World) -> Lines:
    src, dst = _pipeline(rng, w, 2)
    blk, size = rng.blk(), rng.size()
    t = rng.randrange(500, 3000)
    return [
        (0, hdfs(w.namenode, "INFO", "dfs.FSNamesystem",
                 f"BLOCK* ask {src.ip}:50010 to replicate {blk} to datanode(s) {dst.ip}:50010")),
        (t, hdfs(src, "INFO", "dfs.DataNode", f"{src.ip}:50010 Starting thread to transfer block {blk} to {dst.ip}:50010")),
        (t + rng.lognormal_ms(700), hdfs(src, "INFO", "dfs.DataNode$DataTransfer",
                                         f"{src.ip}:50010:Transmitted block {blk} to /{dst.ip}:50010")),
        (t + rng.lognormal_ms(800), hdfs(dst, "INFO", "dfs.DataNode$DataXceiver",
                                         f"Received block {blk} src: /{src.ip}:{rng.port()} dest: /{dst.ip}:50010 "
                                         f"of size {size}")),
        (t + rng.lognormal_ms(900), hdfs(w.namenode, "INFO", "dfs.FSNamesystem",
                                         f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {dst.ip}:50010 "
                                         f"is added to {blk} size {size}")),
    ]


def storage_housekeeping(rng: Rand, w: World) -> Lines:
    dn = rng.choice(w.datanodes)
    n = rng.randrange(20000, 90000)
    options = [
        [(0, hdfs(w.namenode, "INFO", "namenode.FSNamesystem", f"Roll Edit Log from {w.namenode.ip}")),
         (rng.randrange(5, 80), hdfs(w.namenode, "INFO", "namenode.FSEditLog",
                                     f"Number of transactions: {rng.randrange(10, 5000)} Total time for transactions(ms): "
                                     f"{rng.randrange(1, 400)} Number of transactions batched in Syncs: {rng.randrange(0, 90)} "
                                     f"Number of syncs: {rng.randrange(5, 3000)} SyncTimes(ms): {rng.randrange(10, 9000)}"))],
        [(0, hdfs(dn, "INFO", "dfs.DataNode", f"BlockReport of {n} blocks took {rng.randrange(2, 90)} msec to generate and "
                                              f"{rng.randrange(10, 400)} msecs for RPC and NN processing")),
         (rng.randrange(5, 120), hdfs(w.namenode, "INFO", "BlockStateChange",
                                      f"BLOCK* processReport: from storage DS-{rng.uuid()} node DatanodeRegistration("
                                      f"{dn.ip}:50010, datanodeUuid={rng.uuid()}, infoPort=50075, ipcPort=50020), "
                                      f"blocks: {n}, hasStaleStorage: false, processing time: {rng.randrange(3, 200)} msecs"))],
        [(0, hdfs(w.namenode, "INFO", "namenode.FSImage",
                  f"Saving image file /data/nn/current/fsimage.ckpt_{rng.randrange(10**9, 10**10):019d} using no compression")),
         (rng.randrange(800, 9000), hdfs(w.namenode, "INFO", "namenode.FSImage",
                                         f"Image file /data/nn/current/fsimage.ckpt_{rng.randrange(10**9, 10**10):019d} of size "
                                         f"{rng.randrange(10**7, 10**9)} bytes saved in {rng.randrange(1, 30)} seconds."))],
        [(0, hdfs(dn, "INFO", "datanode.VolumeScanner",
                  f"VolumeScanner(/data/{rng.randrange(1, 5)}, DS-{rng.uuid()}): finished scanning block pool "
                  f"BP-{rng.randrange(10**8, 10**9)}-{w.namenode.ip}-{rng.randrange(10**12, 10**13)}"))],
        [(0, hdfs(w.namenode, "INFO", "namenode.LeaseManager",
                  f"Recovering [Lease.  Holder: DFSClient_NONMAPREDUCE_{rng.randrange(10**9)}_1, pending creates: 1], "
                  f"src=/user/{rng.choice(USERS)}/{rng.choice(DATASETS)}/_temporary/part-{rng.randrange(1000):05d}"))],
    ]
    return rng.choice(options)


def storage_routine_warning(rng: Rand, w: World) -> Lines:
    dn = rng.choice(w.datanodes)
    options = [
        hdfs(dn, "WARN", "datanode.DataNode",
             f"Slow BlockReceiver write packet to mirror took {rng.randrange(301, 700)}ms (threshold=300ms), "
             f"downstream DNs=[{rng.choice(w.datanodes).ip}:50010]"),
        hdfs(w.namenode, "INFO", "util.JvmPauseMonitor",
             f"Detected pause in JVM or host machine (eg GC): pause of approximately {rng.randrange(1000, 2500)}ms "
             f"GC pool 'G1 Young Generation' had collection(s): count=1 time={rng.randrange(800, 2000)}ms"),
        hdfs(dn, "WARN", "conf.Configuration", "dfs.block.size is deprecated. Instead, use dfs.blocksize"),
    ]
    return [(0, rng.choice(options))]


# ----------------------------------------------------------------------------- compute


def ras(node: str, comp: str, level: str, text: str) -> Msg:
    return Msg("compute", node, level, comp, text)


def _partition(rng: Rand) -> str:
    return f"R{rng.randrange(4):02d}-M{rng.randrange(2)}{rng.choice(('', '-N0', '-N4', '-N8', '-NC'))}"


def compute_job(rng: Rand, w: World) -> Lines:
    nodes = rng.sample(w.compute_nodes, rng.randrange(1, 4))
    job, part, app = rng.randrange(100000, 999999), _partition(rng), rng.choice(APPS)
    user, n = rng.choice(USERS), rng.choice((32, 64, 128, 512, 1024))
    svc = nodes[0]
    run_s = rng.randrange(20, 400)
    out: Lines = [
        (0, ras(svc, "MMCS", "INFO", f"idoproxy: allocating partition {part} for job {job} ({n} nodes, user {user})")),
        (rng.randrange(500, 4000), ras(svc, "APP", "INFO",
                                       f"ciod: loading program image /bgl/apps/{app}/bin/{app}.rts on {n} compute nodes")),
    ]
    for node in nodes:
        out.append((rng.randrange(4000, 8000), ras(node, "KERNEL", "INFO",
                                                   f"ciod: process {rng.randrange(100, 30000)} started for job {job}")))
    out.append((run_s * 1000, ras(svc, "APP", "INFO", f"ciod: job {job} exited normally with status 0 after {run_s} seconds")))
    out.append((run_s * 1000 + rng.randrange(100, 2000), ras(svc, "MMCS", "INFO", f"idoproxy: freeing partition {part}")))
    return out


def compute_kernel_info(rng: Rand, w: World) -> Lines:
    node = rng.choice(w.compute_nodes)
    text = rng.choice([
        lambda: f"{rng.randrange(1, 900)} double-hummer alignment exceptions",
        lambda: f"{rng.randrange(1, 60)} floating point alignment exceptions",
        lambda: "instruction cache parity error corrected",
        lambda: f"CE sym {rng.randrange(0, 40)}, at 0x{rng.hexs(8)}, mask 0x{rng.hexs(2)}",
        lambda: f"generating core.{rng.randrange(100, 9999)} for debug request from {rng.choice(USERS)}",
        lambda: f"Kernel mounted filesystem /gpfs/{rng.choice(('home', 'scratch', 'projects'))} from "
                f"ionode{rng.randrange(1, 65)}: {rng.randrange(1000, 9000)} ms",
    ])()
    return [(0, ras(node, "KERNEL", "INFO", text))]


def compute_monitor(rng: Rand, w: World) -> Lines:
    node = rng.choice(w.compute_nodes)
    board = node.split("-C:")[0]
    text = rng.choice([
        lambda: (f"node card {board} temperature {rng.randrange(38, 61)} C, fan speed {rng.randrange(2800, 4200)} rpm: "
                 "within limits", "MONITOR"),
        lambda: (f"Ido chip status changed: {node} ip=10.3.{rng.randrange(256)}.{rng.randrange(256)} "
                 f"v={rng.randrange(8, 14)} t=4 status=M", "DISCOVERY"),
        lambda: (f"power module {board}-P{rng.randrange(8)} output {rng.randrange(1400, 1900)} W, "
                 f"{rng.randrange(470, 500) / 10:.1f} V: nominal", "MONITOR"),
        lambda: (f"link card {board}-L{rng.randrange(4)} port {rng.randrange(1, 25)} trained at 10 Gb/s", "LINKCARD"),
    ])()
    return [(0, ras(node, text[1], "INFO", text[0]))]


# ----------------------------------------------------------------------------- api


def j(host: Host, level: str, logger: str, text: str, thread: str) -> Msg:
    return Msg("api", host.name, level, logger, text, thread)


def _exec(rng: Rand) -> str:
    return f"http-nio-8080-exec-{rng.randrange(1, 201)}"


def access(rng: Rand, w: World, method: str, path: str, svc: str, status: int, ms: int) -> Msg:
    gw = rng.choice(w.services["gateway"])
    up = rng.choice(w.services[svc])
    return j(gw, "INFO", "c.s.gateway.AccessLog",
             f"{rng.ext_ip()} \"{method} {path}\" -> {up.name} {status} {ms}ms client={rng.choice(CLIENTS)}", _exec(rng))


def checkout(rng: Rand, w: World) -> Lines:
    oid, cid, n = f"ORD-{rng.randrange(10**7, 10**8)}", rng.randrange(10**5, 10**6), rng.randrange(1, 6)
    amount = f"{rng.randrange(500, 90000) / 100:.2f}"
    orders, inv, pay = (rng.choice(w.services[s]) for s in ("orders", "inventory", "payments"))
    th = _exec(rng)
    pay_ms = rng.lognormal_ms(180)
    t = rng.randrange(2, 15)
    out: Lines = [(t, j(orders, "INFO", "c.s.orders.OrderService",
                        f"Created order {oid} for customer {cid}: {n} items, total {amount} EUR", th))]
    for _ in range(min(n, 3)):
        t += rng.randrange(2, 30)
        out.append((t, j(inv, "INFO", "c.s.inventory.StockService",
                         f"Reserved {rng.randrange(1, 4)} units of SKU-{rng.randrange(10000, 99999)} "
                         f"({rng.choice(PRODUCTS)}) for order {oid}", _exec(rng))))
    t += pay_ms
    out.append((t, j(pay, "INFO", "c.s.payments.PaymentService",
                     f"Payment PAY-{rng.hexs(12)} authorized for order {oid}: {amount} EUR via {w.provider} in {pay_ms}ms",
                     _exec(rng))))
    t += rng.randrange(2, 20)
    out.append((t, j(orders, "INFO", "c.s.orders.OrderService", f"Order {oid} status changed from PENDING to PAID", th)))
    out.append((t + 1, access(rng, w, "POST", "/api/v1/orders", "orders", 201, t + 1)))
    return out


def browse(rng: Rand, w: World) -> Lines:
    kind = rng.random()
    if kind < 0.45:
        ms = rng.lognormal_ms(25)
        return [(ms, access(rng, w, "GET", f"/api/v1/orders/ORD-{rng.randrange(10**7, 10**8)}", "orders", 200, ms))]
    if kind < 0.8:
        inv, ms = rng.choice(w.services["inventory"]), rng.lognormal_ms(40)
        q = rng.choice(PRODUCTS)
        return [(ms - 1, j(inv, "INFO", "c.s.inventory.SearchController",
                           f"Search '{q}' page {rng.randrange(1, 6)} returned {rng.randrange(0, 80)} products in {ms}ms",
                           _exec(rng))),
                (ms, access(rng, w, "GET", f"/api/v1/catalog/search?q={q.replace(' ', '+')}&page={rng.randrange(1, 6)}",
                            "inventory", 200, ms))]
    if kind < 0.93:
        ms = rng.lognormal_ms(8)
        svc = rng.choice(("orders", "payments", "inventory", "auth"))
        return [(ms, access(rng, w, "GET", "/actuator/health", svc, 200, ms))]
    oid, cid, ms = f"ORD-{rng.randrange(10**7, 10**8)}", rng.randrange(10**5, 10**6), rng.lognormal_ms(12)
    orders = rng.choice(w.services["orders"])
    return [(ms - 1, j(orders, "WARN", "c.s.orders.OrderController", f"Order {oid} not found for customer {cid}", _exec(rng))),
            (ms, access(rng, w, "GET", f"/api/v1/orders/{oid}", "orders", 404, ms))]


def login(rng: Rand, w: World) -> Lines:
    auth, user, ip = rng.choice(w.services["auth"]), rng.choice(USERS), rng.ext_ip()
    ms = rng.lognormal_ms(60)
    out: Lines = []
    if rng.random() < 0.08:  # a typo, then success: routine
        out += [(ms, j(auth, "INFO", "c.s.auth.LoginController", f"Login failed for user {user} from {ip}: bad credentials",
                       _exec(rng))),
                (ms + 1, access(rng, w, "POST", "/api/v1/auth/login", "auth", 401, ms))]
        ms += rng.randrange(3000, 15000)
    out += [(ms, j(auth, "INFO", "c.s.auth.LoginController",
                   f"User {user} authenticated from {ip} (method=password, mfa={rng.choice(('totp', 'webauthn'))})",
                   _exec(rng))),
            (ms + 2, j(auth, "INFO", "c.s.auth.TokenService", f"Issued access token for user {user}, expires in 3600s",
                       _exec(rng))),
            (ms + 3, access(rng, w, "POST", "/api/v1/auth/login", "auth", 200, ms + 3))]
    return out


def api_background(rng: Rand, w: World) -> Lines:
    svc = rng.choice(("orders", "payments", "inventory"))
    h = rng.choice(w.services[svc])
    total = 10
    active = rng.randrange(0, 7)
    text, logger, level, thread = rng.choice([
        lambda: (f"HikariPool-1 - Pool stats (total={total}, active={active}, idle={total - active}, waiting=0)",
                 "com.zaxxer.hikari.pool.HikariPool", "DEBUG", "HikariPool-1 housekeeper"),
        lambda: (f"Published {rng.randrange(1, 400)} {svc} events to topic {svc}.v1 in {rng.lognormal_ms(15)}ms",
                 f"c.s.{svc}.EventPublisher", "INFO", f"kafka-producer-network-thread | {svc}"),
        lambda: (f"Cache 'products' hit ratio {rng.randrange(80, 100)}% ({rng.randrange(100, 9000)} hits, "
                 f"{rng.randrange(1, 900)} misses) over the last 60s", "c.s.common.CacheMetrics", "INFO", "scheduling-1"),
        lambda: (f"Reconciliation job completed: {rng.randrange(100, 5000)} payments matched, 0 mismatches, took "
                 f"{rng.lognormal_ms(900)} ms", "c.s.payments.ReconciliationJob", "INFO", "scheduling-1"),
        lambda: (f"Refreshed {rng.randrange(10, 400)} exchange rates from ecb in {rng.lognormal_ms(120)}ms",
                 "c.s.payments.RateService", "INFO", "scheduling-1"),
    ])()
    return [(0, j(h, level, logger, text, thread))]


def api_routine_warning(rng: Rand, w: World) -> Lines:
    svc = rng.choice(("orders", "payments", "inventory"))
    h = rng.choice(w.services[svc])
    text, logger = rng.choice([
        lambda: (f"Slow query took {rng.randrange(500, 1500)} ms: SELECT * FROM {svc} WHERE customer_id = ? "
                 "ORDER BY created_at DESC LIMIT 20", "org.hibernate.SQL_SLOW"),
        lambda: (f"Client {rng.choice(CLIENTS)} uses deprecated API version v1; it is retired on 2027-06-30",
                 "c.s.common.ApiVersionFilter"),
        lambda: (f"TLS certificate for {svc}.shop.internal expires in {rng.randrange(20, 80)} days (notAfter is fine, "
                 "renewal is automatic)", "c.s.common.CertificateMonitor"),
    ])()
    return [(0, j(h, "WARN", logger, text, _exec(rng)))]


# ----------------------------------------------------------------------------- syslog


def sl(host: Host | str, prog: str, text: str, pid: int | str = "") -> Msg:
    name = host if isinstance(host, str) else host.name
    return Msg("syslog", name, "INFO", prog, text, str(pid))


def cron(rng: Rand, w: World) -> Lines:
    h, pid = rng.choice(w.linux_hosts()), rng.randrange(1000, 60000)
    job = rng.choice(("/usr/local/bin/backup-metrics.sh", "/usr/lib/sysstat/debian-sa1 1 1", "/usr/local/bin/rotate-gc-logs",
                      "test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily"))
    return [(0, sl(h, "CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", pid)),
            (1, sl(h, "CRON", f"(root) CMD ({job})", pid + 1)),
            (rng.randrange(100, 5000), sl(h, "CRON", "pam_unix(cron:session): session closed for user root", pid))]


def ssh_session(rng: Rand, w: World) -> Lines:
    h, user, ip = rng.choice(w.linux_hosts()), rng.choice(USERS), f"10.30.{rng.randrange(256)}.{rng.randrange(2, 254)}"
    pid, port, sess, uid = rng.randrange(1000, 60000), rng.port(), rng.randrange(1, 3000), rng.randrange(1000, 1100)
    dur = rng.randrange(5000, 120000)
    return [
        (0, sl(h, "sshd", f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{rng.hexs(43)}", pid)),
        (2, sl(h, "sshd", f"pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)", pid)),
        (5, sl(h, "systemd-logind", f"New session {sess} of user {user}.", 512)),
        (dur, sl(h, "sshd", f"Received disconnect from {ip} port {port}:11: disconnected by user", pid)),
        (dur + 1, sl(h, "sshd", f"pam_unix(sshd:session): session closed for user {user}", pid)),
        (dur + 3, sl(h, "systemd-logind", f"Session {sess} logged out. Waiting for processes to exit.", 512)),
        (dur + 9, sl(h, "systemd-logind", f"Removed session {sess}.", 512)),
    ]


def systemd_timer(rng: Rand, w: World) -> Lines:
    h = rng.choice(w.linux_hosts())
    unit, what = rng.choice((("apt-daily.service", "Daily apt download activities"), ("logrotate.service", "Rotate log files"),
                             ("man-db.service", "Daily man-db regeneration"), ("fstrim.service", "Discard unused blocks"),
                             ("sysstat-collect.service", "system activity accounting tool")))
    d = rng.randrange(100, 8000)
    return [(0, sl(h, "systemd", f"Starting {unit} - {what}...", 1)),
            (d, sl(h, "systemd", f"{unit}: Deactivated successfully.", 1)),
            (d + 1, sl(h, "systemd", f"Finished {unit} - {what}.", 1))]


def syslog_misc(rng: Rand, w: World) -> Lines:
    h = rng.choice(w.linux_hosts())
    user = rng.choice(USERS)
    dev = rng.choice("abcd")
    t = rng.randrange(30, 48)
    return [(0, rng.choice([
        lambda: sl(h, "chronyd", f"Selected source 10.30.0.{rng.randrange(2, 5)} (ntp{rng.randrange(1, 4)}.shop.internal)",
                   rng.randrange(400, 900)),
        lambda: sl(h, "smartd", f"Device: /dev/sd{dev} [SAT], SMART Usage Attribute: 194 Temperature_Celsius changed from "
                                f"{t} to {t + rng.choice((-1, 1))}", rng.randrange(400, 900)),
        lambda: sl(h, "sudo", f"   {user} : TTY=pts/{rng.randrange(0, 6)} ; PWD=/home/{user} ; USER=root ; "
                              f"COMMAND=/usr/bin/systemctl status {rng.choice(('hadoop-hdfs-datanode', 'orders', 'nginx'))}",
                   rng.randrange(1000, 60000)),
        lambda: sl(h, "rsyslogd", f"[origin software=\"rsyslogd\" swVersion=\"8.2302.0\" x-pid=\"{rng.randrange(400, 900)}\" "
                                  "x-info=\"https://www.rsyslog.com\"] rsyslogd was HUPed", rng.randrange(400, 900)),
        lambda: sl(h, "kernel", f"[{rng.randrange(1000, 9000000)}.{rng.randrange(10**6):06d}] EXT4-fs (sd{dev}1): "
                                "mounted filesystem with ordered data mode. Quota mode: none."),
    ])())]


# ----------------------------------------------------------------------------- mixing

# Per component: (activity, weight). Weights are relative within the component.
ACTIVITIES: dict[str, list[tuple[Activity, float]]] = {
    "storage": [(block_write, 5), (block_read, 6), (block_delete, 1.5), (block_replicate, 0.6),
                (storage_housekeeping, 1.2), (storage_routine_warning, 0.3)],
    "compute": [(compute_job, 2), (compute_kernel_info, 6), (compute_monitor, 2.5)],
    "api": [(checkout, 3), (browse, 10), (login, 2.5), (api_background, 2.5), (api_routine_warning, 0.4)],
    "syslog": [(cron, 2), (ssh_session, 1), (systemd_timer, 1.5), (syslog_misc, 3)],
}

# Share of normal lines per component (roughly the line mix of a small production estate).
DEFAULT_MIX: dict[str, float] = {"storage": 0.35, "api": 0.35, "compute": 0.15, "syslog": 0.15}
