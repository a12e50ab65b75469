"""The client x scenario conformance report of pocketmq: docs/conformance.md and compat_tests/conformance.json.

Every compatibility test (``compat_tests/test_*.py``) is mapped to the cells it covers (``CELLS``: a pattern over
its node id -> (client, scenario) pairs). ``compat_tests/conftest.py`` collects the outcome of each compat test of a
pytest run and, at the end of the session, hands them to ``write_report``. A cell is

- ``pass``          when every test mapped to it ran and passed (a test that verified a known bug of the client
                    itself and ended in xfail counts as neither; the bug and ``CELL_NOTES`` caveats are noted);
- ``fail``          when one of them failed (the reason: the first line of its assertion message);
- ``skipped``       when none failed but one was skipped (e.g. the client's toolchain is missing);
- ``not run``       when it has tests but not all of them ran in this session (``-k``, a single file, ``-x``);
- ``not supported`` when the client's own API lacks the feature (``UNSUPPORTED``, with the reason);
- ``no test yet``   when no test covers it. Never reported as a pass.

Script mode runs the whole matrix against pocketmq (each compat module starts its own ``pocketmq up``) and so
rewrites the report; it first checks that every collected compat test maps to at least one cell::

    python compat_tests/conformance.py            # self-check, then python -m pytest compat_tests -q
    python compat_tests/conformance.py --check    # only the self-check (collects, runs nothing)
    python compat_tests/conformance.py -- -k java # extra pytest arguments after --

``POCKETMQ_CONFORMANCE_REPORT=0`` turns the report off for a pytest run (e.g. while iterating on one test).
This module uses the standard library only, so it also runs as a plain script.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOC_PATH = REPO / "docs" / "conformance.md"
JSON_PATH = REPO / "compat_tests" / "conformance.json"
ENV_SWITCH = "POCKETMQ_CONFORMANCE_REPORT"
SCRIPT = "python compat_tests/conformance.py"

# A test outcome, not a cell status: the test checked the signature of a known bug of the client itself and ended
# in pytest.xfail (strict: it fails once the client is fixed). It neither passes nor fails its cells; the cell's
# other tests decide, and the bug is listed in the cell's note.
CLIENT_BUG = "client bug"
PASS, FAIL, SKIPPED, NOT_RUN, UNSUPPORTED_STATUS, NO_TEST = (
    "pass",
    "fail",
    "skipped",
    "not run",
    "not supported",
    "no test yet",
)

# ------------------------------------------------------------------------------------------------ clients


@dataclass(frozen=True)
class Client:
    id: str
    label: str
    package: str
    pin: str  # where the tree pins the version (read by pinned_version)
    role: str = "client"  # "client", or "servers" for the Apache interoperation column


CLIENTS = [
    Client(
        "java-4.9.8", "Java 4.9.8", "Maven org.apache.rocketmq:rocketmq-client 4.9.8", "compat_tests/java_driver.py"
    ),
    Client(
        "java-5.3.3", "Java 5.3.3", "Maven org.apache.rocketmq:rocketmq-client 5.3.3", "compat_tests/java_driver.py"
    ),
    Client("go", "Go", "github.com/apache/rocketmq-client-go/v2", "compat_tests/go/go.mod"),
    Client("cpp", "C++ (rocketmq 0.4.4)", "PyPI rocketmq (bundled librocketmq.so, C++ 1.2.x line)", "pyproject.toml"),
    Client("node", "Node ali-ons", "npm ali-ons", "compat_tests/node/package.json"),
    Client("rust", "Rust", "crates.io rocketmq-client-rust", "compat_tests/rust/Cargo.toml"),
    # The 5.x SDKs speak gRPC to pocketmq's MessagingService endpoint (issue 12; producer roles so far).
    Client("python5", "Python 5.x (gRPC)", "PyPI rocketmq-python-client", "compat_tests/python5/requirements.txt"),
    Client("java5", "Java 5.x (gRPC)", "Maven org.apache.rocketmq:rocketmq-client-java", "compat_tests/java5/pom.xml"),
    Client("node5", "Node 5.x (gRPC)", "npm rocketmq-client-nodejs", "compat_tests/node5/package.json"),
    Client("go5", "Go 5.x (gRPC)", "github.com/apache/rocketmq-clients/golang/v5", "compat_tests/go5/go.mod"),
    Client("rust5", "Rust 5.x (gRPC)", "crates.io rocketmq", "compat_tests/rust5/Cargo.toml"),
]
APACHE = Client(
    "apache-5.3.3", "Apache servers 5.3.3", "Apache RocketMQ name server + broker (Maven Central)", "", role="servers"
)
ALL_CLIENTS = [*CLIENTS, APACHE]
CLIENT_BY_ID = {c.id: c for c in ALL_CLIENTS}


def pinned_version(client: Client) -> str:
    """The version the tree pins for a client, read from its pin file ("" when the file is not there)."""
    if client.id.startswith("java-"):
        return client.id.removeprefix("java-")
    if client.role == "servers":
        return "5.3.3"
    path = REPO / client.pin
    try:
        text = path.read_text()
    except OSError:
        return ""
    patterns = {
        "go": r"rocketmq-client-go/v2\s+(v[\w.\-]+)",
        "cpp": r"\"rocketmq==([\w.]+)",
        "node": r"\"ali-ons\"\s*:\s*\"[=^~]?([\w.\-]+)\"",
        "rust": r"rocketmq-client-rust\s*=\s*\{[^}]*version\s*=\s*\"=?([\w.\-]+)\"",
        "python5": r"rocketmq-python-client==([\w.]+)",
        "java5": r"<rocketmq\.client\.java\.version>([\w.\-]+)<",
        "go5": r"rocketmq-clients/golang/v5\s+(v[\w.\-]+)",
        "node5": r"\"rocketmq-client-nodejs\"\s*:\s*\"[=^~]?([\w.\-]+)\"",
        "rust5": r"(?m)^rocketmq\s*=\s*\"=?([\w.\-]+)\"",
    }
    m = re.search(patterns[client.id], text)
    return m.group(1) if m else ""


# ------------------------------------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Scenario:
    id: str
    label: str
    section: str  # "issue" (the scenarios of the conformance issue), "extra", "testing", "cross", "interop"


SCENARIOS = [
    Scenario("sync-send", "Sync send", "issue"),
    Scenario("async-send", "Async send", "issue"),
    Scenario("oneway-send", "Oneway send", "issue"),
    Scenario("batch-send", "Batch send", "issue"),
    Scenario("tag-filter", "Tag filter", "issue"),
    Scenario("sql92-filter", "SQL92 property filter", "issue"),
    Scenario("orderly", "Ordered send + orderly consume", "issue"),
    Scenario("delay-level", "Delay level", "issue"),
    Scenario("delivery-time", "Exact delivery time", "issue"),
    Scenario("tx-commit", "Transaction commit", "issue"),
    Scenario("tx-rollback", "Transaction rollback", "issue"),
    Scenario("tx-check", "Transaction check", "issue"),
    Scenario("broadcast", "Broadcast", "issue"),
    Scenario("retry", "Retry (%RETRY%)", "issue"),
    Scenario("dlq", "Dead letter (%DLQ%)", "issue"),
    Scenario("request-reply", "Request-reply", "issue"),
    Scenario("pull-consumer", "Pull / lite-pull consumer", "issue"),
    Scenario("query-key", "Message query by key", "issue"),
    Scenario("query-id", "Message query by id", "issue"),
    # What the compat tests cover beyond the list.
    Scenario("large-bodies", "Large and compressed bodies", "extra"),
    Scenario("auto-create", "Topic auto-creation (TBW102)", "extra"),
    Scenario("clustering", "Clustering: a group shares the queues", "extra"),
    Scenario("offsets-resume", "Committed offsets resume (and a broker restart)", "extra"),
    Scenario("no-server", "Fails cleanly without a server", "extra"),
    Scenario("grpc-tls", "gRPC over TLS (the port also takes plaintext)", "extra"),
    Scenario("grpc-to-remoting", "Sent over gRPC, read back intact over remoting", "extra"),
    Scenario("remoting-to-grpc", "Sent over remoting, received intact over gRPC", "extra"),
    Scenario("grpc-simple-consumer", "5.x SimpleConsumer: receive, ack, redelivery when not acked", "extra"),
    Scenario("grpc-push-consumer", "5.x PushConsumer: listener results, retries", "extra"),
    Scenario("grpc-recall", "RecallMessage: a timed message recalled before its time", "extra"),
    # Operating and testing features, seen through the stock clients (ACL, issue 13; the testing tools, issue 14).
    Scenario("acl", "ACL 1.0: signed requests served, a wrong secret refused", "testing"),
    Scenario("virtual-clock", "Virtual clock: a delayed message due after `pocketmq clock advance`", "testing"),
    Scenario("fault-injection", "Fault rules: injected errors and the client's retries", "testing"),
    Scenario("protocol-trace", "Protocol trace of the client's frames", "testing"),
    Scenario("invariant-check", "Invariant checker: order broken on purpose is caught", "testing"),
    Scenario("ready-file", "Started from `pocketmq up --ready-file` (harness example)", "testing"),
    # Interoperation of pocketmq's servers with Apache's (column APACHE).
    Scenario("interop-broker", "pocketmq broker registered with an Apache name server", "interop"),
    Scenario("interop-namesrv", "Apache broker registered with the pocketmq name server", "interop"),
]
# Cross-client: a message sent by client P is consumed intact by client C; the cell is (C, "cross-from:P").
CROSS_PREFIX = "cross-from:"
SCENARIOS += [Scenario(f"{CROSS_PREFIX}{p.id}", f"sent by {p.label}", "cross") for p in CLIENTS]
SCENARIO_BY_ID = {s.id: s for s in SCENARIOS}


def cells_of(client: Client) -> list[str]:
    """The scenario ids that make up a client's column."""
    if client.role == "servers":
        return [s.id for s in SCENARIOS if s.section == "interop"]
    out = [s.id for s in SCENARIOS if s.section in ("issue", "extra", "testing")]
    out += [f"{CROSS_PREFIX}{p.id}" for p in CLIENTS if p.id != client.id]
    return out


