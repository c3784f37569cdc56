"""Private servers started from Debian's packages, for the tests and the benchmarks: a Redis primary with a
replica and three Sentinels, and PgBouncer in front of the local PostgreSQL.

Each runs on free loopback ports with its files in a directory of its own, and is stopped (killed) on the way
out: nothing here touches the system's Redis or PostgreSQL configuration. The Sentinels run as
`redis-server <conf> --sentinel` with a configuration file they may rewrite (the `redis-sentinel` package
would start a system Sentinel). PgBouncer refuses to run as root: it is started with `-u postgres`, its files
in a directory that user can read and write.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.waits import wait_for

ROOT = Path(__file__).resolve().parent.parent
# Bounds a wait on a server starting or a failover ending: only a hang is caught by it.
SERVER_WAIT = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(client, *command) -> object:
    try:
        return client.execute_command(*command)
    except Exception:  # noqa: BLE001 - not up yet, or down: the caller waits
        return None


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(SERVER_WAIT)


# --- Redis with Sentinel ---------------------------------------------------------------------------------------

@dataclass
class FailoverTimes:
    """When the Sentinels saw the primary down and switched (epoch seconds, from their logs), and the
    down-after-milliseconds they were configured with."""

    down_after_s: float
    sdown: float  # the first Sentinel's +sdown
    try_failover: float  # the leader's +try-failover
    switch_master: float  # the first +switch-master

    @property
    def failover_s(self) -> float:
        """The failover, as the Sentinels log it after down-after-milliseconds: from the first one seeing the
        primary down (+sdown) to the switch, agreeing it is down and electing a leader included."""
        return self.switch_master - self.sdown


_LOG_LINE = re.compile(r"^\d+:X (\d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2}\.\d{3}) [#*.-] (\+[\w-]+) ")


class RedisSentinelGroup:
    """A Redis primary, one replica and three Sentinels (quorum 2) on loopback ports, for failover tests.

    `env()` is the environment that points the project's settings at them (REDIS_SENTINELS, ...)."""

    SENTINELS = 3

    def __init__(self, directory: Path, *, master: str = "sr-failover", down_after_ms: int = 1000,
                 failover_timeout_ms: int = 10_000) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.master = master
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(self.SENTINELS)]
        self.servers: dict[int, subprocess.Popen] = {}
        self.sentinels: list[subprocess.Popen] = []

    # The servers ------------------------------------------------------------------------------------------
    def start(self) -> RedisSentinelGroup:
        try:
            return self._start()
        except BaseException:
            self.stop()  # what did start is not left running
            raise

    def _start(self) -> RedisSentinelGroup:
        self._start_server(self.primary_port)
        self._start_server(self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        wait_for(lambda: (_answers(self.client(self.replica_port), "INFO", "replication") or {}).get(
            "master_link_status") == "up", SERVER_WAIT, "the replica to sync", interval=0.05)
        for index, port in enumerate(self.sentinel_ports):
            conf = self.dir / f"sentinel-{index}.conf"
            conf.write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", f"dir {self.dir}", f"logfile {self.sentinel_log(index)}",
                f"sentinel monitor {self.master} 127.0.0.1 {self.primary_port} 2",
                f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}",
                f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {self.master} 1", ""]))
            self.sentinels.append(subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # Ready once every Sentinel knows the replica and the two other Sentinels (their hellos): only then
        # can a majority agree on a failover, and promote the replica.
        for port in self.sentinel_ports:
            wait_for(lambda port=port: self._sentinel_ready(port), SERVER_WAIT,
                     f"the Sentinel on {port} to see its peers", interval=0.05)
        return self

    def _start_server(self, port: int, *extra: str) -> None:
        self.servers[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             # The replica syncs at once (by default Redis waits seconds for more replicas to share a diskless sync).
             "--repl-diskless-sync-delay", "0",
             "--dir", str(self.dir), "--logfile", str(self.dir / f"redis-{port}.log"), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _answers(self.client(port), "PING"), SERVER_WAIT, f"redis-server on {port} to answer",
                 interval=0.05)

    def _sentinel_ready(self, port: int) -> bool:
        try:
            state = self.client(port).sentinel_master(self.master)
        except Exception:  # noqa: BLE001 - not up yet
            return False
        return state["num-other-sentinels"] == self.SENTINELS - 1 and state["num-slaves"] >= 1

    @staticmethod
    def client(port: int):
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)

    def sentinel_log(self, index: int) -> Path:
        return self.dir / f"sentinel-{index}.log"

    def env(self) -> dict[str, str]:
        return {"REDIS_SENTINELS": ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports),
                "REDIS_SENTINEL_MASTER": self.master, "REDIS_DB": "0"}

    def project_settings(self) -> dict:
        """The Redis settings that scriptripper/settings.py makes of env() (its own code, run again with it), for a
        process whose settings are loaded already: a test's (through pytest-django's `settings`), the benchmark's."""
        import runpy

        saved = {name: os.environ.get(name) for name in self.env()}
        os.environ.update(self.env())
        try:
            made = runpy.run_path(str(ROOT / "scriptripper" / "settings.py"))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        return {name: made[name] for name in ("REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_DB", "RQ_QUEUES",
                                              "CACHES")}

    def primary(self) -> int | None:
        """The primary's port, as the Sentinels answer now."""
        for port in self.sentinel_ports:
            try:
                return int(self.client(port).sentinel_get_master_addr_by_name(self.master)[1])
            except Exception:  # noqa: BLE001 - that Sentinel does not answer: ask the next
                continue
        return None

    # The failover ----------------------------------------------------------------------------------------
    def kill_primary(self) -> float:
        """SIGKILL the primary; the time it died (epoch seconds)."""
        proc = self.servers[self.primary_port]
        proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        proc.wait(SERVER_WAIT)
        return killed_at

    def wait_promoted(self) -> float:
        """Once the Sentinels name the replica as the primary: the time they were seen doing so (epoch)."""
        wait_for(lambda: self.primary() == self.replica_port, SERVER_WAIT, "the Sentinels to promote the replica",
                 interval=0.02)
        return time.time()

    def failover_times(self) -> FailoverTimes:
        events: dict[str, float] = {}
        for index in range(self.SENTINELS):
            for line in self.sentinel_log(index).read_text().splitlines():
                match = _LOG_LINE.match(line)
                if match and match.group(2) in ("+sdown", "+try-failover", "+switch-master") and \
                        f"master {self.master} " in line + " ":
                    at = datetime.strptime(match.group(1), "%d %b %Y %H:%M:%S.%f").astimezone().timestamp()
                    events[match.group(2)] = min(events.get(match.group(2), at), at)
        missing = {"+sdown", "+try-failover", "+switch-master"} - set(events)
        if missing:
            raise AssertionError(f"the Sentinels' logs have no {sorted(missing)}")
        return FailoverTimes(self.down_after_ms / 1000, events["+sdown"], events["+try-failover"],
                             events["+switch-master"])

    def stop(self) -> None:
        for proc in [*self.sentinels, *self.servers.values()]:
            _kill(proc)

    def __enter__(self) -> RedisSentinelGroup:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


