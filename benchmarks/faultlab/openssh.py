"""OpenSSH's sshd (Debian ``openssh-server``) on a loopback port with its own host key: operators
and jobs logging in with keys, their routine noise (a mistyped user name now and then, sessions
ending), and six real faults of six categories."""

from __future__ import annotations

import getpass
import os
import random
import socket
import subprocess
import time
from pathlib import Path

from benchmarks.faultlab.daemon import Service, free_port, missing_binaries
from benchmarks.faultlab.model import FaultSpec

_START = (r"Server listening on", r"sshd.*(re-exec|restart)")
MAX_STARTUPS = "3:50:6"

FAULTS = {f.name: f for f in (
    FaultSpec("invalid_user_scan", "authentication",
              "logins tried for user names that do not exist, one after another: a credential-stuffing scan",
              "block the source address (fail2ban), keep password logins off, alert on repeated invalid users",
              (r"Invalid user", r"invalid user", r"Failed (none|password|publickey) for invalid user",
               r"not allowed because"), "security"),
    FaultSpec("banner_probe", "protocol",
              "connections that do not speak SSH (HTTP, TLS, garbage): a port scanner or a misrouted client",
              "find the source; if it is a scanner block it, if a client point it at the right port",
              (r"Bad protocol version", r"kex_exchange_identification", r"banner exchange", r"invalid format",
               r"Connection closed by .* \[preauth\]", r"not a valid"), "security"),
    FaultSpec("maxstartups_flood", "overload",
              f"more unauthenticated connections at once than MaxStartups ({MAX_STARTUPS}): new logins are dropped",
              "find who opens connections without finishing them (a scan, a stuck job pool); rate-limit at the "
              "firewall, raise MaxStartups only for real load",
              (r"past MaxStartups", r"beginning MaxStartups throttling", r"exited MaxStartups throttling",
               r"Timeout before authentication", r"Connection (closed|reset) by .* \[preauth\]"), "network", 3.0),
    FaultSpec("bad_config_restart", "configuration",
              "a restart with a broken sshd_config: sshd refuses to start, nobody can log in until it is fixed",
              "run sshd -t to see the line it rejects, fix it, start again (keep a session open while editing)",
              (r"Bad configuration option", r"bad configuration options", r"terminating", r"Unsupported option",
               r"missing argument", r"no argument after keyword", r"sshd_config line \d+:", *_START),
              "configuration", 3.0),
    FaultSpec("hostkey_exposed", "permissions",
              "the host key file became readable by others: sshd refuses the key and cannot start",
              "chmod 600 the host key (and check who changed it and whether the key leaked); start again",
              (r"UNPROTECTED PRIVATE KEY", r"Permissions 0\d+ for .* are too open", r"bad permissions",
               r"Unable to load host key", r"no hostkeys available", r"@@@@", r"It is required that your",
               r"This private key will be ignored", *_START), "security", 3.0),
    FaultSpec("crash_restart", "crash",
              "sshd died (killed) and was restarted: sessions it was setting up were cut",
              "read the kernel and service manager logs for why it died; check that logins work again",
              _START, "software", 2.0),
)}


class OpenSSH(Service):
    """sshd -D -e on a free loopback port; logins as this user with a key made for the run."""

    name = "openssh"
    packages = ("openssh-server", "openssh-client")
    faults = FAULTS
    conf_name = "sshd_config"
    broken_lines = ("PermitRootLogn no\n", "MaxAuthTries many\n", "Ciphers\n")  # what an operator mistypes

    def __init__(self) -> None:
        super().__init__()
        self.user = getpass.getuser()

    def missing(self) -> str | None:
        return missing_binaries("/usr/sbin/sshd", "ssh", "ssh-keygen", packages=self.packages)

    def version(self) -> str:
        r = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=10)
        return (r.stderr or r.stdout).strip()

    def command(self, conf: Path) -> list[str]:
        return ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)]

    def ready(self) -> bool:
        return any("Server listening on" in ln.text for ln in self.log.snapshot()[-5:])

    def _config(self, extra: str = "") -> Path:
        w = self.workdir
        self.conf.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {w / 'host_ed25519'}\nPidFile {w / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {w / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel INFO\nMaxStartups {MAX_STARTUPS}\n"
            "LoginGraceTime 5\nPrintMotd no\n" + extra)
        return self.conf

    def start(self, workdir: Path, rng: random.Random) -> None:
        self.workdir = w = Path(workdir)
        w.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        for key in ("host_ed25519", "client_ed25519"):
            if not (w / key).exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(w / key)], check=True,
                               timeout=30)
        (w / "authorized_keys").write_text((w / "client_ed25519.pub").read_text())
        os.chmod(w / "host_ed25519", 0o600)
        self.port = free_port()
        self._launch(self._config())

    # ------------------------------------------------------------------ normal work

    def _ssh(self, user: str, command: str = "true", timeout_s: float = 10.0) -> int:
        args = ["ssh", "-p", str(self.port), "-i", str(self.workdir / "client_ed25519"), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={os.devnull}", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=5", f"{user}@127.0.0.1", command]
        try:
            return subprocess.run(args, capture_output=True, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            return -1

    def work(self, rng: random.Random) -> None:
        """A login running one command (a deploy step, a health check, a backup job); now and then a
        user name mistyped once (routine: one "Invalid user", then the right one)."""
        if rng.random() < 0.04:
            self._ssh(rng.choice(("roto", "ubuntu", f"{self.user}x")))
        self._ssh(self.user, rng.choice(("true", "uptime", "df -h /", "ls /tmp", "date")))

    # ------------------------------------------------------------------ faults

    def _invalid_user_scan(self, rng: random.Random) -> dict:
        names = rng.sample(["admin", "oracle", "test", "postgres", "git", "ftpuser", "pi", "support", "guest",
                            "deploy", "jenkins", "hadoop", "user1", "mysql"], k=rng.randrange(6, 12))
        for n in names:
            self._ssh(n)
        return {"users": names}

    def _banner_probe(self, rng: random.Random) -> dict:
        probes = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40),
                  b"SSH-1.0-scanner\r\n", b"\x00\xff\x00\xff garbage\r\n", b"HELP\r\n"]
        sent = rng.sample(probes, k=rng.randrange(3, len(probes) + 1))
        for p in sent:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=3) as s:
                    s.recv(256)  # the server's banner
                    s.sendall(p)
                    s.settimeout(2)
                    s.recv(256)
            except OSError:
                pass
        return {"probes": len(sent)}

    def _maxstartups_flood(self, rng: random.Random) -> dict:
        n = rng.randrange(20, 40)
        held = []
        for _ in range(n):
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                s.sendall(b"SSH-2.0-flood\r\n")  # and say nothing more: unauthenticated, held open
                held.append(s)
            except OSError:
                pass
        time.sleep(rng.uniform(1.5, 2.5))
        for s in held:
            s.close()
        return {"connections": n}


    def _hostkey_exposed(self, rng: random.Random) -> dict:
        key = self.workdir / "host_ed25519"
        mode = rng.choice((0o644, 0o640, 0o604))
        os.chmod(key, mode)
        out = self._broken_restart(rng, self.conf)
        os.chmod(key, 0o600)
        self._launch()
        return {**out, "mode": oct(mode)}
