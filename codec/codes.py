"""Every protocol constant in one place: request and response codes, languages, flag bits, permissions.

Values follow Apache RocketMQ's RequestCode, ResponseCode, LanguageCode, MessageSysFlag, PullSysFlag and
PermName (see ../shared/protocol/codes.md and messages.md).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class RequestCode(IntEnum):
    SEND_MESSAGE = 10
    PULL_MESSAGE = 11
    QUERY_MESSAGE = 12
    QUERY_CONSUMER_OFFSET = 14
    UPDATE_CONSUMER_OFFSET = 15
    UPDATE_AND_CREATE_TOPIC = 17
    GET_ALL_TOPIC_CONFIG = 21
    GET_BROKER_RUNTIME_INFO = 28
    UPDATE_BROKER_CONFIG = 25
    GET_BROKER_CONFIG = 26
    SEARCH_OFFSET_BY_TIMESTAMP = 29
    GET_MAX_OFFSET = 30
    GET_MIN_OFFSET = 31
    GET_EARLIEST_MSG_STORETIME = 32
    VIEW_MESSAGE_BY_ID = 33
    HEART_BEAT = 34
    UNREGISTER_CLIENT = 35
    CONSUMER_SEND_MSG_BACK = 36
    END_TRANSACTION = 37
    CHECK_TRANSACTION_STATE = 39
    GET_CONSUMER_LIST_BY_GROUP = 38
    NOTIFY_CONSUMER_IDS_CHANGED = 40
    LOCK_BATCH_MQ = 41
    UNLOCK_BATCH_MQ = 42
    CHECK_CLIENT_CONFIG = 46
    PUT_KV_CONFIG = 100
    GET_KV_CONFIG = 101
    DELETE_KV_CONFIG = 102
    REGISTER_BROKER = 103
    UNREGISTER_BROKER = 104
    GET_ROUTEINFO_BY_TOPIC = 105
    GET_BROKER_CLUSTER_INFO = 106
    UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200
    GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201
    GET_TOPIC_STATS_INFO = 202
    GET_CONSUMER_CONNECTION_LIST = 203
    GET_PRODUCER_CONNECTION_LIST = 204
    WIPE_WRITE_PERM_OF_BROKER = 205
    DELETE_SUBSCRIPTIONGROUP = 207
    GET_CONSUME_STATS = 208
    RESET_CONSUMER_CLIENT_OFFSET = 220
    INVOKE_BROKER_TO_RESET_OFFSET = 222
    QUERY_TOPIC_CONSUME_BY_WHO = 300
    CLEAN_EXPIRED_CONSUMEQUEUE = 306
    GET_CONSUMER_RUNNING_INFO = 307
    CONSUME_MESSAGE_DIRECTLY = 309
    VIEW_BROKER_STATS_DATA = 315
    GET_BROKER_CONSUME_STATS = 317
    DELETE_EXPIRED_COMMITLOG = 329
    GET_NAMESRV_CONFIG = 319
    QUERY_CONSUME_QUEUE = 321
    ADD_WRITE_PERM_OF_BROKER = 327
    GET_TOPIC_CONFIG = 351
    GET_BROKER_HA_STATUS = 907
    DELETE_TOPIC_IN_BROKER = 215
    GET_ALL_TOPIC_LIST_FROM_NAMESERVER = 206
    DELETE_TOPIC_IN_NAMESRV = 216
    GET_KVLIST_BY_NAMESPACE = 219
    GET_TOPICS_BY_CLUSTER = 224
    SEND_MESSAGE_V2 = 310
    SEND_BATCH_MESSAGE = 320
    SEND_REPLY_MESSAGE = 324
    SEND_REPLY_MESSAGE_V2 = 325
    PUSH_REPLY_MESSAGE_TO_CLIENT = 326
    LITE_PULL_MESSAGE = 361


class ResponseCode(IntEnum):
    SUCCESS = 0
    SYSTEM_ERROR = 1
    SYSTEM_BUSY = 2
    REQUEST_CODE_NOT_SUPPORTED = 3
    TRANSACTION_FAILED = 4
    FLUSH_DISK_TIMEOUT = 10
    SLAVE_NOT_AVAILABLE = 11
    FLUSH_SLAVE_TIMEOUT = 12
    MESSAGE_ILLEGAL = 13
    SERVICE_NOT_AVAILABLE = 14
    VERSION_NOT_SUPPORTED = 15
    NO_PERMISSION = 16
    TOPIC_NOT_EXIST = 17
    TOPIC_EXIST_ALREADY = 18
    PULL_NOT_FOUND = 19
    PULL_RETRY_IMMEDIATELY = 20
    PULL_OFFSET_MOVED = 21
    QUERY_NOT_FOUND = 22
    SUBSCRIPTION_PARSE_FAILED = 23
    SUBSCRIPTION_NOT_EXIST = 24
    SUBSCRIPTION_NOT_LATEST = 25
    SUBSCRIPTION_GROUP_NOT_EXIST = 26
    INVALID_PARAMETER = 29
    CONSUMER_NOT_ONLINE = 206
    CONSUME_MSG_TIMEOUT = 207
    ILLEGAL_OPERATION = 604


class LanguageCode(IntEnum):
    JAVA = 0
    CPP = 1
    DOTNET = 2
    PYTHON = 3
    DELPHI = 4
    ERLANG = 5
    RUBY = 6
    OTHER = 7
    HTTP = 8
    GO = 9
    PHP = 10
    OMS = 11
    RUST = 12
    NODE_JS = 13


class SerializeType(IntEnum):
    JSON = 0
    ROCKETMQ = 1


class MessageSysFlag(IntFlag):
    COMPRESSED = 0x1
    MULTI_TAGS = 0x2
    TRANSACTION_PREPARED = 0x4
    TRANSACTION_COMMIT = 0x8
    TRANSACTION_ROLLBACK = 0xC
    BORNHOST_V6 = 0x10
    STOREHOST_V6 = 0x20


TRANSACTION_TYPE_MASK = 0xC
# sysFlag bits 8-10: how a compressed body is compressed (MessageSysFlag.COMPRESSION_TYPE_COMPARATOR).
COMPRESSION_TYPE_MASK = 0x700
COMPRESSION_TYPE_SHIFT = 8


class CompressionType(IntEnum):
    """The value of the compression-type bits (CompressionType); 0, written by older clients, means ZLIB."""

    LZ4 = 1
    ZSTD = 2
    ZLIB = 3


class PullSysFlag(IntFlag):
    COMMIT_OFFSET = 0x1
    SUSPEND = 0x2
    SUBSCRIPTION = 0x4
    CLASS_FILTER = 0x8
    LITE_PULL = 0x10


class Perm(IntFlag):
    INHERIT = 1
    WRITE = 2
    READ = 4
    PRIORITY = 8


# Remoting command flag bits (RemotingCommand).
FLAG_RESPONSE = 0x1
FLAG_ONEWAY = 0x2

# The MQVersion ordinal put in every response we send (V5_3_3); must be >= 232 for SQL92 clients.
SERVER_VERSION = 479

MAX_FRAME_SIZE_DEFAULT = 16 * 1024 * 1024
MAX_MESSAGE_SIZE_DEFAULT = 4 * 1024 * 1024
MAX_PROPERTIES_SIZE = 32767

# Well-known property names (MessageConst).
PROPERTY_TAGS = "TAGS"
PROPERTY_KEYS = "KEYS"
PROPERTY_UNIQ_KEY = "UNIQ_KEY"
PROPERTY_CLUSTER = "CLUSTER"
PROPERTY_MSG_REGION = "MSG_REGION"
PROPERTY_TRACE_ON = "TRACE_ON"
PROPERTY_DELAY = "DELAY"
PROPERTY_TRAN_MSG = "TRAN_MSG"
PROPERTY_RECONSUME_TIME = "RECONSUME_TIME"
PROPERTY_MAX_RECONSUME_TIMES = "MAX_RECONSUME_TIMES"
PROPERTY_POP_CK = "POP_CK"
KEY_SEPARATOR = " "

DEFAULT_REGION = "DefaultRegion"

# Topics with special meaning.
AUTO_CREATE_TOPIC = "TBW102"
RETRY_GROUP_TOPIC_PREFIX = "%RETRY%"
DLQ_GROUP_TOPIC_PREFIX = "%DLQ%"
REPLY_TOPIC_SUFFIX = "_REPLY_TOPIC"
TOPIC_MAX_LENGTH = 127
RETRY_TOPIC_MAX_LENGTH = 255

MASTER_ID = 0

# Deferred delivery (ScheduleMessageService, TimerMessageStore).
PROPERTY_REAL_TOPIC = "REAL_TOPIC"
PROPERTY_REAL_QUEUE_ID = "REAL_QID"
PROPERTY_WAIT = "WAIT"
PROPERTY_TIMER_DELIVER_MS = "TIMER_DELIVER_MS"
PROPERTY_TIMER_DELAY_SEC = "TIMER_DELAY_SEC"
PROPERTY_TIMER_DELAY_MS = "TIMER_DELAY_MS"
PROPERTY_START_DELIVER_TIME = "__STARTDELIVERTIME"  # TDMQ / Aliyun ONS clients
SCHEDULE_TOPIC = "SCHEDULE_TOPIC_XXXX"
TIMER_TOPIC = "rmq_sys_wheel_timer"
DEFAULT_DELAY_LEVELS = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
DEFAULT_TIMER_MAX_DELAY_MS = 40 * 24 * 3600 * 1000  # TDMQ's limit

# Retries and dead letters (MixAll, MessageConst).
PROPERTY_RETRY_TOPIC = "RETRY_TOPIC"
PROPERTY_ORIGIN_MESSAGE_ID = "ORIGIN_MESSAGE_ID"
DEFAULT_MAX_RECONSUME_TIMES = 16  # SubscriptionGroupConfig.retryMaxTimes
MIN_VERSION_HONOURING_MAX_RECONSUME_TIMES = 121  # MQVersion V3_4_9
RETRY_BASE_DELAY_LEVEL = 3  # a send-back without a level is delayed by level 3 + reconsumeTimes

# Transactions (TransactionalMessageUtil, MessageConst).
HALF_TOPIC = "RMQ_SYS_TRANS_HALF_TOPIC"
PROPERTY_PRODUCER_GROUP = "PGROUP"
PROPERTY_TRANSACTION_CHECK_TIMES = "TRANSACTION_CHECK_TIMES"
PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS = "CHECK_IMMUNITY_TIME_IN_SECONDS"
PROPERTY_TRANSACTION_ID = "__transactionId__"
TRANSACTION_NOT_TYPE = 0
TRANSACTION_COMMIT_TYPE = 0x8
TRANSACTION_ROLLBACK_TYPE = 0xC
DEFAULT_TRANSACTION_TIMEOUT_MS = 6_000  # transactionTimeOut
DEFAULT_TRANSACTION_CHECK_INTERVAL_MS = 30_000  # transactionCheckInterval
DEFAULT_TRANSACTION_CHECK_MAX = 15  # transactionCheckMax

# System topics (TopicValidator). Admin requests may neither create nor delete a system topic
# (validateSystemTopicWhenUpdateTopic); a broker also counts its cluster name, its broker name and
# "<cluster>_REPLY_TOPIC" as system topics (TopicConfigManager.init registers them).
SYSTEM_TOPIC_PREFIX = "rmq_sys_"
TRANS_OP_HALF_TOPIC = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
TRANS_CHECK_MAX_TIME_TOPIC = "TRANS_CHECK_MAX_TIME_TOPIC"
SELF_TEST_TOPIC = "SELF_TEST_TOPIC"
OFFSET_MOVED_EVENT_TOPIC = "OFFSET_MOVED_EVENT"
SYSTEM_TOPIC_SET = frozenset(
    {
        AUTO_CREATE_TOPIC,
        SCHEDULE_TOPIC,
        "BenchmarkTest",
        HALF_TOPIC,
        "RMQ_SYS_TRACE_TOPIC",
        TRANS_OP_HALF_TOPIC,
        TRANS_CHECK_MAX_TIME_TOPIC,
        SELF_TEST_TOPIC,
        OFFSET_MOVED_EVENT_TOPIC,
        "CHECKPOINT_TOPIC",
    }
)
# Topics producers may not send to (TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET), plus the timer topic, where
# pocketmq keeps pending timer messages under its own due-time index.
NOT_ALLOWED_SEND_TOPICS = frozenset(
    {
        SCHEDULE_TOPIC,
        HALF_TOPIC,
        TRANS_OP_HALF_TOPIC,
        TRANS_CHECK_MAX_TIME_TOPIC,
        SELF_TEST_TOPIC,
        OFFSET_MOVED_EVENT_TOPIC,
        TIMER_TOPIC,
    }
)

# Request-reply (MessageConst, ReplyMessageProcessor).
PROPERTY_MESSAGE_TYPE = "MSG_TYPE"
PROPERTY_REPLY_TO_CLIENT = "REPLY_TO_CLIENT"
PROPERTY_CORRELATION_ID = "CORRELATION_ID"
PROPERTY_PUSH_REPLY_TIME = "PUSH_REPLY_TIME"
REPLY_MESSAGE_TYPE = "reply"
PUSH_REPLY_TIMEOUT_S = 3.0

# Properties the 5.x proxy sets from a gRPC message's system properties (MessageConst).
PROPERTY_SHARDING_KEY = "__SHARDINGKEY"  # the message group of a FIFO message
PROPERTY_TRACE_CONTEXT = "TRACE_CONTEXT"
PROPERTY_BORN_HOST = "__BORNHOST"
PROPERTY_BORN_TIMESTAMP = "BORN_TIMESTAMP"
# User properties may not use these names (MessageConst.STRING_HASH_SET, checked by the proxy on gRPC sends).
SYSTEM_PROPERTY_NAMES = frozenset(
    [
        "TRACE_ON",
        "MSG_REGION",
        "KEYS",
        "TAGS",
        "WAIT",
        "DELAY",
        "RETRY_TOPIC",
        "REAL_TOPIC",
        "REAL_QID",
        "TRAN_MSG",
        "PGROUP",
        "MIN_OFFSET",
        "MAX_OFFSET",
        "BUYER_ID",
        "ORIGIN_MESSAGE_ID",
        "TRANSFER_FLAG",
        "CORRECTION_FLAG",
        "MQ2_FLAG",
        "RECONSUME_TIME",
        "UNIQ_KEY",
        "MAX_RECONSUME_TIMES",
        "CONSUME_START_TIME",
        "POP_CK",
        "POP_CK_OFFSET",
        "1ST_POP_TIME",
        "TRAN_PREPARED_QUEUE_OFFSET",
        "DUP_INFO",
        "EXTEND_UNIQ_INFO",
        "INSTANCE_ID",
        "CORRELATION_ID",
        "REPLY_TO_CLIENT",
        "TTL",
        "ARRIVE_TIME",
        "PUSH_REPLY_TIME",
        "CLUSTER",
        "MSG_TYPE",
        "INNER_MULTI_QUEUE_OFFSET",
        "TIMER_DELAY_MS",
        "TIMER_DELAY_SEC",
        "TIMER_DELIVER_MS",
        "TIMER_ENQUEUE_MS",
        "TIMER_DEQUEUE_MS",
        "TIMER_ROLL_TIMES",
        "TIMER_OUT_MS",
        "TIMER_DEL_UNIQKEY",
        "TIMER_DELAY_LEVEL",
        "__BORNHOST",
        "BORN_TIMESTAMP",
        "DLQ_ORIGIN_TOPIC",
        "DLQ_ORIGIN_MESSAGE_ID",
        "__CRC32#",
    ]
)


# ACL 1.0 (acl/common: SessionCredentials, Permission, AclConstants; MixAll.UNIQUE_MSG_QUERY_FLAG).
ACL_ACCESS_KEY_FIELD = "AccessKey"  # ext field a signing client adds to every request
ACL_SIGNATURE_FIELD = "Signature"
ACL_SECURITY_TOKEN_FIELD = "SecurityToken"
UNIQUE_MSG_QUERY_FLAG = "_UNIQUE_KEY_QUERY"  # ext field left out of the signed content, as the broker does
TRACE_TOPIC = "RMQ_SYS_TRACE_TOPIC"
ACL_MIN_KEY_LENGTH = 6  # accessKey and secretKey must be longer than this


class AclPerm(IntFlag):
    """Permission bits of an ACL resource (Permission.DENY/ANY/PUB/SUB)."""

    DENY = 1
    ANY = 2
    PUB = 4
    SUB = 8


# Request codes only an admin account may send (Permission.ADMIN_CODE).
ACL_ADMIN_CODES = frozenset(
    {
        RequestCode.UPDATE_AND_CREATE_TOPIC,
        RequestCode.UPDATE_BROKER_CONFIG,
        RequestCode.DELETE_TOPIC_IN_BROKER,
        RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        RequestCode.DELETE_SUBSCRIPTIONGROUP,
    }
)
ACL_EXCEPTION_CLASS = "org.apache.rocketmq.acl.common.AclException"  # the refusal remark starts with its name

# 5.x gRPC call metadata naming the client (MessagingService calls carry them; Apache's proxy reads the same).
GRPC_CLIENT_ID_METADATA = "x-mq-client-id"
GRPC_LANGUAGE_METADATA = "x-mq-language"
GRPC_CLIENT_VERSION_METADATA = "x-mq-client-version"
# The apache.rocketmq.v2.MessagingService methods the broker serves (gateway.grpc.service; fault rules name them).
GRPC_METHODS = (
    "QueryRoute", "Heartbeat", "SendMessage", "Telemetry", "NotifyClientTermination", "EndTransaction",
    "QueryAssignment", "ReceiveMessage", "AckMessage", "ChangeInvisibleDuration", "ForwardMessageToDeadLetterQueue",
    "PullMessage", "UpdateOffset", "GetOffset", "QueryOffset", "RecallMessage",
)  # fmt: skip

# Sends whose header uses single-letter field names (SendMessageRequestHeaderV2): "a" producerGroup, "b" topic.
SEND_V2_REQUEST_CODES = frozenset(
    {RequestCode.SEND_MESSAGE_V2, RequestCode.SEND_BATCH_MESSAGE, RequestCode.SEND_REPLY_MESSAGE_V2}
)
# Header fields that name a request's group, by request kind (consumers, producers, admin requests).
GROUP_HEADER_FIELDS = ("consumerGroup", "producerGroup", "group")