# --- PgBouncer -------------------------------------------------------------------------------------------------

PGBOUNCER_USER = "postgres"


def pgbouncer_missing() -> str | None:
    """Why PgBouncer cannot run here, or None."""
    if shutil.which("pgbouncer") is None:
        return "pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)"
    try:
        pwd.getpwnam(PGBOUNCER_USER)
    except KeyError:
        return f"no {PGBOUNCER_USER!r} user to run pgbouncer as (it refuses to run as root)"
    return None


# The deployment's file (README: "PgBouncer"): what the tests run is it, with the settings of this machine.
PGBOUNCER_INI = ROOT / "docker" / "pgbouncer.ini"


class PgBouncer:
    """PgBouncer on a free loopback port in front of PostgreSQL at `pg_host:pg_port`, configured by
    docker/pgbouncer.ini with only what differs here: the address, the files, `pool_mode` (transaction, as the
    file, unless asked), trusted `users` (the local PostgreSQL trusts loopback connections; the first is the
    admin: `SHOW POOLS`), and the file's one [databases] entry turned into a wildcard (any database name, the
    tests' own included, goes to the same server, with the same parameters)."""

    def __init__(self, *, pg_host: str = "127.0.0.1", pg_port: int = 5432, pool_mode: str = "transaction",
                 users: tuple[str, ...] = ("root",), default_pool_size: int = 20) -> None:
        why = pgbouncer_missing()
        if why:
            raise RuntimeError(why)
        self.pg_host, self.pg_port, self.pool_mode = pg_host, pg_port, pool_mode
        self.users = users
        self.default_pool_size = default_pool_size
        self.port = free_port()
        # Not under pytest's tmp_path: that is root's alone, and pgbouncer runs as another user.
        self.dir = Path(tempfile.mkdtemp(prefix="sr-pgbouncer-"))
        os.chmod(self.dir, 0o755)
        self.proc: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.dir / "pgbouncer.log"

    def config(self) -> str:
        import configparser
        import io

        ini = configparser.ConfigParser(interpolation=None)
        ini.optionxform = str  # database names keep their case
        ini.read(PGBOUNCER_INI)
        [(_, entry)] = ini.items("databases")
        parameters = dict(pair.split("=", 1) for pair in entry.split())
        parameters.update(host=self.pg_host, port=str(self.pg_port))
        parameters.pop("dbname", None)  # a wildcard entry keeps the name the client asked for
        ini.remove_section("databases")
        ini.add_section("databases")
        ini.set("databases", "*", " ".join(f"{key}={value}" for key, value in parameters.items()))
        ini["pgbouncer"].update({
            "listen_addr": "127.0.0.1", "listen_port": str(self.port), "unix_socket_dir": "",
            "auth_type": "trust", "auth_file": str(self.dir / "userlist.txt"), "admin_users": self.users[0],
            "pool_mode": self.pool_mode, "default_pool_size": str(self.default_pool_size),
            "logfile": str(self.log), "pidfile": str(self.dir / "pgbouncer.pid")})
        text = io.StringIO()
        ini.write(text)
        return text.getvalue()

    def start(self) -> PgBouncer:
        (self.dir / "pgbouncer.ini").write_text(self.config())
        (self.dir / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in self.users))
        owner = pwd.getpwnam(PGBOUNCER_USER)
        for path in (self.dir, *self.dir.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.proc = subprocess.Popen(["pgbouncer", "-u", PGBOUNCER_USER, str(self.dir / "pgbouncer.ini")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(self._answers, SERVER_WAIT, f"pgbouncer on {self.port} to answer", interval=0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, f"pgbouncer exited: {self.log_tail()}"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def version(self) -> str:
        """PgBouncer's version, as `pgbouncer --version` says it (1.18.0 on Debian 12)."""
        answer = subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True, timeout=30).stdout
        return answer.split()[1] if answer.startswith("PgBouncer ") else answer.strip()

    def url(self, database: str, user: str | None = None) -> str:
        return f"postgresql://{user or self.users[0]}@127.0.0.1:{self.port}/{database}"

    def admin(self, command: str) -> list[tuple]:
        """A command on PgBouncer's admin console (SHOW POOLS, RECONNECT db, ...): its rows."""
        import psycopg

        with psycopg.connect(self.url("pgbouncer"), autocommit=True, prepare_threshold=None) as conn:
            cursor = conn.execute(command)
            return cursor.fetchall() if cursor.description else []

    def stop(self) -> None:
        _kill(self.proc)
        self.proc = None

    def restart(self) -> None:
        """Kill it (every client and server connection drops) and start it again on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()
