"""`rlog run`: start a worker (all roles, or some) against a broker, or an embedded one."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from rlog.config import RlogConfig
from rlog.wire import StateKeys
from stream.app import ROLES, build_app, topic_names
from stream.broker import EmbeddedBroker
from stream.kafka_io import BROKER_ENV, broker_record_limit, check_reachable, ensure_topics
from stream.stopping import StopDeadline, bounded_worker

log = logging.getLogger(__name__)

STATE_TOPIC_CONFIG = {"cleanup.policy": "compact"}


def resolve_bootstrap(cfg: RlogConfig, broker: str | None) -> str | None:
    """--broker, else $RLOG_KAFKA_BROKER, else stream.broker; None means 'start an embedded one'."""
    return broker or os.environ.get(BROKER_ENV) or cfg.stream.broker


def topic_plan(cfg: RlogConfig) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """The topics rlog needs (name → partitions) and their settings (name → topic configs). The
    parse-state topic has one partition and is compacted: only each key's latest checkpoint
    matters, and a start reads the whole topic; the others keep ``stream.retention_ms`` if set."""
    names = topic_names(cfg)
    partitions = {name: (1 if key == "state" else cfg.stream.partitions) for key, name in names.items()}
    configs: dict[str, dict[str, str]] = {names["state"]: dict(STATE_TOPIC_CONFIG)}
    if cfg.stream.retention_ms is not None:
        for key, name in names.items():
            if key != "state":
                configs[name] = {"retention.ms": str(cfg.stream.retention_ms)}
    return partitions, configs


def create_topics(cfg: RlogConfig, bootstrap: str) -> dict:
    """Create the input and internal topics that are missing; returns what was created, what existed
    and the settings an existing topic has otherwise (``ensure_topics``)."""
    partitions, configs = topic_plan(cfg)
    return ensure_topics(bootstrap, partitions, configs, replication=cfg.stream.replication)


def load_models(cfg: RlogConfig, roles: Sequence[str]):
    """Load the backends the roles need before joining the group: a missing model is a clear
    error at start, not a crash loop on the first batch."""
    from rlog.backends import load_stage_backends

    log.info("loading models (R-Log-fast: %s, R-Log: %s)", cfg.cascade.fast.model, cfg.cascade.full.model)
    fast, full = load_stage_backends(cfg.cascade, fast="detect" in roles, full="explain" in roles)
    return fast, full


def run_worker(cfg: RlogConfig, roles: Sequence[str] = ROLES, broker: str | None = None, *,
               loglevel: str = "warning") -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    StateKeys.from_env()  # a state key that cannot protect anything is an error now, not after the models load
    bootstrap = resolve_bootstrap(cfg, broker)
    embedded = None
    if bootstrap is None:
        embedded = EmbeddedBroker().start()
        bootstrap = embedded.bootstrap
        print(f"rlog run: no --broker or ${BROKER_ENV}: started an embedded Kafka-protocol broker (tansu) on "
              f"{bootstrap}", flush=True)
    else:
        check_reachable(bootstrap, sasl=True)
    try:
        fast, full = load_models(cfg, roles)
        create_topics(cfg, bootstrap)
        # records are bounded below what every topic rlog writes accepts, as the broker reports it
        names = topic_names(cfg)
        limit = broker_record_limit(bootstrap, [v for k, v in names.items() if k != "input"],
                                    cfg.stream.max_record_bytes)
        if limit != cfg.stream.max_record_bytes:
            cfg = cfg.model_copy(update={"stream": cfg.stream.model_copy(update={"max_record_bytes": limit})})
        app = build_app(cfg, bootstrap, roles, fast=fast, full=full)
        print(f"rlog run: roles {', '.join(roles)}; reading {names['input']}, alerts to {names['alerts']}, "
              f"dead letters to {names['dead_letters']}; health and metrics on :{cfg.stream.web_port}", flush=True)
        worker = bounded_worker(app, StopDeadline(cfg.stream.stop_timeout_s), loglevel=loglevel, quiet=True)
        try:
            worker.execute_from_commandline()
        except SystemExit as e:
            return int(e.code or 0)
        return 0
    finally:
        if embedded is not None:
            embedded.stop()
