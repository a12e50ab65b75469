"""The web console in headless Chromium against a real ``pocketmq up``: every page shows what the broker holds
(sent over the remoting protocol first), and the actions done through the forms change the broker as the API then
shows. A screenshot of each page is kept (see the ``artefacts`` fixture)."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest

from codec.codes import RequestCode
from codec.command import RemotingCommand, request
from codec.heartbeat import parse_heartbeat  # noqa: F401  (the broker parses what java_heartbeat writes)
from codec.properties import encode_properties
from compat_tests.harness import PocketMQ
from remoting.client import RemotingClient

# The first test may wait for apt-get to install chromium (CI on a fresh machine); the others take seconds.
pytestmark = [pytest.mark.timeout(1200), pytest.mark.slow]

TOPIC = "ConsoleT"
GROUP = "console-g"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=1">'
WAIT_S = 15


class WireClient:
    """The project's remoting client on an event loop in a thread of its own (selenium blocks), as a Python
    producer and consumer would be: sends, commits offsets, heartbeats, and keeps its connection open so the
    console lists it."""

    def __init__(self, port: int) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self.portal = self._portal_cm.__enter__()
        self.client: RemotingClient = self.portal.call(RemotingClient.connect, "127.0.0.1", port)

    def invoke(self, code: int, ext: dict[str, str], body: bytes = b"", language: str = "PYTHON") -> RemotingCommand:
        cmd = request(code, ext, body)
        cmd.language = language
        answer = self.portal.call(self.client.invoke, cmd)
        assert answer.code == 0, (answer.code, answer.remark)
        return answer

    def send(self, topic: str, body: bytes, queue_id: int, properties: dict[str, str]) -> RemotingCommand:
        ext = {
            "producerGroup": "console-pg", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
            "queueId": str(queue_id), "sysFlag": "0", "bornTimestamp": str(int(time.time() * 1000)), "flag": "0",
            "properties": encode_properties(properties), "reconsumeTimes": "0",
        }  # fmt: skip
        return self.invoke(RequestCode.SEND_MESSAGE, ext, body)

    def heartbeat(self, client_id: str, group: str, topic: str) -> None:
        sub = {"classFilterMode": False, "codeSet": [], "expressionType": "TAG", "subString": "*",
               "subVersion": 1, "tagsSet": [], "topic": topic}  # fmt: skip
        consumer = {"consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "consumeType": "CONSUME_PASSIVELY",
                    "groupName": group, "messageModel": "CLUSTERING", "subscriptionDataSet": [sub],
                    "unitMode": False}  # fmt: skip
        body = {"clientID": client_id, "consumerDataSet": [consumer], "producerDataSet": [], "withoutSub": False}
        self.invoke(RequestCode.HEART_BEAT, {}, json.dumps(body).encode())

    def close(self) -> None:
        self.portal.call(self.client.aclose)
        self._portal_cm.__exit__(None, None, None)


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as answer:
            return json.loads(answer.read())

    def topic(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.get("/api/topics") if t["topic"] == name), None)

    def group(self, name: str) -> dict[str, Any]:
        return next(g for g in self.get("/api/groups") if g["group"] == name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketMQ]:
    root = tmp_path_factory.mktemp("console")
    pocketmq = PocketMQ(root / "data")
    pocketmq.start()
    try:
        yield pocketmq
    finally:
        pocketmq.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sent(server: PocketMQ) -> Iterator[dict[str, Any]]:
    """Six messages on queue 0 of ConsoleT (one with a hostile body), a delayed one, a transactional half message
    (no producer of its group is online to resolve it), a group with committed offsets and an online consumer."""
    wire = WireClient(server.broker_port)
    try:
        ids = []
        for i in range(5):
            props = {"KEYS": f"key-{i}", "TAGS": "tagA", "color": "blue"}
            ids.append(wire.send(TOPIC, f"hello {i}".encode(), 0, props).ext_fields["msgId"])
        ids.append(wire.send(TOPIC, HOSTILE.encode(), 0, {"KEYS": "hostile"}).ext_fields["msgId"])
        wire.send("ConsoleLater", b"see you later", 0, {"DELAY": "6", "KEYS": "later-1"})
        wire.send("ConsoleTx", b"half body", 0, {"TRAN_MSG": "true", "PGROUP": "console-tx"})
        for queue_id in range(4):
            commit = {"consumerGroup": GROUP, "topic": TOPIC, "queueId": str(queue_id), "commitOffset": "0"}
            wire.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, {**commit, "commitOffset": "2" if queue_id == 0 else "0"})
        wire.heartbeat("console-client@1", GROUP, TOPIC)
        yield {"ids": ids}
    finally:
        wire.close()


@pytest.fixture(scope="module")
def console(browser: Any, server: PocketMQ, sent: dict[str, Any], artefacts: Path) -> Iterator[Any]:
    base = f"http://127.0.0.1:{server.http_port}"
    browser.get(base + "/")
    yield browser
    assert browser.execute_script("return window.pwned === undefined"), "a message body ran as script"


@pytest.fixture(scope="module")
def api(server: PocketMQ) -> Api:
    return Api(f"http://127.0.0.1:{server.http_port}")


def wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, f"waited {WAIT_S} s for {what}")


def open_page(driver: Any, page: str) -> None:
    driver.execute_script("location.hash = arguments[0]; render();", page)
    wait(driver, lambda d: d.find_element("id", "page").get_attribute("data-page") == page.split("?")[0], page)


def find(driver: Any, css: str) -> Any:
    return wait(driver, lambda d: d.find_elements("css selector", css) and d.find_element("css selector", css), css)


def text_of(driver: Any, css: str) -> str:
    return find(driver, css).text


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}"
        time.sleep(0.1)


def wait_notice(driver: Any, text: str) -> None:
    wait(driver, lambda d: text in d.find_element("id", "notice").text, f"the notice {text!r}")


def shot(driver: Any, artefacts: Path, name: str) -> None:
    driver.save_screenshot(str(artefacts / f"{name}.png"))


def submit(driver: Any, form_css: str, values: dict[str, str]) -> None:
    """Fill a form's fields by name and submit it as a person would (the submit button)."""
    form = find(driver, form_css)
    for name, value in values.items():
        field = form.find_element("css selector", f"[name={name}]")
        if field.tag_name == "select":
            from selenium.webdriver.support.ui import Select

            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
    form.find_element("css selector", "button[type=submit]").click()