# ------------------------------------------------------------------------------------------------ test -> cells

Cell = tuple[str, str]  # (client id, scenario id)


def _java_cells() -> list[tuple[str, list[Cell]]]:
    out: list[tuple[str, list[Cell]]] = []
    for v in ("4.9.8", "5.3.3"):
        j = f"java-{v}"
        out += [
            (
                f"test_java.py::test_send_modes_then_push_consume[{j}]",
                [(j, "sync-send"), (j, "async-send"), (j, "oneway-send"), (j, "batch-send")],
            ),
            (f"test_java.py::test_large_and_compressed_bodies[{j}]", [(j, "large-bodies")]),
            (f"test_java.py::test_tag_subscription[{j}]", [(j, "tag-filter")]),
            (f"test_java.py::test_auto_create_topic[{j}]", [(j, "auto-create")]),
            (f"test_java.py::test_consumer_survives_broker_restart[{j}]", [(j, "offsets-resume")]),
            (f"test_java_delay.py::test_delay_levels[{j}]", [(j, "delay-level")]),
            (f"test_java_groups.py::test_orderly_single_consumer[{j}]", [(j, "orderly")]),
            (f"test_java_groups.py::test_orderly_group_change[{j}]", [(j, "orderly")]),
            (f"test_java_groups.py::test_clustering_three_consumers[{j}]", [(j, "clustering")]),
            (f"test_java_groups.py::test_retry_after_reconsume_later[{j}]", [(j, "retry")]),
            (f"test_java_groups.py::test_dead_letter_after_max_reconsume[{j}]", [(j, "dlq")]),
            (f"test_java_groups.py::test_broadcasting_three_consumers[{j}]", [(j, "broadcast")]),
            (f"test_java_transactions.py::test_commit_is_consumed_exactly_once[{j}]", [(j, "tx-commit")]),
            (f"test_java_transactions.py::test_rollback_is_never_consumed[{j}]", [(j, "tx-rollback")]),
            (f"test_java_features.py::test_sql92_filter[{j}]", [(j, "sql92-filter")]),
            (f"test_java_features.py::test_sql92_invalid_expression[{j}]", [(j, "sql92-filter")]),
            (f"test_java_features.py::test_request_reply_callback[{j}]", [(j, "request-reply")]),
            # On 5.3.3 this test checks the client's known sync-request bug and ends in xfail (see CLIENT_BUG).
            (f"test_java_features.py::test_request_reply_sync[{j}]", [(j, "request-reply")]),
            (
                f"test_java_features.py::test_lite_pull_subscribe_offsets_resume[{j}]",
                [(j, "pull-consumer"), (j, "offsets-resume")],
            ),
            (f"test_java_features.py::test_lite_pull_assign_seek[{j}]", [(j, "pull-consumer")]),
            (
                f"test_java_features.py::test_pull_consumer_offsets_resume[{j}]",
                [(j, "pull-consumer"), (j, "offsets-resume")],
            ),
            (f"test_java_features.py::test_query_by_key_and_id[{j}]", [(j, "query-key"), (j, "query-id")]),
            (f"test_java_features.py::test_no_server[{j}]", [(j, "no-server")]),
        ]
        for name in (
            "test_unknown_then_check_commits",
            "test_check_rollback_and_check_max",
            "test_check_immunity_time",
            "test_local_commit_after_check_commit",
            "test_producer_killed_new_producer_answers_check",
            "test_broker_killed_with_pending_half_messages",
        ):
            out.append((f"test_java_transactions.py::{name}[{j}]", [(j, "tx-check")]))
    out += [
        ("test_java_delay.py::test_deliver_time_ms[java-5.3.3]", [("java-5.3.3", "delivery-time")]),
        # Checks that the 4.x driver reports the API gap instead of sending something else.
        (
            "test_java_delay.py::test_deliver_time_ms_is_unsupported_on_4x[java-4.9.8]",
            [("java-4.9.8", "delivery-time")],
        ),
        (
            "test_java_delay.py::test_pending_messages_survive_a_broker_restart[*-java-5.3.3]",
            [("java-5.3.3", "delay-level"), ("java-5.3.3", "delivery-time")],
        ),
    ]
    return out


