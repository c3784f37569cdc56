"""A provider's HTTP connections split among SDK clients (analysis.engine.providers.base.ClientShards): exactly the
connections configured in all, one client while they fit in one shard, and a call always given a client with a free
connection while fewer calls than connections are out."""

from __future__ import annotations

from contextlib import ExitStack

import openai

from analysis.engine.providers.base import SHARD_CONNECTIONS, ClientShards
from analysis.engine.providers.openai_provider import OpenAIProvider


def built(max_connections):
    made = []

    def build(connections, context):
        made.append((connections, context))
        return len(made) - 1

    return ClientShards(build, max_connections), made


def test_connections_fit_in_one_client_up_to_a_shard():
    for configured in (None, 1, SHARD_CONNECTIONS):
        shards, made = built(configured)
        assert len(made) == 1 and made[0] == (configured, None)  # the SDK's own TLS setup


def test_a_thousand_connections_are_split_exactly_with_one_tls_context():
    shards, made = built(1000)
    sizes = [connections for connections, _ in made]
    assert sum(sizes) == 1000 and max(sizes) <= SHARD_CONNECTIONS and max(sizes) - min(sizes) <= 1
    assert len({id(context) for _, context in made}) == 1 and made[0][1] is not None


def test_every_call_up_to_the_limit_finds_a_free_connection():
    shards, _ = built(200)
    with ExitStack() as held:
        leased = [held.enter_context(shards.lease()) for _ in range(200)]
        # Each client was given exactly as many calls as it has connections.
        assert sorted(leased.count(index) for index in set(leased)) == sorted(shards.sizes)
    # Given back: the next call goes to a client with all its connections free.
    with shards.lease() as index:
        assert shards.sizes[index] == max(shards.sizes)


def test_an_openai_provider_at_a_thousand_connections_uses_every_shard():
    provider = OpenAIProvider(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=1, max_connections=1000)
    assert len(provider.clients.clients) == -(-1000 // SHARD_CONNECTIONS)
    assert all(isinstance(client, openai.OpenAI) for client in provider.clients.clients)
    assert provider.client is provider.clients.first
    assert sum(provider.clients.sizes) == 1000
    with ExitStack() as held:
        leased = [id(held.enter_context(provider.clients.lease())) for _ in range(1000)]
    assert sorted(leased.count(id(client)) for client in provider.clients.clients) == sorted(provider.clients.sizes)