def test_broker_page(console: Any, artefacts: Path) -> None:
    open_page(console, "broker")
    assert text_of(console, "[data-stat=broker] .value") == "broker-a"
    assert text_of(console, "[data-stat=cluster] .value") == "DefaultCluster"
    assert text_of(console, "[data-stat=putToday] .value") == "8"
    assert text_of(console, "[data-stat=half] .value") == "1"
    assert text_of(console, "[data-stat=scheduled] .value") == "1"
    assert "KiB" in text_of(console, "[data-stat=storeBytes] .value") or "MiB" in text_of(
        console, "[data-stat=storeBytes] .value"
    )
    assert text_of(console, "#invariants-summary").startswith("0 violations since start")
    assert "orderly_skip" in text_of(console, "#invariant-counts")
    shot(console, artefacts, "broker")


def test_topics_page_lists_creates_and_deletes(console: Any, api: Api, artefacts: Path) -> None:
    open_page(console, "topics")
    row = find(console, f"tr[data-topic={TOPIC}]")
    assert row.find_element("css selector", "[data-col=messages]").text == "6"
    row.find_element("xpath", ".//button[text()='Queues']").click()
    queues = find(console, f"tr[data-queues-of={TOPIC}]")
    assert queues.is_displayed()
    first_queue = queues.find_elements("css selector", ":scope table tbody tr")[0]
    assert [c.text for c in first_queue.find_elements("tag name", "td")] == ["0", "0", "6", "6"]
    shot(console, artefacts, "topics")

    submit(console, "#create-topic", {"topic": "ConsoleMade", "readQueueNums": "2", "writeQueueNums": "2",
                                      "messageType": "NORMAL"})  # fmt: skip
    find(console, "tr[data-topic=ConsoleMade]")
    made = api.topic("ConsoleMade")
    assert made is not None and made["writeQueueNums"] == 2 and made["attributes"] == {"message.type": "NORMAL"}

    find(console, "button[data-delete=ConsoleMade]").click()
    wait(console, lambda d: d.switch_to.alert, "the confirmation").accept()
    eventually(lambda: api.topic("ConsoleMade") is None, "the topic to be deleted")
    wait(console, lambda d: not d.find_elements("css selector", "tr[data-topic=ConsoleMade]"), "the row to go")
    wait_notice(console, "deleted")


