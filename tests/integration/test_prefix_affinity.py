"""The ``prefix-affinity`` balancing strategy through running gateways: three mock upstreams, each
one deployment of the same model, counted in their own request logs.

Requests sharing a prompt prefix (system prompt and the conversation's opening) land on one
deployment whatever follows; different prefixes spread over the deployments; concurrent requests
of one prefix spill over once its deployment carries more than the bounded share; a gateway
without one of the deployments moves only the prefixes that deployment held (consistent hashing:
every process builds the same ring); a client's ``prompt_cache_key`` decides the placement alone.
"""

import concurrent.futures
import uuid

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process, start_mock_process

PREFIXES = 17  # not a multiple of 3: round-robin would not keep a prefix in place by accident


def config(mocks, strategy="prefix-affinity"):
    providers = "".join(
        f'[providers.p{i}]\nbase_url = "{mock.base}/v1"\napi_key = "env:K"\n\n' for i, mock in enumerate(mocks)
    )
    deployments = "".join(f'[[models.deployments]]\nprovider = "p{i}"\nmodel = "gpt-4o-mini"\n\n' for i in range(len(mocks)))
    return f'{providers}[[models]]\nname = "agent"\nstrategy = "{strategy}"\n\n{deployments}'


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = []
    try:
        mocks = [start_mock_process("--api-key", "sk-provider") for _ in range(3)]
        started += mocks
        folder = tmp_path_factory.mktemp("affinity")
        three = start_gateway_process(folder / "three.toml", config(mocks), env={"K": "sk-provider"})
        started.append(three)
        two = start_gateway_process(folder / "two.toml", config(mocks[:2]), env={"K": "sk-provider"})
        started.append(two)
        yield {"mocks": mocks, "three": three, "two": two}
        assert_no_crash_logged(three)
        assert_no_crash_logged(two)
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def mocks(stack):
    for mock in stack["mocks"]:
        mock.clear()
    return stack["mocks"]


def ask(gateway, system, turn, headers=None, **params):
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="k", max_retries=0, timeout=30)
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Here is the document we will discuss."},
        {"role": "assistant", "content": "Understood."},
        {"role": "user", "content": f"question number {turn}"},
    ]
    return client.chat.completions.create(model="agent", messages=messages, extra_headers=headers or {}, **params)


def placement(mocks):
    """system prompt -> the indexes of the mocks that received it."""
    where = {}
    for index, mock in enumerate(mocks):
        for request in mock.requests():
            where.setdefault(request["body"]["messages"][0]["content"], []).append(index)
    return where


def systems(count):
    return [f"You are assistant {uuid.uuid4().hex}. Answer from the document." for _ in range(count)]


def test_a_shared_prefix_lands_on_one_deployment(stack, mocks):
    prompts = systems(PREFIXES)
    for turn in range(3):
        for system in prompts:
            ask(stack["three"], system, turn)
    where = placement(mocks)
    assert all(len(where[system]) == 3 and len(set(where[system])) == 1 for system in prompts)
    used = {where[system][0] for system in prompts}
    assert len(used) >= 2  # different prefixes spread (17 prefixes all on one of 3: ~1e-8)


def test_concurrent_requests_spill_over_past_the_load_bound(stack, mocks):
    system = systems(1)[0]
    ask(stack["three"], system, 0)
    home = placement(mocks)[system][0]
    for mock in mocks:
        mock.clear()
    slow = {"x-mock-fault": "slow-first-byte=1000"}  # long enough for all six to overlap on a loaded machine
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda turn: ask(stack["three"], system, turn, slow), range(6)))
    where = placement(mocks)[system]
    assert len(set(where)) >= 2  # not all six on one deployment
    assert where.count(home) <= 3  # its bounded share: ceil(1.25 x load / 3) while they overlap
    for mock in mocks:
        mock.clear()
    ask(stack["three"], system, 7)  # alone again: back home
    assert placement(mocks)[system] == [home]


def test_removing_a_deployment_moves_only_its_prefixes(stack, mocks):
    prompts = systems(PREFIXES)
    for system in prompts:
        ask(stack["three"], system, 0)
    before = {system: where[0] for system, where in placement(mocks).items()}
    for mock in mocks:
        mock.clear()
    for system in prompts:
        ask(stack["two"], system, 0)
    after = {system: where[0] for system, where in placement(mocks).items()}
    stayed = [system for system in prompts if before[system] != 2]
    assert stayed and all(after[system] == before[system] for system in stayed)
    assert all(after[system] in (0, 1) for system in prompts)


def test_prompt_cache_key_decides_the_placement(stack, mocks):
    key = f"conversation-{uuid.uuid4().hex}"
    for system in systems(6):
        ask(stack["three"], system, 0, prompt_cache_key=key)
    used = {index for where in placement(mocks).values() for index in where}
    assert len(used) == 1
    sent = [r["body"] for mock in mocks for r in mock.requests()]
    assert all(body["prompt_cache_key"] == key for body in sent)  # passed through to the provider