# Patterns: "<module file>::<test name>[<param id>]"; "*" is the only wildcard. Matched against the node id without
# its directory. A pattern whose module is not in compat_tests/ (yet) is inert: its cells say "no test yet".
_GRPC_SENDS = ("sync-send", "grpc-to-remoting")  # 5.x sends read back by a remoting pull
# compat_tests/grpc_consumer.py's scenarios, run by each 5.x module as test_consumer_scenario[<name>].
_GRPC_CONSUMER_SCENARIOS = {
    "simple_round_trip": ("sync-send", "grpc-simple-consumer"),
    "tag_and_sql_filters": ("tag-filter", "sql92-filter"),
    "fifo_group_in_order": ("orderly",),
    "delay_not_before_due": ("delivery-time",),
    "delay_recalled_before_due": ("delivery-time", "grpc-recall"),
    "transactions_commit_rollback": ("tx-commit", "tx-rollback", "tx-check"),
    "push_retries_after_failure": ("retry", "grpc-push-consumer"),
    "push_dead_letter_after_max_attempts": ("dlq", "grpc-push-consumer"),
    "redelivered_when_not_acked": ("grpc-simple-consumer",),
    "remoting_send_received_over_grpc": ("remoting-to-grpc",),
}


def _grpc_consumer_tests(without: frozenset[str] = frozenset()) -> list[tuple[str, tuple[str, ...]]]:
    """The scenarios' test names and cells; ``without``: those a client's module does not run (API it lacks)."""
    return [
        (f"test_consumer_scenario[{name}]", cells)
        for name, cells in _GRPC_CONSUMER_SCENARIOS.items()
        if name not in without
    ]


# The grpc_consumer scenarios test_rust5.py leaves out: rocketmq 5.0.0 has no PushConsumer and no recall.
_RUST5_NOT_RUN = frozenset(
    {"push_retries_after_failure", "push_dead_letter_after_max_attempts", "delay_recalled_before_due"}
)