def test_groups_page_shows_lag_and_resets(console: Any, api: Api, artefacts: Path) -> None:
    open_page(console, "groups")
    card = find(console, f"[data-group={GROUP}]")
    assert "console-client@1" in card.text
    assert find(console, f"[data-queue='{TOPIC}:0'] [data-col=lag]").text == "4"
    shot(console, artefacts, "groups")

    find(console, f"button[data-skip={GROUP}]").click()
    eventually(lambda: api.group(GROUP)["topics"][0]["lag"] == 0, "the skip to the end")
    wait_notice(console, "skipped to the end")
    wait(console, lambda d: d.find_element("css selector", f"[data-queue='{TOPIC}:0'] [data-col=lag]").text == "0",
         "the page to show no lag")  # fmt: skip

    form = find(console, f"form[data-reset={GROUP}]")
    console.execute_script("arguments[0].value = '2001-01-01T00:00:00'", form.find_element("name", "time"))
    form.find_element("css selector", "button[type=submit]").click()
    eventually(lambda: api.group(GROUP)["topics"][0]["lag"] == 6, "the reset to a time before every message")


def test_messages_page_browses_finds_and_resends(console: Any, api: Api, sent: dict[str, Any],
                                                 artefacts: Path) -> None:  # fmt: skip
    open_page(console, "messages")
    submit(console, "#browse", {"topic": TOPIC, "queueId": "0", "offset": "0"})
    rows = wait(console, lambda d: len(d.find_elements("css selector", "#found tbody tr")) == 6
                and d.find_elements("css selector", "#found tbody tr"), "six browsed messages")  # fmt: skip
    assert rows[1].find_element("css selector", "[data-col=body]").text == "hello 1"
    assert rows[5].find_element("css selector", "[data-col=body]").text == HOSTILE  # shown as text, not run
    shot(console, artefacts, "messages-browse")
    rows[3].find_element("xpath", ".//button[text()='View']").click()
    assert text_of(console, "#body-text") == "hello 3"
    assert text_of(console, "#properties [data-property=color] td:last-child") == "blue"
    assert text_of(console, "#properties [data-property=KEYS] td:last-child") == "key-3"
    shot(console, artefacts, "messages")

    submit(console, "#by-key", {"topic": TOPIC, "key": "key-2"})
    wait(console, lambda d: "key key-2" in d.find_element("id", "results").text, "the key lookup")
    [found] = console.find_elements("css selector", "#found tbody tr")
    assert found.get_attribute("data-msgid") == sent["ids"][2]

    submit(console, "#by-id", {"id": sent["ids"][5]})
    wait(console, lambda d: f"id {sent['ids'][5]}" in d.find_element("id", "results").text, "the id lookup")
    [found] = console.find_elements("css selector", "#found tbody tr")
    found.find_element("xpath", ".//button[text()='View']").click()
    assert text_of(console, "#body-text") == HOSTILE
    before = api.topic(TOPIC)["messages"]
    find(console, "#resend button[type=submit]").click()
    eventually(lambda: api.topic(TOPIC)["messages"] == before + 1, "the resent copy")
    wait_notice(console, "Resent as")


def test_pending_page_shows_the_delayed_and_half_messages(console: Any, artefacts: Path) -> None:
    open_page(console, "pending")
    row = find(console, "#delayed tbody tr")
    assert "ConsoleLater" in row.text and "later-1" in row.text and "see you later" in row.text
    half = find(console, "#half tbody tr")
    assert "console-tx" in half.text and "ConsoleTx" in half.text and "half body" in half.text
    shot(console, artefacts, "pending")


def test_connections_page_shows_language_and_version(console: Any, artefacts: Path) -> None:
    open_page(console, "connections")
    row = find(console, "tr[data-client='console-client@1']")
    assert row.find_element("css selector", "[data-col=language]").text == "PYTHON"
    assert "consumer" in row.text and GROUP in row.text
    shot(console, artefacts, "connections")


def test_send_page_sends_and_the_message_can_be_browsed(console: Any, api: Api, artefacts: Path) -> None:
    open_page(console, "send")
    submit(console, "#send", {"topic": TOPIC, "tags": "fromUi", "keys": "ui-key", "body": "sent from the console",
                              "properties": "origin=browser"})  # fmt: skip
    link = find(console, "#browse-sent")
    shot(console, artefacts, "send")
    [stored] = api.get(f"/api/messages/by-key?topic={TOPIC}&key=ui-key")["messages"]
    assert stored["bodyText"] == "sent from the console" and stored["properties"]["origin"] == "browser"
    link.click()
    browsed = f"{TOPIC} queue {stored['queueId']} from offset {stored['queueOffset']}"
    wait(console, lambda d: browsed in d.find_element("id", "results").text, "the sent message")
    assert text_of(console, "#found [data-col=body]") == "sent from the console"


