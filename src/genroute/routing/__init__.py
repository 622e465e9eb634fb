"""Routing: model groups, strategies, retries, fallbacks and cooldowns behind the Router.

router       the Router: the model API over every model group
groups       model groups, wildcards, aliases, deployment ids, fallback tables
strategies   simple-shuffle, least-busy, latency-based and usage-based routing
state        per-deployment state in memory (cooldowns, in flight, rpm/tpm, latency)
redis_state  the same state shared across processes through Redis
retry        backoff before a retry
dispatch     the choose / attempt / retry / fall back loop
report       x-genroute-* response headers and the /health report
"""

from genroute.routing.groups import Deployment, ModelGroups, normalise_model_name
from genroute.routing.report import routing_headers, with_routing_headers
from genroute.routing.router import Router

__all__ = [
    "Deployment",
    "ModelGroups",
    "Router",
    "normalise_model_name",
    "routing_headers",
    "with_routing_headers",
]
