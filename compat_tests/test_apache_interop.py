"""pocketmq's name server and broker interoperating with the stock Apache RocketMQ ones (Maven Central, 5.3.3).

1. ``pocketmq broker`` registers with an Apache name server: the Apache name server's cluster info and routes then
   carry the pocketmq broker, its ``TBW102`` and a topic created on it; a stopped pocketmq broker leaves.
2. An Apache broker registers with ``pocketmq namesrv``: same checks from the other side, a message sent through the
   Apache broker found via the pocketmq route round-trips, and a gracefully stopped Apache broker (UNREGISTER_BROKER
   from its shutdown hook) disappears from the pocketmq routes. A topic created on the Apache broker (registered
   alone) leaves the broker's other routes in place.

All traffic is pocketmq's own ``RemotingClient`` and codec. Run: ``pytest compat_tests/test_apache_interop.py``
(needs java + mvn; skipped without them unless ``CI`` is set). Server logs stay in the tests' tmp directories.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from codec import jsonbody
from codec.codes import PullSysFlag, RequestCode, ResponseCode
from codec.command import RemotingCommand, request
from codec.headers import (
    PullMessageRequestHeader,
    SendMessageRequestHeader,
    encode_header,
    encode_send_header_v2,
)
from codec.properties import decode_properties, encode_properties
from codec.record import decode_records
from compat_tests import harness
from compat_tests.apache.servers import (
    ApacheProcess,
    BuildError,
    PocketmqProcess,
    apache_broker,
    apache_namesrv,
    build_classpath,
    pocketmq_broker,
    pocketmq_namesrv,
)
from remoting.client import RemotingClient

pytestmark = [pytest.mark.compat, pytest.mark.slow]

T = TypeVar("T")

POCKET_BROKER = "pocket-b"
POCKET_CLUSTER = "PocketCluster"
APACHE_BROKER = "apache-b"
APACHE_CLUSTER = "ApacheCluster"


@pytest.fixture(scope="session")
def apache_classpath() -> tuple[str, str]:
    """(java, classpath) of the Apache name server and broker, resolved by Maven once per session."""
    java = harness.require_tool("java")
    mvn = harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed to run the Apache RocketMQ name server and broker")
    try:
        return java, build_classpath(mvn)
    except BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


# --------------------------------------------------------------------------- helpers


async def call(addr: str, code: int, ext: dict[str, str] | None = None, body: bytes = b"") -> RemotingCommand:
    host, _, port = addr.rpartition(":")
    client = await RemotingClient.connect(host, int(port))
    try:
        return await client.invoke(request(code, ext, body), timeout=10)
    finally:
        await client.aclose()


async def cluster_info(namesrv: str) -> dict[str, Any]:
    response = await call(namesrv, RequestCode.GET_BROKER_CLUSTER_INFO)
    assert response.code == ResponseCode.SUCCESS, response.remark
    return jsonbody.loads(response.body)


async def route(namesrv: str, topic: str) -> dict[str, Any] | None:
    """TopicRouteData, or None on TOPIC_NOT_EXIST."""
    response = await call(namesrv, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic})
    if response.code == ResponseCode.TOPIC_NOT_EXIST:
        return None
    assert response.code == ResponseCode.SUCCESS, (response.code, response.remark)
    return jsonbody.loads(response.body)


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 20.0) -> T:
    """The first truthy result of ``probe``, polled every 0.2 s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.2)


def queue_of(route_data: dict[str, Any], broker_name: str) -> dict[str, Any] | None:
    return next((q for q in route_data["queueDatas"] if q["brokerName"] == broker_name), None)


def broker_of(route_data: dict[str, Any], broker_name: str) -> dict[str, Any] | None:
    return next((b for b in route_data["brokerDatas"] if b["brokerName"] == broker_name), None)