CELLS: list[tuple[str, list[Cell]]] = [
    *_java_cells(),
    *[
        (f"{module}::{name}", [(client, scenario) for scenario in scenarios])
        for module, client, tests in (
            (
                "test_python5.py",
                "python5",
                [
                    ("test_sends_with_the_default_settings_are_stored_intact", _GRPC_SENDS),
                    ("test_tls_with_the_certificate_pocketmq_made", ("grpc-tls",)),
                    ("test_a_message_group_is_stored_in_one_queue_in_send_order", ("grpc-to-remoting",)),
                    ("test_a_delivery_time_holds_the_message_until_then", ("delivery-time",)),
                    ("test_transactions_commit_rollback_and_back_check", ("tx-commit", "tx-rollback", "tx-check")),
                    ("test_no_server_is_a_clean_error", ("no-server",)),
                    ("test_pop_state_survives_kill_9", ("offsets-resume", "grpc-simple-consumer")),
                    *_grpc_consumer_tests(),
                ],
            ),
            (
                "test_java5.py",
                "java5",
                [
                    ("test_sends_with_the_default_settings_tls_are_stored_intact", (*_GRPC_SENDS, "grpc-tls")),
                    ("test_plaintext_sends_are_stored_intact", _GRPC_SENDS),
                    ("test_a_message_group_is_stored_in_one_queue_in_send_order", ("grpc-to-remoting",)),
                    ("test_a_delivery_timestamp_holds_the_message_until_then", ("delivery-time",)),
                    ("test_transactions_commit_rollback_and_back_check", ("tx-commit", "tx-rollback", "tx-check")),
                    ("test_no_server_is_a_clean_error", ("no-server",)),
                    *_grpc_consumer_tests(),
                ],
            ),
            (
                "test_go5.py",
                "go5",
                [
                    ("test_sends_with_the_default_settings_tls_are_stored_intact", (*_GRPC_SENDS, "grpc-tls")),
                    ("test_plaintext_sends_are_stored_intact", _GRPC_SENDS),
                    ("test_a_message_group_is_stored_in_one_queue_in_send_order", ("grpc-to-remoting",)),
                    ("test_a_delivery_timestamp_holds_the_message_until_then", ("delivery-time",)),
                    ("test_transactions_commit_rollback_and_back_check", ("tx-commit", "tx-rollback", "tx-check")),
                    ("test_no_server_is_a_clean_error", ("no-server",)),
                    *_grpc_consumer_tests(),
                ],
            ),
            (
                "test_node5.py",
                "node5",
                [
                    ("test_sends_with_the_default_settings_plaintext_are_stored_intact", _GRPC_SENDS),
                    ("test_tls_sends_are_stored_intact", (*_GRPC_SENDS, "grpc-tls")),
                    ("test_tls_without_trusting_the_self_signed_certificate_is_a_clean_error", ("grpc-tls",)),
                    ("test_a_message_group_is_stored_in_one_queue_in_send_order", ("grpc-to-remoting",)),
                    ("test_a_delivery_timestamp_holds_the_message_until_then", ("delivery-time",)),
                    ("test_transactions_commit_rollback_and_back_check", ("tx-commit", "tx-rollback", "tx-check")),
                    ("test_no_server_is_a_clean_error", ("no-server",)),
                    *_grpc_consumer_tests(),
                ],
            ),
            (
                "test_rust5.py",
                "rust5",
                [
                    ("test_sends_with_the_default_settings_plaintext_are_stored_intact", _GRPC_SENDS),
                    ("test_tls_sends_are_stored_intact", (*_GRPC_SENDS, "grpc-tls")),
                    ("test_tls_without_trusting_the_self_signed_certificate_is_a_clean_error", ("grpc-tls",)),
                    ("test_a_message_group_is_stored_in_one_queue_in_send_order", ("grpc-to-remoting",)),
                    ("test_a_delivery_timestamp_holds_the_message_until_then", ("delivery-time",)),
                    ("test_transactions_commit_rollback_and_back_check", ("tx-commit", "tx-rollback", "tx-check")),
                    ("test_no_server_is_a_clean_error", ("no-server",)),
                    ("test_recall_and_push_consumer_are_reported_as_missing", ("grpc-recall", "grpc-push-consumer")),
                    *_grpc_consumer_tests(_RUST5_NOT_RUN),
                ],
            ),
        )
        for name, scenarios in tests
    ],
    ("test_go.py::test_send_mode[sync]", [("go", "sync-send")]),
    ("test_go.py::test_send_mode[async]", [("go", "async-send")]),
    ("test_go.py::test_send_mode[oneway]", [("go", "oneway-send")]),
    ("test_go.py::test_send_mode[batch]", [("go", "batch-send")]),
    ("test_go.py::test_tag_filter", [("go", "tag-filter")]),
    ("test_go.py::test_sql92_filter", [("go", "sql92-filter")]),
    ("test_go.py::test_orderly", [("go", "orderly")]),
    ("test_go.py::test_delay_level", [("go", "delay-level")]),
    ("test_go.py::test_broadcast", [("go", "broadcast")]),
    ("test_go.py::test_retry", [("go", "retry")]),
    ("test_go.py::test_dead_letter", [("go", "dlq")]),
    ("test_go.py::test_request_reply", [("go", "request-reply")]),
    ("test_go.py::test_pull_consumer", [("go", "pull-consumer")]),
    ("test_go.py::test_large_and_compressed_bodies", [("go", "large-bodies")]),
    ("test_go.py::test_auto_create_topic", [("go", "auto-create")]),
    ("test_go.py::test_clustering", [("go", "clustering")]),
    ("test_go.py::test_offsets_resume", [("go", "offsets-resume")]),
    ("test_go.py::test_no_server", [("go", "no-server")]),
    ("test_go_transactions.py::test_commit_is_consumed_once", [("go", "tx-commit")]),
    ("test_go_transactions.py::test_rollback_is_never_consumed", [("go", "tx-rollback")]),
    ("test_go_transactions.py::test_unknown_then_check_commits_once", [("go", "tx-check")]),
    ("test_go_transactions.py::test_killed_producer_is_checked_through_a_new_process", [("go", "tx-check")]),
    ("test_cpp.py::test_send_modes_then_push_consume[sync]", [("cpp", "sync-send")]),
    ("test_cpp.py::test_send_modes_then_push_consume[async]", [("cpp", "async-send")]),
    ("test_cpp.py::test_send_modes_then_push_consume[oneway]", [("cpp", "oneway-send")]),
    ("test_cpp.py::test_send_modes_then_push_consume[batch]", [("cpp", "batch-send")]),
    ("test_cpp.py::test_send_modes_then_push_consume[orderly]", [("cpp", "orderly")]),
    ("test_cpp.py::test_large_and_compressed_bodies", [("cpp", "large-bodies")]),
    # 0.4.4 zlib-compresses a batch body over 4 KiB (sysFlag 1): a batch that is also a compressed body.
    ("test_cpp.py::test_compressed_batch_of_100_messages", [("cpp", "batch-send"), ("cpp", "large-bodies")]),
    ("test_cpp.py::test_tag_subscription", [("cpp", "tag-filter")]),
    ("test_cpp.py::test_auto_created_topic", [("cpp", "auto-create")]),
    ("test_cpp.py::test_consumer_group_survives_broker_restart", [("cpp", "offsets-resume")]),
    ("test_cpp.py::test_driver_fails_cleanly_without_server", [("cpp", "no-server")]),
    ("test_cpp.py::test_reconsume_later_redelivers", [("cpp", "retry")]),
    ("test_cpp.py::test_delay_level", [("cpp", "delay-level")]),
    ("test_cpp.py::test_orderly_send_and_orderly_consume", [("cpp", "orderly")]),
    ("test_cpp_groups.py::test_orderly_one_consumer_keeps_per_key_order", [("cpp", "orderly")]),
    ("test_cpp_groups.py::test_orderly_rebalance_join_and_leave", [("cpp", "orderly")]),
    ("test_cpp_groups.py::test_clustering_three_consumers_share_10000", [("cpp", "clustering")]),
    ("test_cpp_groups.py::test_dead_letter_after_default_retries", [("cpp", "dlq")]),
    ("test_cpp_groups.py::test_broadcasting_three_consumers_each_get_all", [("cpp", "broadcast")]),
    ("test_node.py::test_sync_send_roundtrip", [("node", "sync-send"), ("node", "large-bodies")]),
    ("test_node.py::test_tag_subscription", [("node", "tag-filter")]),
    ("test_node.py::test_delay_level", [("node", "delay-level")]),
    ("test_node.py::test_start_deliver_time", [("node", "delivery-time")]),
    ("test_node.py::test_broadcast", [("node", "broadcast")]),
    ("test_node.py::test_retry_after_failure", [("node", "retry")]),
    ("test_node.py::test_offsets_resume", [("node", "offsets-resume")]),
    ("test_node.py::test_sql92_subscription", [("node", "sql92-filter")]),
    ("test_node.py::test_dead_letter_after_max_reconsume_times", [("node", "dlq")]),
    ("test_node.py::test_clustering_three_consumers_share_the_queues", [("node", "clustering")]),
    ("test_node.py::test_producer_without_server_fails_cleanly", [("node", "no-server")]),
    # Producer#send returns a promise at once and resolves on the broker's answer: RocketMQ's async send.
    ("test_node.py::test_concurrent_sends", [("node", "async-send")]),
    ("test_cpp_pull.py::test_pull_consumer_reads_each_queue_in_order[*]", [("cpp", "pull-consumer")]),
    # compat_tests/test_rust.py (rocketmq-client-rust).
    (
        "test_rust.py::test_sync_sends_with_tags_keys_properties_and_1mib_bodies[*]",
        [("rust", "sync-send"), ("rust", "large-bodies")],
    ),
    ("test_rust.py::test_tag_subscription_or", [("rust", "tag-filter")]),
    ("test_rust.py::test_batch_send", [("rust", "batch-send")]),
    ("test_rust.py::test_sql92_subscription", [("rust", "sql92-filter")]),
    ("test_rust.py::test_async_and_oneway_sends[async]", [("rust", "async-send")]),
    ("test_rust.py::test_async_and_oneway_sends[oneway]", [("rust", "oneway-send")]),
    ("test_rust.py::test_ordered_send_and_orderly_consume", [("rust", "orderly")]),
    ("test_rust.py::test_delay_level", [("rust", "delay-level")]),
    ("test_rust.py::test_deliver_time", [("rust", "delivery-time")]),
    ("test_rust.py::test_broadcast", [("rust", "broadcast")]),
    ("test_rust.py::test_auto_create_topic", [("rust", "auto-create")]),
    ("test_rust.py::test_clustering_shares_queues", [("rust", "clustering")]),
    ("test_rust.py::test_committed_offsets_resume_in_a_new_process", [("rust", "offsets-resume")]),
    ("test_rust.py::test_lite_pull_consumer", [("rust", "pull-consumer")]),
    ("test_rust.py::test_query_by_key_and_id", [("rust", "query-key"), ("rust", "query-id")]),
    ("test_rust.py::test_request_reply", [("rust", "request-reply")]),
    ("test_rust.py::test_no_server_fails_cleanly", [("rust", "no-server")]),
    ("test_rust.py::test_reconsume_later_redelivers", [("rust", "retry")]),
    ("test_rust.py::test_dead_letter_queue", [("rust", "dlq")]),
    ("test_rust.py::test_transaction_commit", [("rust", "tx-commit")]),
    ("test_rust.py::test_transaction_rollback", [("rust", "tx-rollback")]),
    ("test_rust.py::test_transaction_unknown_is_checked", [("rust", "tx-check")]),
    (
        "test_apache_interop.py::test_pocketmq_broker_registers_with_apache_namesrv",
        [("apache-5.3.3", "interop-broker")],
    ),
    ("test_apache_interop.py::test_apache_broker_*", [("apache-5.3.3", "interop-namesrv")]),
    ("test_apache_interop.py::test_topic_created_on_apache_broker_*", [("apache-5.3.3", "interop-namesrv")]),
    ("test_apache_interop.py::test_message_round_trip_through_apache_broker_*", [("apache-5.3.3", "interop-namesrv")]),
    ("test_apache_interop.py::test_pocketmq_namesrv_logged_no_errors", [("apache-5.3.3", "interop-namesrv")]),
    ("test_acl.py::test_java_*", [("java-4.9.8", "acl")]),
    *[
        (f"test_acl.py::test_{name}_*", [(client, "acl")])
        for name, client in (("go", "go"), ("cpp", "cpp"), ("node", "node"), ("rust", "rust"))
    ],
    (
        "test_virtual_clock.py::test_a_java_two_hour_delay_arrives_after_pocketmq_clock_advance",
        [("java-4.9.8", "virtual-clock")],
    ),
    ("test_faults_trace.py::test_go_producer_under_injected_send_errors", [("go", "fault-injection")]),
    ("test_faults_trace.py::test_trace_of_a_cpp_send_round_trip", [("cpp", "protocol-trace")]),
    ("test_grpc_faults.py::test_java5_*", [("java5", "fault-injection")]),
    *[
        (
            f"test_java_groups.py::test_an_orderly_skip_forced_by_a_fault_is_caught[java-{v}]",
            [(f"java-{v}", "invariant-check"), (f"java-{v}", "fault-injection")],
        )
        for v in ("4.9.8", "5.3.3")
    ],
    ("test_ready_file_examples.py::test_the_java_processbuilder_example", [("java-5.3.3", "ready-file")]),
    ("test_ready_file_examples.py::test_the_go_exec_example", [("go", "ready-file")]),
    # compat_tests/test_cross_client.py: one test per ordered pair of distinct clients.
    *[
        (f"test_cross_client.py::test_consumed_intact[{p.id}-to-{c.id}]", [(c.id, f"{CROSS_PREFIX}{p.id}")])
        for p in CLIENTS
        for c in CLIENTS
        if p.id != c.id
    ],
]

