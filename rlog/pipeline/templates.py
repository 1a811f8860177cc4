"""Template mining with Drain3: masking, bounded cluster count, stable ids, snapshots.

Drain3's cluster ids are counters that depend on arrival order, so two workers (or one
worker before and after a restart without state) would number the same template
differently. Alerts, verdict caches and training data need an id that means the same
text everywhere: we use a hash of the template text.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.memory_buffer_persistence import MemoryBufferPersistence
from drain3.template_miner_config import TemplateMinerConfig

from rlog.pipeline.formats import LogFormat

# Drain3 logs every snapshot at INFO; checkpoints happen every few seconds in the stream.
logging.getLogger("drain3.template_miner").setLevel(logging.WARNING)

WILDCARD = "<*>"

# Order matters: specific identifiers first, so a block id is not half-eaten as a number.
DEFAULT_MASKS: tuple[str, ...] = (
    r"(?<![\w/.])(?:/[\w.\-~]+){2,}/?",  # absolute path with at least two segments
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",  # uuid
    r"blk_-?\d+",  # HDFS block id
    r"\b(?:application|appattempt|attempt|container|job|task)_\d+(?:_[A-Za-z0-9]+)+",  # Hadoop/YARN ids
    r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?![\d.])",  # IPv4 with optional port
    r"\b0[xX][0-9a-fA-F]+\b",  # hex literal
    r"\b[0-9a-fA-F]{16,}\b",  # long hex string (hashes, addresses)
    r"(?<![A-Za-z0-9_.])\d+(?:\.\d+)?(?:ms|us|ns|s|sec|secs|kB|KB|MB|GB|TB|B)(?![A-Za-z0-9_])",  # quantity with unit
    r"(?<![A-Za-z0-9_])[-+]?\d+(?:\.\d+)*(?![A-Za-z0-9_])",  # numbers, versions, decimals
)


# Three or more whitespace-separated tokens in a row, each a variable or a word holding a digit.
_ID_TOKEN = r"(?:<\*>|[A-Za-z_][\w\-.:]*\d[\w\-.:]*)"
ID_LIST = rf"(?<!\S){_ID_TOKEN}(?:[ \t]+{_ID_TOKEN}){{2,}}(?!\S)"


def template_id(template: str) -> str:
    """Stable id of a template text: the same text gives the same id in every process."""
    return "T" + hashlib.blake2b(template.encode("utf-8"), digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """Where one message landed: its cluster and the cluster's template at that moment."""

    cluster_id: int
    template: str
    template_id: str
    change: str  # drain3 change type: cluster_created, cluster_template_changed, none
    prior: int = 0  # lines this cluster held before this one (0: the template is new to the source)
    age: int = 0  # lines the source's miner held before this one (how much history "new" is measured against)


class TemplateStore:
    """One Drain3 miner (one per log source) with project masking and snapshots."""

    def __init__(self, fmt: LogFormat, *, max_clusters: int = 5000, sim_th: float | None = None,
                 depth: int | None = None, extra_masks: tuple[str, ...] = (),
                 default_masks: bool = True) -> None:
        cfg = TemplateMinerConfig()
        cfg.drain_sim_th = fmt.sim_th if sim_th is None else sim_th
        cfg.drain_depth = fmt.depth if depth is None else depth
        cfg.drain_max_clusters = max_clusters
        cfg.snapshot_compress_state = True
        masks = (*fmt.extra_masks, *extra_masks, *(DEFAULT_MASKS if default_masks else ()))
        # Last: merge adjacent variables ("<*><*>" is one variable to a reader and to the model), and
        # a list of ids ("an398 an399 an400 …", "dadmin2 dadmin3 dadmin4") into one: Drain3 groups by
        # token count, so a list of varying length would otherwise be a new template per length.
        cfg.masking_instructions = [MaskingInstruction(p, "*") for p in (*masks, r"(?:<\*>)+<\*>", ID_LIST)]
        cfg.mask_prefix, cfg.mask_suffix = "<", ">"
        self.max_clusters = max_clusters
        self._miner = TemplateMiner(persistence_handler=None, config=cfg)
        self.lines = 0  # messages mined into live clusters (restored with the snapshot)

    def mine(self, content: str) -> TemplateMatch:
        res = self._miner.add_log_message(content)
        tpl = res["template_mined"]
        age, self.lines = self.lines, self.lines + 1
        return TemplateMatch(res["cluster_id"], tpl, template_id(tpl), res["change_type"],
                             prior=int(res["cluster_size"]) - 1, age=age)

    def current(self, cluster_id: int, tid: str, template: str) -> tuple[str, str]:
        """(id, template) of the cluster now: it may have generalised since a line was mined.

        Falls back to the values seen at mining time when the cluster was evicted by the
        ``max_clusters`` bound.
        """
        cluster = self._miner.drain.id_to_cluster.get(cluster_id)
        if cluster is None:
            return tid, template
        tpl = cluster.get_template()
        return (tid if tpl == template else template_id(tpl)), tpl

    def templates(self) -> list[tuple[str, str, int]]:
        """(template id, template, size) of every live cluster, largest first."""
        out = [(template_id(c.get_template()), c.get_template(), c.size) for c in self._miner.drain.clusters]
        return sorted(out, key=lambda t: -t[2])

    def __len__(self) -> int:
        return len(self._miner.drain.clusters)

    def snapshot(self) -> bytes:
        """Serialized miner state (compressed), to persist beside consumer offsets."""
        buf = MemoryBufferPersistence()
        self._miner.persistence_handler = buf
        try:
            self._miner.save_state("snapshot")
        finally:
            self._miner.persistence_handler = None
        return buf.state

    def restore(self, state: bytes) -> None:
        buf = MemoryBufferPersistence()
        buf.state = state
        self._miner.persistence_handler = buf
        try:
            self._miner.load_state()
        finally:
            self._miner.persistence_handler = None
        self.lines = sum(c.size for c in self._miner.drain.clusters)