def route_with_queues(namesrv: str, topic: str, broker_name: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    async def probe() -> dict[str, Any] | None:
        data = await route(namesrv, topic)
        return data if data is not None and queue_of(data, broker_name) is not None else None

    return probe


async def create_topic(broker: str, topic: str, read: int, write: int, perm: int = 6) -> None:
    """UPDATE_AND_CREATE_TOPIC (17), as mqadmin updateTopic sends it."""
    ext = {
        "topic": topic, "defaultTopic": "TBW102", "readQueueNums": str(read), "writeQueueNums": str(write),
        "perm": str(perm), "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false",
    }  # fmt: skip
    response = await call(broker, RequestCode.UPDATE_AND_CREATE_TOPIC, ext)
    assert response.code == ResponseCode.SUCCESS, (response.code, response.remark)


def assert_broker_entry(data: dict[str, Any], name: str, cluster: str, addr: str) -> None:
    entry = broker_of(data, name)
    assert entry is not None, data
    assert entry["cluster"] == cluster
    assert {str(k): v for k, v in entry["brokerAddrs"].items()} == {"0": addr}


def assert_queues(data: dict[str, Any], name: str, read: int, write: int, perm: int) -> None:
    queues = queue_of(data, name)
    assert queues is not None, data
    assert (queues["readQueueNums"], queues["writeQueueNums"], queues["perm"]) == (read, write, perm)


# --------------------------------------------------------------------------- 1. pocketmq broker -> Apache namesrv


@pytest.fixture(scope="module")
def apache_ns(apache_classpath: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheProcess]:
    java, classpath = apache_classpath
    server = apache_namesrv(java, classpath, tmp_path_factory.mktemp("apache-namesrv"))
    server.start()
    try:
        yield server
    finally:
        server.stop(graceful=False)


async def test_pocketmq_broker_registers_with_apache_namesrv(apache_ns: ApacheProcess, tmp_path: Path) -> None:
    broker = pocketmq_broker(
        apache_ns.addr, tmp_path / "data", tmp_path / "pocketmq-broker.log", POCKET_BROKER, POCKET_CLUSTER
    )
    broker_addr = broker.addr
    broker.start()
    try:
        # Cluster info: the Apache name server answers in fastjson, brokerAddrs keyed by bare integers ({0:"..."}).
        async def registered() -> dict[str, Any] | None:
            info = await cluster_info(apache_ns.addr)
            return info if POCKET_BROKER in info["brokerAddrTable"] else None

        info = await eventually(registered, "the pocketmq broker in the Apache name server's cluster info")
        entry = info["brokerAddrTable"][POCKET_BROKER]
        assert entry["brokerName"] == POCKET_BROKER and entry["cluster"] == POCKET_CLUSTER
        assert entry["brokerAddrs"] == {"0": broker_addr}
        assert info["clusterAddrTable"][POCKET_CLUSTER] == [POCKET_BROKER]

        # The auto-create template, as the pocketmq broker reports it.
        tbw = await eventually(route_with_queues(apache_ns.addr, "TBW102", POCKET_BROKER), "TBW102's route")
        assert_broker_entry(tbw, POCKET_BROKER, POCKET_CLUSTER, broker_addr)
        assert_queues(tbw, POCKET_BROKER, read=8, write=8, perm=7)

        # A topic created on the pocketmq broker reaches the Apache name server (a new dataVersion re-registers).
        await create_topic(broker_addr, "PocketOnApacheNs", read=3, write=5)
        topic = await eventually(
            route_with_queues(apache_ns.addr, "PocketOnApacheNs", POCKET_BROKER), "the new topic's route"
        )
        assert_broker_entry(topic, POCKET_BROKER, POCKET_CLUSTER, broker_addr)
        assert_queues(topic, POCKET_BROKER, read=3, write=5, perm=6)
        assert await route(apache_ns.addr, "TBW102") is not None

        # Asked as a pre-4.9.4 client, the Apache name server writes the route in fastjson's bare-integer-key form.
        old_client = request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "PocketOnApacheNs"})
        old_client.version = 399
        host, _, port = apache_ns.addr.rpartition(":")
        client = await RemotingClient.connect(host, int(port))
        try:
            fastjson = await client.invoke(old_client)
        finally:
            await client.aclose()
        assert fastjson.code == ResponseCode.SUCCESS
        assert b'{0:"' in fastjson.body
        assert jsonbody.loads(fastjson.body) == topic
    finally:
        broker.stop()

    # pocketmq's UNREGISTER_BROKER on SIGTERM (and the closed connection) take it out of the Apache name server.
    async def gone() -> bool:
        return POCKET_BROKER not in (await cluster_info(apache_ns.addr))["brokerAddrTable"]

    await eventually(gone, "the stopped pocketmq broker to leave the Apache name server")
    assert await route(apache_ns.addr, "PocketOnApacheNs") is None
    log = broker.log_path.read_text()
    assert "Traceback" not in log and "refused registration" not in log and "cannot register" not in log, log