# What a client's own API lacks (the client version the tree pins). Sources: the clients' APIs, checked in the
# installed packages (rocketmq 0.4.4's client.py and its librocketmq.so exports, ali-ons 3.12.0's lib/,
# rocketmq-client-go v2.1.2) and /work/shared/protocol/clients.md sections 2-6.
_CPP_API = "the 0.4.4 wrapper (rocketmq/client.py) and the C API its librocketmq.so exports"
_CPP_NO_TX = f"no transaction producer in {_CPP_API} (no CreateTransactionProducer, no check callback)"
_NODE_NO_TX = (
    "ali-ons 3.12.0 has no transaction producer (lib/producer: send only; no END_TRANSACTION nor check handler)"
)
UNSUPPORTED: dict[Cell, str] = {
    ("java-4.9.8", "delivery-time"): (
        "4.x Message has setDelayTimeLevel only; setDeliverTimeMs / setDelayTimeSec / setDelayTimeMs came with 5.x"
    ),
    ("go", "delivery-time"): "v2.1.2 primitive.Message has WithDelayTimeLevel only: no delivery-timestamp option",
    ("go", "query-key"): (
        "v2.1.2 has no message query API: ReqQueryMessage (12) is declared in internal/request.go but no producer, "
        "consumer or admin method sends it"
    ),
    ("go", "query-id"): (
        "v2.1.2 has no view-message API: ReqViewMessageByID (33) is declared in internal/request.go but no producer, "
        "consumer or admin method sends it"
    ),
    ("cpp", "sql92-filter"): (
        "PushConsumer.subscribe(topic, callback, expression) / C Subscribe(consumer, topic, expression) take a tag "
        "expression only: no selector type, so no SQL92"
    ),
    ("cpp", "delivery-time"): "Message has set_delay_time_level only: no delivery-time setter",
    ("cpp", "tx-commit"): _CPP_NO_TX,
    ("cpp", "tx-rollback"): _CPP_NO_TX,
    ("cpp", "tx-check"): _CPP_NO_TX,
    ("cpp", "request-reply"): f"no request-reply in {_CPP_API}",
    ("cpp", "query-key"): f"no message query in {_CPP_API}",
    ("cpp", "query-id"): f"no view-message-by-id in {_CPP_API}",
    (
        "node",
        "oneway-send",
    ): (
        "Producer#send always awaits the SEND_MESSAGE_V2 response; the only one-way call in lib/mq_client_api.js is "
        "UPDATE_CONSUMER_OFFSET"
    ),
    (
        "node",
        "batch-send",
    ): "Producer#send takes one Message; lib/mq_client_api.js never sends SEND_BATCH_MESSAGE (320)",
    (
        "node",
        "orderly",
    ): (
        "ordered send only: Message#shardingKey picks a queue by md5 (lib/producer/topic_publish_info.js), but the "
        "push consumer never locks queues (no LOCK_BATCH_MQ) and sends a failed message back to %RETRY%, so there is "
        "no orderly consume"
    ),
    ("node", "tx-commit"): _NODE_NO_TX,
    ("node", "tx-rollback"): _NODE_NO_TX,
    ("node", "tx-check"): _NODE_NO_TX,
    ("node", "request-reply"): "no request-reply API",
    (
        "node",
        "pull-consumer",
    ): "lib/index.js exports Producer, Consumer (push) and Message only: no pull or lite-pull consumer",
    ("node", "query-key"): "no query API: QUERY_MESSAGE (12) is never sent (lib/mq_client_api.js)",
    (
        "node",
        "query-id",
    ): "no view-message API: viewMessage is commented out in lib/mq_client_api.js and lib/consumer/mq_push_consumer.js",
    ("node", "auto-create"): (
        "cannot send to a topic that does not exist yet: its first route lookup throws on the name server's "
        "TOPIC_NOT_EXIST (Apache's answer too) before its TBW102 fallback runs (lib/mq_client_api.js); "
        "test_node.py creates every topic first"
    ),
}
_RUST5_CRATE = "rocketmq 5.0.0 (crates.io)"
UNSUPPORTED.update(
    {
        ("rust5", "grpc-push-consumer"): (
            f"{_RUST5_CRATE} has no PushConsumer: src/lib.rs exports Producer and SimpleConsumer only "
            "(test_rust5.py checks that its driver reports so)"
        ),
        ("rust5", "grpc-recall"): (
            f"{_RUST5_CRATE} has no recall: its SendReceipt carries a message id and a transaction id only (no recall "
            "handle) and Producer has no recall method (test_rust5.py checks that its driver refuses a recall)"
        ),
    }
)
# The remoting clients do not speak gRPC (the 5.x SDKs below do).
_GRPC_ONLY = (
    "grpc-tls", "grpc-to-remoting", "remoting-to-grpc", "grpc-simple-consumer", "grpc-push-consumer", "grpc-recall",
)  # fmt: skip
UNSUPPORTED.update(
    {
        (client.id, scenario): "a remoting client: gRPC is the 5.x SDKs' protocol"
        for client in CLIENTS
        if client.id not in ("python5", "java5", "node5", "go5", "rust5")
        for scenario in _GRPC_ONLY
    }
)


