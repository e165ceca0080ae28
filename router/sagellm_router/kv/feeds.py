"""The router's KV-event feeds: which pools follow their engines' events, owned by the router app.

``wanted_feeds`` names the pools routed by ``kv_aware`` (their own ``routing``, the router's
default, or ``pd.prefill_routing``/``pd.decode_routing``) with the index of that pool's
``kv_aware`` instance and the pool's endpoint URLs. ``KvFeeds.sync`` runs on every endpoint
update (``RouterState.apply_pools``): one ``KvEventFollower`` per such pool tracks exactly its
endpoints (endpoints that leave are dropped from the index); a pool that goes away or stops using
``kv_aware`` has its follower stopped and its entries dropped. ``start`` (with the app's HTTP
session) and ``close`` bracket the I/O: nothing is followed before ``start``; ``close`` awaits
every follower task and destroys the ZMQ context. With ``routing.replica_sync`` the feeds also
run the replica sync (``kv.peers``): each pool's picks are announced to the peer replicas, and
theirs are learnt by the pool's ``kv_aware``. ``KvCollector`` exports what the feeds and
the strategies count as ``sagellm_router_kv_*`` (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sagellm_router.config import ReplicaSyncSettings
from sagellm_router.kv.peers import ReplicaSync
from sagellm_router.kv.subscriber import KvEventFollower
from sagellm_router.routing.base import Strategy
from sagellm_router.routing.kv_aware import KvAware
from sagellm_router.types import PoolSnapshot

KV_AWARE = "kv_aware"
IN_PROCESS = "inprocess://"


@dataclass(frozen=True)
class Feed:
    """One pool to follow: its ``kv_aware`` strategy and its engines (URL -> instance name)."""

    strategy: KvAware
    engines: Mapping[str, str] = field(default_factory=dict)


def wanted_feeds(
    pools: Iterable[PoolSnapshot], strategy_of: Callable[[PoolSnapshot], str],
    get: Callable[[str, str], Strategy], pd_names: Iterable[str | None],
) -> dict[str, Feed]:  # fmt: skip
    """Pools whose requests ``kv_aware`` routes, with what to follow for each."""
    pd_uses = KV_AWARE in set(pd_names)
    out: dict[str, Feed] = {}
    for pool in pools:
        if strategy_of(pool) != KV_AWARE and not pd_uses:
            continue
        strategy = get(pool.name, KV_AWARE)
        if isinstance(strategy, KvAware):
            engines = {
                e.url: e.instance for e in pool.endpoints if not e.url.startswith(IN_PROCESS)
            }
            out[pool.name] = Feed(strategy, engines)
    return out


class KvFeeds:
    """The followers of one router app, one per pool routed by ``kv_aware``."""

    def __init__(
        self, follower_options: Mapping[str, float] | None = None,
        replica_sync: ReplicaSyncSettings | None = None,
    ) -> None:  # fmt: skip
        self._options = dict(follower_options or {})
        self._session: Any = None
        self._ctx: Any = None
        self.wanted: dict[str, Feed] = {}
        self.followers: dict[str, KvEventFollower] = {}
        self.replicas = (
            ReplicaSync(replica_sync, self.learn)
            if replica_sync is not None and replica_sync.port is not None
            else None
        )

    @property
    def started(self) -> bool:
        return self._session is not None

    def start(self, session: Any) -> None:
        """Begin following (``session``: the app's aiohttp session); call on the event loop."""
        import zmq.asyncio

        ctx = zmq.asyncio.Context()
        if self.replicas is not None:
            try:
                self.replicas.start(ctx)
            except ValueError:
                ctx.destroy(linger=0)
                raise
        self._session, self._ctx = session, ctx
        self.sync(self.wanted)

    def sync(self, wanted: Mapping[str, Feed]) -> None:
        """Follow exactly the pools and endpoints of ``wanted`` (once started)."""
        self.wanted = dict(wanted)
        if self.replicas is not None:
            for pool, feed in wanted.items():
                feed.strategy.announce = partial(self.replicas.publish, pool)
        if not self.started:
            return
        for pool in [p for p in self.followers if p not in wanted]:
            self.followers.pop(pool).track(())
        for pool, feed in wanted.items():
            follower = self.followers.get(pool)
            if follower is None or follower.index is not feed.strategy.index:
                if follower is not None:
                    follower.track(())
                follower = KvEventFollower(feed.strategy.index, self._session, self._ctx,
                                           **self._options)  # fmt: skip
                self.followers[pool] = follower
            follower.track(feed.engines)

    def learn(self, pool: str, url: str, keys: Sequence[int]) -> bool:
        """A peer replica's pick; False when this replica does not route that engine."""
        feed = self.wanted.get(pool)
        if feed is None or url not in feed.engines:
            return False
        feed.strategy.learn(url, keys)
        return True

    async def close(self) -> None:
        """Stop every follower and the replica sync, wait for their tasks, release ZMQ."""
        if self.replicas is not None:
            await self.replicas.close()
        followers, self.followers = list(self.followers.values()), {}
        for follower in followers:
            await follower.close()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
        self._session = self._ctx = None


class KvCollector(Collector):
    """``sagellm_router_kv_*`` at scrape time, from the feeds' followers and strategies."""

    def __init__(self, feeds: KvFeeds) -> None:
        self._feeds = feeds

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        blocks, events, resyncs, picks, publishers = self._families()
        feeds = self._feeds
        for pool, feed in sorted(feeds.wanted.items()):
            for source, count in feed.strategy.picks.items():
                picks.add_metric([pool, source], count)
            follower = feeds.followers.get(pool)
            if follower is None:
                continue
            publishers.add_metric([pool], sum(len(e) for e in follower.engines.values()))
            for engine in feed.strategy.index.engines():
                blocks.add_metric([pool, _name(engine, feed)], feed.strategy.index.blocks(engine))
            for engine, count in follower.events.items():
                events.add_metric([pool, _name(engine, feed)], count)
            for (engine, reason), count in follower.resyncs.items():
                resyncs.add_metric([pool, _name(engine, feed), reason], count)
        yield from (blocks, events, resyncs, picks, publishers)
        if feeds.replicas is not None:
            yield from _sync_families(feeds.replicas)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, GaugeMetricFamily]:  # fmt: skip
        p, e = "sagellm_router_kv_", ["pool", "endpoint"]
        return (
            GaugeMetricFamily(
                f"{p}indexed_blocks", "KV blocks the index holds per engine", labels=e
            ),
            CounterMetricFamily(f"{p}events", "KV-cache events applied to the index", labels=e),
            CounterMetricFamily(
                f"{p}resyncs",
                "KV-event sequence gaps and publisher restarts",
                labels=[*e, "reason"],
            ),
            CounterMetricFamily(
                f"{p}picks", "kv_aware picks by what decided them", labels=["pool", "source"]
            ),
            GaugeMetricFamily(f"{p}publishers", "Engine publishers followed", labels=["pool"]),
        )


def _sync_families(sync: ReplicaSync) -> Iterator[Metric]:
    p = "sagellm_router_kv_sync_"
    picks = CounterMetricFamily(
        f"{p}picks", "kv_aware picks shared with peer router replicas", labels=["direction"]
    )
    picks.add_metric(["sent"], sync.sent)
    picks.add_metric(["received"], sync.received)
    rejected = CounterMetricFamily(
        f"{p}rejected", "Replica-sync picks dropped, by reason", labels=["reason"]
    )
    for reason, count in sorted(sync.rejected.items()):
        rejected.add_metric([reason], count)
    yield picks
    yield rejected
    yield GaugeMetricFamily(f"{p}peers", "Peer router replicas subscribed to", len(sync.peers))


def _name(engine: str, feed: Feed) -> str:
    """The instance name of an index key (``url`` or ``url|dpN``), else the key itself."""
    url, _, rank = engine.partition("|")
    name = feed.engines.get(url, url)
    return f"{name}|{rank}" if rank else name
