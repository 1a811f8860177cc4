"""Template mining with Drain3: masking, bounded cluster count, stable ids, snapshots.

Drain3's cluster ids are counters that depend on arrival order, so two workers (or one
worker before and after a restart without state) would number the same template
differently. Alerts, verdict caches and training data need an id that means the same
text everywhere: we use a hash of the template text.

Snapshots are plain JSON (the clusters, their recency order and the prefix tree), never
Drain3's own ``jsonpickle`` form: a parse-state record is data read from a Kafka topic, and
``jsonpickle.loads`` on a crafted one runs code in the worker.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass

import orjson
from drain3 import TemplateMiner
from drain3.drain import LogCluster, Node
from drain3.masking import MaskingInstruction
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


SNAPSHOT_FORMAT = "rlog-drain/1"
_MAX_TREE_DEPTH = 64  # Drain3's prefix tree is as deep as its depth setting (a few levels)


class SnapshotError(ValueError):
    """A template snapshot that is not one this module wrote (corrupt, forged, or the old form)."""


def _tree_state(node: Node) -> list:
    return [list(node.cluster_ids), [[key, _tree_state(child)] for key, child in node.key_to_child_node.items()]]


def _tree_node(d, depth: int) -> Node:
    if depth > _MAX_TREE_DEPTH:
        raise SnapshotError(f"prefix tree deeper than {_MAX_TREE_DEPTH}")
    ids, children = d
    if not (isinstance(ids, list) and all(isinstance(i, int) for i in ids) and isinstance(children, list)):
        raise SnapshotError("a tree node is not [[cluster id, ...], [[key, node], ...]]")
    node = Node()
    node.cluster_ids = list(ids)
    for key, child in children:
        if not isinstance(key, str):
            raise SnapshotError("a tree key is not a string")
        node.key_to_child_node[key] = _tree_node(child, depth + 1)
    return node


def _read_snapshot(state: bytes) -> dict:
    try:
        body = orjson.loads(zlib.decompress(state))
    except (zlib.error, orjson.JSONDecodeError, TypeError):
        body = None
    if isinstance(body, dict) and body.get("format") == SNAPSHOT_FORMAT:
        return body
    if isinstance(state, bytes | bytearray) and bytes(state[:2]) in (b"eJ", b"eN", b"eF", b"eA", b"eD"):  # base64 of zlib
        raise SnapshotError("a Drain3 jsonpickle snapshot (rlog before 2026-12-03): not loaded, since unpickling a "
                            "parse-state record could run code")
    raise SnapshotError("not a template snapshot")


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
        """The miner's state as compressed JSON, to persist beside consumer offsets."""
        drain = self._miner.drain
        cache = drain.id_to_cluster
        order = list(getattr(cache, "_LRUCache__order", None) or cache.keys())  # least recently used first
        clusters = [[cid, list(c.log_template_tokens), c.size] for cid in order
                    if (c := cache.get(cid)) is not None]  # get: reading does not touch the recency
        body = {"format": SNAPSHOT_FORMAT, "counter": drain.clusters_counter, "lines": self.lines,
                "clusters": clusters, "tree": _tree_state(drain.root_node)}
        return zlib.compress(orjson.dumps(body), 3)

    def restore(self, state: bytes) -> None:
        """Load a ``snapshot``; raises ``SnapshotError`` (and changes nothing) on anything else."""
        body = _read_snapshot(state)
        drain = self._miner.drain
        try:
            clusters = []
            for cid, tokens, size in body["clusters"]:
                if not (isinstance(cid, int) and isinstance(size, int) and size >= 1 and isinstance(tokens, list)
                        and all(isinstance(t, str) for t in tokens)):
                    raise SnapshotError("a cluster is not [id, [token, ...], size]")
                c = LogCluster(tokens, cid)
                c.size = size
                clusters.append(c)
            counter, lines = body["counter"], body["lines"]
            if not (isinstance(counter, int) and isinstance(lines, int)):
                raise SnapshotError("counter and lines must be integers")
            root = _tree_node(body["tree"], 0)
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"malformed template snapshot ({e})") from None
        drain.id_to_cluster.clear()
        for c in clusters[-self.max_clusters:]:  # the most recently used, if the bound shrank
            drain.id_to_cluster[c.cluster_id] = c
        drain.root_node, drain.clusters_counter = root, counter
        self.lines = lines