def test_faults_page_lists_rules_and_removes_them(console: Any, server: PocketMQ, artefacts: Path) -> None:
    from pocketmq.admin_client import AdminClient

    http = AdminClient(f"http://127.0.0.1:{server.http_port}")
    added = http.post("/api/faults", {"code": "SEND_MESSAGE_V2", "topic": "Elsewhere", "respond": "SYSTEM_BUSY"})
    open_page(console, "faults")
    row = find(console, f"tr[data-rule='{added['id']}']")
    assert "respond=SYSTEM_BUSY" in row.text and "topic=Elsewhere" in row.text
    assert row.find_element("css selector", "[data-col=injected]").text == "0"
    grpc = http.post("/api/faults", {"method": "SendMessage", "respond": "TOO_MANY_REQUESTS", "times": 1})
    open_page(console, "faults")
    grpc_row = find(console, f"tr[data-rule='{grpc['id']}']")
    assert grpc_row.text.startswith(f"{grpc['id']} respond (gRPC) method=SendMessage respond=TOO_MANY_REQUESTS")
    http.post("/api/faults/remove", {"id": grpc["id"]})
    open_page(console, "faults")
    row = find(console, f"tr[data-rule='{added['id']}']")
    assert text_of(console, "#trace").startswith("Off")
    shot(console, artefacts, "faults")
    row.find_element("css selector", "button").click()
    wait_notice(console, f"Removed fault rule {added['id']}")
    find(console, "#no-faults")
    assert http.get("/api/faults")["rules"] == []


def columns(row: Any) -> dict[str, str]:
    return {cell.get_attribute("data-col"): cell.text for cell in row.find_elements("css selector", ":scope > td")}


def trace_rows(driver: Any, css: str = "") -> list[Any]:
    return driver.find_elements("css selector", f"#trace-rows tr.trace-row{css}")


def test_trace_page_shows_requests_live(console: Any, server: PocketMQ, api: Api, artefacts: Path) -> None:
    open_page(console, "trace")
    assert text_of(console, "#trace-status").startswith("Off")
    find(console, "#trace-start").click()
    wait_notice(console, "Live trace started")
    wait(console, lambda d: d.find_element("id", "trace-status").text.startswith("On, in memory only"), "on")
    assert api.get("/api/trace")["on"] is True
    wire = WireClient(server.broker_port)
    try:
        wire.send(TOPIC, b"traced live", 1, {"KEYS": "live-1"})
        request_row = find(console, "#trace-rows tr.trace-row[data-dir=request][data-name=SEND_MESSAGE]")
        response_row = find(console, "#trace-rows tr.trace-row[data-dir=response][data-name=SEND_MESSAGE]")
        sent, answer = columns(request_row), columns(response_row)
        assert (sent["proto"], sent["topic"], sent["group"], sent["body"]) == ("remoting", TOPIC, "console-pg", "11")
        assert sent["lang"].startswith("PYTHON") and sent["answer"] == "" and sent["latency"] == ""
        assert (answer["answer"], answer["opaque"], answer["conn"]) == ("SUCCESS (0)", sent["opaque"], sent["conn"])
        assert float(answer["latency"]) >= 0 and answer["time"][:2].isdigit()
        assert len(trace_rows(console)) == 2  # newest first: the answer above its request
        assert trace_rows(console)[0].get_attribute("data-dir") == "response"

        request_row.click()  # its header fields
        assert text_of(console, "tr.trace-detail [data-field=topic] td:last-child") == TOPIC
        assert text_of(console, "tr.trace-detail [data-field=queueId] td:last-child") == "1"
        shot(console, artefacts, "trace")

        filter_box = find(console, "#trace-filter")
        filter_box.send_keys("no-such-topic")
        wait(console, lambda d: not trace_rows(d), "the filter to leave no row")
        filter_box.clear()
        filter_box.send_keys(TOPIC.lower())  # any case
        wait(console, lambda d: len(trace_rows(d)) == 2, "the filtered rows")

        find(console, "#trace-pause").click()
        wire.send(TOPIC, b"while paused", 2, {"KEYS": "live-2", "note": HOSTILE})
        time.sleep(2.5)  # two polls' time: a paused page adds nothing
        assert len(trace_rows(console)) == 2 and "paused" in text_of(console, "#trace-summary")
        find(console, "#trace-pause").click()
        wait(console, lambda d: len(trace_rows(d)) == 4, "the rows sent while paused")
        assert "missed" not in text_of(console, "#trace-summary")
        trace_rows(console, "[data-dir=request]")[0].click()
        assert HOSTILE in text_of(console, "tr.trace-detail [data-field=properties] td:last-child")  # text, not run
    finally:
        wire.close()

    find(console, "#trace-stop").click()
    wait_notice(console, "Trace stopped")
    wait(console, lambda d: d.find_element("id", "trace-status").text.startswith("Off"), "off")
    assert api.get("/api/trace")["on"] is False
    assert len(trace_rows(console)) == 4  # what was seen stays on the page