# --------------------------------------------------------------------------- 2. Apache broker -> pocketmq namesrv


@pytest.fixture(scope="module")
def pocket_ns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketmqProcess]:
    server = pocketmq_namesrv(tmp_path_factory.mktemp("pocketmq-namesrv") / "namesrv.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pocket_ns_addr(pocket_ns: PocketmqProcess) -> str:
    return pocket_ns.addr


@pytest.fixture(scope="module")
def apache_on_pocket_ns(
    apache_classpath: tuple[str, str], pocket_ns_addr: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApacheProcess]:
    """An Apache broker registered with ``pocketmq namesrv``. The last test of this module stops it gracefully."""
    java, classpath = apache_classpath
    work_dir = tmp_path_factory.mktemp("apache-broker")
    server = apache_broker(java, classpath, work_dir, pocket_ns_addr, APACHE_BROKER, APACHE_CLUSTER)
    server.start()
    try:
        yield server
    finally:
        server.stop(graceful=False)


async def test_apache_broker_registers_with_pocketmq_namesrv(
    apache_on_pocket_ns: ApacheProcess, pocket_ns_addr: str
) -> None:
    broker_addr = apache_on_pocket_ns.addr
    tbw = await eventually(route_with_queues(pocket_ns_addr, "TBW102", APACHE_BROKER), "the Apache broker's TBW102")
    assert_broker_entry(tbw, APACHE_BROKER, APACHE_CLUSTER, broker_addr)
    assert_queues(tbw, APACHE_BROKER, read=8, write=8, perm=7)

    info = await cluster_info(pocket_ns_addr)
    assert info["clusterAddrTable"] == {APACHE_CLUSTER: [APACHE_BROKER]}
    assert info["brokerAddrTable"][APACHE_BROKER]["brokerAddrs"] == {"0": broker_addr}
    assert info["brokerAddrTable"][APACHE_BROKER]["cluster"] == APACHE_CLUSTER

    # The Apache broker's own system topics came with the full registration.
    listed = jsonbody.loads((await call(pocket_ns_addr, RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).body)
    assert {"TBW102", APACHE_CLUSTER, APACHE_BROKER, "SELF_TEST_TOPIC"} <= set(listed["topicList"])

    # A topic created on the Apache broker arrives by its incremental registration (REGISTER_BROKER listing it alone).
    await create_topic(broker_addr, "ApacheOnPocketNs", read=3, write=2)
    topic = await eventually(
        route_with_queues(pocket_ns_addr, "ApacheOnPocketNs", APACHE_BROKER), "the new topic's route"
    )
    assert_broker_entry(topic, APACHE_BROKER, APACHE_CLUSTER, broker_addr)
    assert_queues(topic, APACHE_BROKER, read=3, write=2, perm=6)


async def test_topic_created_on_apache_broker_keeps_its_other_routes(
    apache_on_pocket_ns: ApacheProcess, pocket_ns_addr: str
) -> None:
    await create_topic(apache_on_pocket_ns.addr, "ApacheIncrement", read=1, write=1)
    await eventually(route_with_queues(pocket_ns_addr, "ApacheIncrement", APACHE_BROKER), "the new topic's route")
    for other in ("TBW102", APACHE_CLUSTER, "SELF_TEST_TOPIC"):
        assert await route(pocket_ns_addr, other) is not None, f"{other} vanished after a new topic registered"
    tbw = await route(pocket_ns_addr, "TBW102")
    assert tbw is not None
    assert_queues(tbw, APACHE_BROKER, read=8, write=8, perm=7)


async def test_message_round_trip_through_apache_broker_found_via_pocketmq_namesrv(
    apache_on_pocket_ns: ApacheProcess, pocket_ns_addr: str
) -> None:
    topic = "ApacheRoundTrip"
    await create_topic(apache_on_pocket_ns.addr, topic, read=2, write=2)
    data = await eventually(route_with_queues(pocket_ns_addr, topic, APACHE_BROKER), "the round-trip topic's route")
    broker_addr = broker_of(data, APACHE_BROKER)["brokerAddrs"]["0"]  # type: ignore[index]
    assert broker_addr == apache_on_pocket_ns.addr

    body = b"through apache \x00\xff" + bytes(range(256))
    props = {"TAGS": "TagA", "KEYS": "k1 k2", "UNIQ_KEY": "7F0000010000000000000000000A0001", "WAIT": "true"}
    header = SendMessageRequestHeader(
        producer_group="interop-pg", topic=topic, default_topic="TBW102", default_topic_queue_nums=4,
        queue_id=1, sys_flag=0, born_timestamp=int(time.time() * 1000), flag=7,
        properties=encode_properties(props),
    )  # fmt: skip
    sent = await call(broker_addr, RequestCode.SEND_MESSAGE_V2, encode_send_header_v2(header), body)
    assert sent.code == ResponseCode.SUCCESS, (sent.code, sent.remark)
    assert sent.ext_fields["queueId"] == "1"
    offset = int(sent.ext_fields["queueOffset"])

    pull = PullMessageRequestHeader(
        consumer_group="interop-cg", topic=topic, queue_id=1, queue_offset=offset, max_msg_nums=32,
        sys_flag=int(PullSysFlag.SUBSCRIPTION), commit_offset=0, suspend_timeout_millis=0, subscription="*",
        sub_version=int(time.time() * 1000), expression_type="TAG",
    )  # fmt: skip

    async def pulled() -> RemotingCommand | None:
        # The broker dispatches to the consume queue asynchronously: NOT_FOUND/RETRY until it has.
        response = await call(broker_addr, RequestCode.PULL_MESSAGE, encode_header(pull))
        return response if response.code == ResponseCode.SUCCESS else None

    response = await eventually(pulled, "the message to be pullable", timeout=10)
    [msg] = decode_records(response.body)
    assert (msg.topic, msg.queue_id, msg.queue_offset, msg.flag) == (topic, 1, offset, 7)
    assert msg.body == body
    got = decode_properties(msg.properties)
    assert {k: got.get(k) for k in ("TAGS", "KEYS", "UNIQ_KEY")} == {k: props[k] for k in ("TAGS", "KEYS", "UNIQ_KEY")}
    assert f"{msg.store_host}:{msg.store_port}" == broker_addr
    assert int(response.ext_fields["nextBeginOffset"]) == offset + 1


async def test_apache_broker_unregisters_from_pocketmq_namesrv_on_graceful_stop(
    apache_on_pocket_ns: ApacheProcess, pocket_ns_addr: str
) -> None:
    """Last in this module: it stops the shared Apache broker (SIGTERM runs its shutdown hook)."""

    async def registered() -> bool:
        return APACHE_BROKER in (await cluster_info(pocket_ns_addr))["brokerAddrTable"]

    await eventually(registered, "the Apache broker in pocketmq's cluster info")
    apache_on_pocket_ns.terminate()

    async def gone() -> bool:
        info = await cluster_info(pocket_ns_addr)
        return APACHE_BROKER not in info["brokerAddrTable"] and not info["clusterAddrTable"]

    await eventually(gone, "the stopped Apache broker to leave pocketmq's name server", timeout=30)
    assert await route(pocket_ns_addr, "TBW102") is None
    assert await route(pocket_ns_addr, "ApacheOnPocketNs") is None
    listed = jsonbody.loads((await call(pocket_ns_addr, RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).body)
    assert listed["topicList"] == []
    # The JVM takes ~10 s more to finish its shutdown; the fixture's teardown kills it.


def test_pocketmq_namesrv_logged_no_errors(pocket_ns: PocketmqProcess) -> None:
    log = pocket_ns.log_path.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log