# Caveats of passing cells: what the client itself does that the cell's tests work around or check for.
_CPP_BODY_CUT = (
    "the 0.4.4 C API hands a consumer the body as a NUL-terminated string (GetMessageBody, no length getter): the "
    "C++ consumer is checked on the body up to its first NUL, and on every body without a NUL in full"
)
CELL_NOTES: dict[Cell, str] = {
    ("go", "request-reply"): (
        "v2.1.2's Request looks the topic up at the name server instead of its route table and so sends no heartbeat "
        "before its first request, which then times out (against Apache's broker too; its examples/consumer/rpc "
        "sleeps): the driver sends one warm-up request first. consumer.CreateReplyMessage drops the body and "
        "RequestAsync calls back twice: the driver sets the body and guards the callback"
    ),
    ("rust", "clustering"): (
        "rocketmq-client-rust 1.0.0's concurrent listener runs on a bounded pool (2 running + 8 queued per core); a "
        "message that finds no slot is sent back for retry without reaching the listener "
        "(rocketmq-runtime src/blocking/policy.rs, consume_message_concurrently_service.rs): the tests keep a "
        "consumer's bursts below it"
    ),
    **{("cpp", f"cross-from:{c.id}"): _CPP_BODY_CUT for c in CLIENTS if c.id != "cpp"},
}


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")


_COMPILED = [(_compile(p), p, cells) for p, cells in CELLS]


def short_id(nodeid: str) -> str:
    """``compat_tests/test_x.py::test_y[p]`` -> ``test_x.py::test_y[p]`` (whatever the rootdir)."""
    module, sep, rest = nodeid.partition("::")
    return module.rsplit("/", 1)[-1] + sep + rest


def module_present(pattern: str) -> bool:
    return (REPO / "compat_tests" / pattern.partition("::")[0]).is_file()


def cells_for(nodeid: str) -> list[Cell]:
    key = short_id(nodeid)
    out: list[Cell] = []
    for rx, _, cells in _COMPILED:
        if rx.match(key):
            out += [c for c in cells if c not in out]
    return out


# Tests that belong to no cell of the client matrix: a client against Apache's own servers (the baseline of a
# differential run, proving a driver and pinning down what Apache does), and the admin tool (issue 13's table; its
# shared JVM).
APACHE_BASELINE_MODULES = frozenset({"test_python5_vs_apache.py", "test_mqadmin.py", "test_mqadmin_runner.py"})


def is_compat_test(nodeid: str) -> bool:
    module = nodeid.partition("::")[0].replace("\\", "/")
    name = module.rsplit("/", 1)[-1]
    return "compat_tests/" in f"/{module}" and name.startswith("test_") and name not in APACHE_BASELINE_MODULES


def _check_tables() -> None:
    for _, cells in CELLS:
        for client, scenario in cells:
            assert client in CLIENT_BY_ID and scenario in SCENARIO_BY_ID, (client, scenario)
    for client, scenario in UNSUPPORTED:
        assert client in CLIENT_BY_ID and scenario in SCENARIO_BY_ID, (client, scenario)


_check_tables()

# ------------------------------------------------------------------------------------------------ outcomes


@dataclass
class Outcome:
    outcome: str = PASS  # pass / fail / skipped / client bug
    reason: str = ""
    duration: float = 0.0


def first_line(text: str, limit: int = 300) -> str:
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


@dataclass
class Recorder:
    """What one pytest session did with the compat tests: collected node ids and each test's outcome."""

    collected: list[str] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    note: str = ""  # what the session wrote, for the terminal summary
    commit_at_start: str = ""

    def collect(self, nodeid: str) -> None:
        if is_compat_test(nodeid) and nodeid not in self.collected:
            self.collected.append(nodeid)

    def record(self, report: Any) -> None:
        """A pytest TestReport (setup, call or teardown phase). Failed beats skipped beats passed."""
        nodeid = report.nodeid
        if not is_compat_test(nodeid):
            return
        out = self.outcomes.get(nodeid)
        if out is None:
            out = self.outcomes[nodeid] = Outcome(outcome="")
        out.duration += float(getattr(report, "duration", 0.0) or 0.0)
        if report.failed:
            if out.outcome != FAIL:
                out.outcome = FAIL
                reason = _failure_reason(report)
                out.reason = reason if report.when == "call" else f"error in {report.when}: {reason}"
        elif report.skipped and getattr(report, "wasxfail", None) is not None:
            if out.outcome in ("", PASS):
                out.outcome = CLIENT_BUG
                out.reason = _skip_reason(report)
        elif report.skipped:
            if out.outcome in ("", PASS, CLIENT_BUG):
                out.outcome = SKIPPED
                out.reason = _skip_reason(report)
        elif report.when == "call" and out.outcome == "":
            out.outcome = PASS

    def finished(self) -> dict[str, Outcome]:
        """Outcomes of the tests that got a result (a test whose setup passed but never reported a call is left out)."""
        return {k: v for k, v in self.outcomes.items() if v.outcome}


def _failure_reason(report: Any) -> str:
    if getattr(report, "wasxfail", None) is not None:
        return f"unexpectedly passed (xfail: {report.wasxfail})"
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return first_line(crash.message)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return first_line(longrepr[2])
    return first_line(str(longrepr)) or "failed"


def _skip_reason(report: Any) -> str:
    if getattr(report, "wasxfail", None) is not None:
        return f"xfail: {report.wasxfail}"
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return first_line(text).removeprefix("Skipped: ")


# ------------------------------------------------------------------------------------------------ the matrix


