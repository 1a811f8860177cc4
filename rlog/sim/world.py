"""The simulated system: hosts, addresses, users, and which hosts are down when.

Four components, each logging in its own real-world format:

- ``storage``: an HDFS-style cluster (one NameNode, DataNodes) in the HDFS layout;
- ``compute``: Blue Gene-style compute nodes reporting kernel/hardware RAS events;
- ``api``: Java web services behind a gateway, in the log4j layout;
- ``syslog``: the Linux hosts under storage and api (sshd, systemd, kernel, cron) in
  rsyslog's RFC 3339 format.

Everything is derived from the seed, so a run is reproducible line for line.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

# The source name of each component and the log format preset its lines are written in.
FORMATS: dict[str, str] = {"storage": "hdfs", "compute": "ras", "api": "log4j", "syslog": "rsyslog"}

USERS = ("etl", "analytics", "jdoe", "mchen", "asingh", "okafor", "lgarcia", "hdfs", "spark", "backup",
         "reporting", "ml-train", "kpatel", "nsato", "fmuller")
DATASETS = ("events", "clicks", "orders", "sessions", "metrics", "features", "invoices", "audit", "logs", "images")
PRODUCTS = ("espresso", "grinder", "kettle", "mug", "filter", "scale", "beans", "tamper", "carafe", "dripper",
            "thermos", "milk frother", "cleaning tabs", "descaler")
APPS = ("lammps", "gromacs", "namd", "wrf", "cp2k", "nek5000", "hpl", "qbox", "flash", "miranda")
CLIENTS = ("web-frontend", "ios-app", "android-app", "partner-acme", "partner-globex", "batch-exporter", "crm-sync")
ATTACK_USERS = ("admin", "root", "test", "oracle", "postgres", "ubuntu", "guest", "user", "ftpuser", "pi", "git",
                "deploy", "support", "jenkins")


class Rand(random.Random):
    """``random.Random`` plus the value shapes log lines are made of."""

    def hexs(self, n: int) -> str:
        return "".join(self.choice("0123456789abcdef") for _ in range(n))

    def uuid(self) -> str:
        h = self.hexs(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[self.randrange(4)]}{h[17:20]}-{h[20:]}"

    def blk(self) -> str:
        n = self.randrange(10**17, 10**19)
        return f"blk_{'-' if self.random() < 0.5 else ''}{n}"

    def port(self) -> int:
        return self.randrange(32768, 61000)

    def ext_ip(self) -> str:
        """Addresses from the documentation and carrier ranges: realistic, never someone's real host."""
        net = self.choice(("203.0.113", "198.51.100", "192.0.2", "100.64.12", "100.72.40"))
        return f"{net}.{self.randrange(2, 254)}"

    def lognormal_ms(self, median: float, sigma: float = 0.6) -> int:
        return max(1, int(self.lognormvariate(0, sigma) * median))

    def size(self) -> int:
        return self.choice((67108864, 67108864, 67108864, self.randrange(1024, 67108864)))

    def word(self, k: int = 6) -> str:
        return "".join(self.choice(string.ascii_lowercase) for _ in range(k))


@dataclass(frozen=True)
class Host:
    name: str
    ip: str
    pid: int  # the main daemon's pid (HDFS process, JVM service)


@dataclass
class World:
    namenode: Host
    datanodes: list[Host]
    compute_nodes: list[str]
    services: dict[str, list[Host]]
    db: Host
    cache: Host
    provider: str
    down: dict[str, tuple[int, int]] = field(default_factory=dict)  # host -> [from_ms, to_ms)

    @classmethod
    def build(cls, rng: Rand, *, datanodes: int = 8, compute_nodes: int = 24) -> World:
        nn = Host("nn-1", "10.10.0.10", rng.randrange(1000, 30000))
        dns = [Host(f"dn-{i:02d}", f"10.10.1.{10 + i}", rng.randrange(1000, 30000)) for i in range(1, datanodes + 1)]
        nodes: list[str] = []
        while len(nodes) < compute_nodes:
            loc = (f"R{rng.randrange(0, 4):02d}-M{rng.randrange(2)}-N{rng.choice('0123456789ABCDEF')}"
                   f"-C:J{rng.randrange(2, 18):02d}-U{rng.choice(('01', '11'))}")
            if loc not in nodes:
                nodes.append(loc)
        services: dict[str, list[Host]] = {}
        octet = 10
        for svc, n in (("gateway", 2), ("orders", 3), ("payments", 2), ("inventory", 2), ("auth", 1)):
            hosts = []
            for i in range(1, n + 1):
                octet += 1
                hosts.append(Host(f"{svc}-{i}" if svc != "gateway" else f"gw-{i}", f"10.20.1.{octet}",
                                  rng.randrange(1000, 30000)))
            services[svc] = hosts
        return cls(nn, dns, nodes, services, Host("db-primary", "10.20.0.5", 0), Host("cache-1", "10.20.0.7", 0),
                   "api.paylink.example")

    def linux_hosts(self) -> list[Host]:
        """Hosts that write syslog (the compute nodes report through RAS instead)."""
        return [self.namenode, *self.datanodes, *(h for hs in self.services.values() for h in hs)]

    def mark_down(self, host: str, from_ms: int, to_ms: int) -> None:
        self.down[host] = (from_ms, to_ms)

    def is_down(self, host: str, t_ms: int) -> bool:
        span = self.down.get(host)
        if span is None:
            return False
        if t_ms >= span[1]:
            del self.down[host]  # keeps the map bounded by the hosts down right now
            return False
        return t_ms >= span[0]