def build_matrix(collected: Iterable[str], outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """The report as data: every cell of every column with its status, tests and reasons."""
    collected = list(collected)
    tests_of: dict[Cell, list[str]] = {}
    for nodeid in [*collected, *[n for n in outcomes if n not in collected]]:
        for cell in cells_for(nodeid):
            tests_of.setdefault(cell, []).append(nodeid)
    mapped_patterns = {c for p, cells in CELLS if module_present(p) for c in cells}

    columns: dict[str, dict[str, Any]] = {}
    for client in ALL_CLIENTS:
        cells: dict[str, Any] = {}
        for scenario in cells_of(client):
            cell = (client.id, scenario)
            tests = tests_of.get(cell, [])
            entry: dict[str, Any] = {
                "tests": [
                    {
                        "id": short_id(t),
                        "outcome": outcomes[t].outcome if t in outcomes else NOT_RUN,
                        **({"reason": outcomes[t].reason} if t in outcomes and outcomes[t].reason else {}),
                    }
                    for t in tests
                ]
            }
            status, reasons = _cell_status(cell, tests, outcomes, cell in mapped_patterns)
            entry["status"] = status
            if reasons:
                entry["reasons"] = reasons
            if cell in UNSUPPORTED:
                entry["unsupported"] = UNSUPPORTED[cell]
            cells[scenario] = entry
        counts = {s: 0 for s in (PASS, FAIL, UNSUPPORTED_STATUS, NO_TEST, NOT_RUN, SKIPPED)}
        for scenario, entry in cells.items():
            if SCENARIO_BY_ID[scenario].section != "cross":
                counts[entry["status"]] += 1
        cross = {s: 0 for s in counts}
        for scenario, entry in cells.items():
            if SCENARIO_BY_ID[scenario].section == "cross":
                cross[entry["status"]] += 1
        columns[client.id] = {
            "label": client.label,
            "package": client.package,
            "version": pinned_version(client),
            "role": client.role,
            "counts": counts,
            **({"cross_client_counts": cross} if client.role == "client" else {}),
            "cells": cells,
        }
    ran = [n for n in outcomes]
    unmapped = sorted(
        {short_id(n) for n in [*collected, *ran] if not cells_for(n)},
    )
    return {"columns": columns, "unmapped_tests": unmapped, "compat_tests_run": len(ran)}


def _cell_status(
    cell: Cell, tests: list[str], outcomes: dict[str, Outcome], has_pattern: bool
) -> tuple[str, list[str]]:
    results = [outcomes.get(t) for t in tests]
    failed = [f"{short_id(t)}: {o.reason}" for t, o in zip(tests, results, strict=True) if o and o.outcome == FAIL]
    if failed:
        return FAIL, failed
    if cell in UNSUPPORTED:
        return UNSUPPORTED_STATUS, []
    if not tests:
        # A cell with a test pattern whose test was not collected in this session was not run; one without is
        # simply not covered yet.
        return (NOT_RUN, []) if has_pattern else (NO_TEST, [])
    missing = sum(o is None for o in results)
    if missing == len(tests):
        return NOT_RUN, []
    if missing:
        return NOT_RUN, [f"only {len(tests) - missing} of its {len(tests)} tests ran in this session"]
    skipped = [f"{short_id(t)}: {o.reason}" for t, o in zip(tests, results, strict=True) if o and o.outcome == SKIPPED]
    if skipped:
        return SKIPPED, skipped
    bugs = [
        f"known client bug, verified by {short_id(t)}: {o.reason.removeprefix('xfail: ')}"
        for t, o in zip(tests, results, strict=True)
        if o and o.outcome == CLIENT_BUG
    ]
    if bugs and len(bugs) == len(tests):
        return SKIPPED, bugs
    notes = [CELL_NOTES[cell]] if cell in CELL_NOTES else []
    return PASS, notes + bugs


# ------------------------------------------------------------------------------------------------ writing


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def pocketmq_commit() -> str:
    """HEAD, with " + uncommitted changes" when tracked files (other than the report's own) differ from it."""
    commit = git("rev-parse", "HEAD")
    if not commit:
        return "unknown"
    generated = {str(p.relative_to(REPO)) for p in (DOC_PATH, JSON_PATH)}
    dirty = [
        line[3:]
        for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
        if line[3:].strip() not in generated
    ]
    return commit + (" + uncommitted changes" if dirty else "")


TIMES = "\u00d7"
SYMBOL = {
    PASS: "✅ pass",
    FAIL: "❌ **fail**",
    SKIPPED: "⚠️ skipped",
    NOT_RUN: "⏸ not run",
    UNSUPPORTED_STATUS: "\u2796 not supported",
    NO_TEST: "· no test yet",
}


def write_report(
    collected: Iterable[str],
    outcomes: dict[str, Outcome],
    doc_path: Path = DOC_PATH,
    json_path: Path = JSON_PATH,
    command: str = "",
    now: datetime.datetime | None = None,
    commit_at_start: str = "",
) -> dict[str, Any]:
    """Write docs/conformance.md and compat_tests/conformance.json from one session's outcomes; return the data.

    ``commit_at_start``: pocketmq_commit() when the session began (the tree can change while a long run goes on)."""
    now = now or datetime.datetime.now(datetime.UTC)
    matrix = build_matrix(collected, outcomes)
    data = {
        "generated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pocketmq_commit": commit_at_start or pocketmq_commit(),
        **({"pocketmq_commit_at_end": end} if (end := pocketmq_commit()) != (commit_at_start or end) else {}),
        "python": sys.version.split()[0],
        "command": command,
        "statuses": list(SYMBOL),
        "scenarios": [{"id": s.id, "label": s.label, "section": s.section} for s in SCENARIOS],
        **matrix,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    doc_path.write_text(render_markdown(data))
    return data


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(data: dict[str, Any]) -> str:
    cols = data["columns"]
    clients = [c for c in CLIENTS if c.id in cols]
    notes: list[str] = []
    note_of: dict[Cell, int] = {}

    def cell_text(client: Client, scenario: str) -> str:
        entry = cols[client.id]["cells"][scenario]
        text = SYMBOL[entry["status"]]
        if entry["status"] in (FAIL, SKIPPED, UNSUPPORTED_STATUS) or (
            entry["status"] in (NOT_RUN, PASS) and entry.get("reasons")
        ):
            n = note_of.setdefault((client.id, scenario), len(notes) + 1)
            if n == len(notes) + 1:
                label = SCENARIO_BY_ID[scenario].label
                if SCENARIO_BY_ID[scenario].section == "cross":
                    label = f"consumes a message {label}"
                why = entry.get("reasons") or [entry.get("unsupported", "")]
                tested = ""
                if entry["status"] == UNSUPPORTED_STATUS and entry["tests"]:
                    tested = " (checked by " + ", ".join(f"`{t['id']}`: {t['outcome']}" for t in entry["tests"]) + ")"
                body = "; ".join(_md(w) for w in why if w)
                notes.append(f"{n}. **{client.label} {TIMES} {_md(label)}** — {entry['status']}: {body}{tested}")
            text += f" [{n}](#n{n})"
        return text

    lines = [
        "# Conformance report: stock RocketMQ clients against pocketmq",
        "",
        "<!-- Generated by compat_tests/conformance.py from a pytest run of compat_tests; do not edit by hand. -->",
        "",
        f"Generated **{data['generated']}** from pocketmq commit `{data['pocketmq_commit']}` "
        + (
            f"(the tree was at `{data['pocketmq_commit_at_end']}` when the run ended) "
            if data.get("pocketmq_commit_at_end")
            else ""
        )
        + f"(Python {data['python']}), {data['compat_tests_run']} compat tests run"
        + (f" by `{data['command']}`" if data.get("command") else "")
        + ".",
        "",
        f"Regenerate: `{SCRIPT}` (runs `python -m pytest compat_tests -q` against pocketmq servers it starts, after "
        "checking that every compat test maps to a cell). Any pytest run of compat tests rewrites this file and "
        "`compat_tests/conformance.json` unless `POCKETMQ_CONFORMANCE_REPORT=0`; cells whose tests a partial run "
        "(`-k`, one file) did not run say *not run*.",
        "",
        "A cell passes only when every test mapped to it passed (the mapping is `CELLS` in "
        "`compat_tests/conformance.py`); a test that verifies a known bug of the client itself (expected failure) "
        "counts neither way and is named in the cell's note, as are other caveats of a passing cell. "
        "*not supported* means the client's own API lacks the feature "
        "(`UNSUPPORTED`, reasons in the notes); *no test yet* means nothing tests it yet, whether or not pocketmq "
        "implements it.",
        "",
        "## Clients",
        "",
        "| Client | Package | Version | pass | fail | not supported | no test yet | not run | skipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for client in [*clients, APACHE]:
        col = cols[client.id]
        c = col["counts"]
        lines.append(
            f"| {client.label} | {_md(col['package'])} | {col['version'] or '(not pinned in this tree)'} | "
            f"{c[PASS]} | {c[FAIL]} | {c[UNSUPPORTED_STATUS]} | {c[NO_TEST]} | {c[NOT_RUN]} | {c[SKIPPED]} |"
        )
    lines += [
        "",
        "Counts are over the scenario rows below (issue scenarios and additional ones; the Apache column over its "
        "interoperation rows); cross-client cells are counted in their own table.",
        "",
        "## Scenarios",
        "",
        "| Scenario | " + " | ".join(c.label for c in clients) + " |",
        "|---|" + "---|" * len(clients),
    ]
    for section, title in (
        ("issue", None),
        ("extra", "*Additional scenarios*"),
        ("testing", "*Operating and testing features*"),
    ):
        if title:
            lines.append(f"| {title} |" + " |" * len(clients))
        for s in SCENARIOS:
            if s.section == section:
                lines.append(f"| {_md(s.label)} | " + " | ".join(cell_text(c, s.id) for c in clients) + " |")
    lines += [
        "",
        "## Cross-client",
        "",
        "A message sent by the row's client, consumed intact by the column's client.",
        "",
        "| Sent by \\ consumed by | " + " | ".join(c.label for c in clients) + " |",
        "|---|" + "---|" * len(clients),
    ]
    for producer in clients:
        row = [
            "—" if producer.id == consumer.id else cell_text(consumer, f"{CROSS_PREFIX}{producer.id}")
            for consumer in clients
        ]
        lines.append(f"| {producer.label} | " + " | ".join(row) + " |")
    lines += [
        "",
        "| Cross-client, per consuming client | pass | fail | not supported | no test yet | not run | skipped |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for client in clients:
        c = cols[client.id]["cross_client_counts"]
        lines.append(
            f"| {client.label} | {c[PASS]} | {c[FAIL]} | {c[UNSUPPORTED_STATUS]} | {c[NO_TEST]} | {c[NOT_RUN]} | "
            f"{c[SKIPPED]} |"
        )
    lines += [
        "",
        "## Interoperation with Apache RocketMQ servers",
        "",
        f"| Scenario | {APACHE.label} |",
        "|---|---|",
    ]
    for s in SCENARIOS:
        if s.section == "interop":
            lines.append(f"| {_md(s.label)} | {cell_text(APACHE, s.id)} |")
    lines += ["", "## Notes", ""]
    for i, note in enumerate(notes, 1):
        lines.append(f'<a id="n{i}"></a>')
        lines.append(note)
    if not notes:
        lines.append("None.")
    if data["unmapped_tests"]:
        lines += ["", "## Compat tests mapped to no cell", ""]
        lines += [f"- `{t}`" for t in data["unmapped_tests"]]
    lines += ["", "## Tests behind each cell", "", "<details><summary>Every mapped test and its outcome</summary>", ""]
    for client in [*clients, APACHE]:
        for scenario, entry in cols[client.id]["cells"].items():
            if not entry["tests"]:
                continue
            label = SCENARIO_BY_ID[scenario].label
            tests = ", ".join(f"`{t['id']}` {t['outcome']}" for t in entry["tests"])
            lines.append(f"- {client.label} {TIMES} {_md(label)}: {tests}")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ script mode


def collect_compat_tests(extra: list[str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "compat_tests", "--collect-only", "-q", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, ENV_SWITCH: "0"},
    )
    ids = [ln.strip() for ln in proc.stdout.splitlines() if "::" in ln and not ln.startswith(" ")]
    if proc.returncode not in (0, 5) or not ids:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"collecting compat_tests failed (pytest exit {proc.returncode})")
    return ids


def self_check(ids: list[str]) -> bool:
    """Every collected compat test maps to a cell; every pattern matches a collected test. True when all is well."""
    unmapped = [i for i in ids if is_compat_test(i) and not cells_for(i)]  # Apache baselines map to no cell
    keys = [short_id(i) for i in ids]
    stale = [p for rx, p, _ in _COMPILED if module_present(p) and not any(rx.match(k) for k in keys)]
    absent = sorted({p.partition("::")[0] for _, p, _ in _COMPILED if not module_present(p)})
    print(f"conformance self-check: {len(ids)} compat tests collected, {len(ids) - len(unmapped)} mapped to cells")
    for i in unmapped:
        print(f"  UNMAPPED test (add it to CELLS in compat_tests/conformance.py): {i}")
    for p in stale:
        print(f"  pattern matching no collected test (renamed or not collected here?): {p}")
    if absent:
        print(f"  (patterns for modules not in this tree, inert: {', '.join(absent)})")
    return not unmapped


def main(argv: list[str]) -> int:
    check_only = "--check" in argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    ok = self_check(collect_compat_tests(extra))
    if check_only:
        return 0 if ok else 1
    command = " ".join([SCRIPT, *(["--", *extra] if extra else [])])
    env = {**os.environ, ENV_SWITCH: "1", "POCKETMQ_CONFORMANCE_COMMAND": command}
    cmd = [sys.executable, "-m", "pytest", "compat_tests", "-q", *extra]
    print("running:", " ".join(cmd[2:]), flush=True)
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    print(f"report: {DOC_PATH.relative_to(REPO)}, {JSON_PATH.relative_to(REPO)} (pytest exit {rc})")
    return rc if ok else (rc or 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
