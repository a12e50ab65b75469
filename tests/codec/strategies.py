"""Hypothesis strategies for codec objects."""

from __future__ import annotations

from hypothesis import strategies as st

from codec.codes import SerializeType
from codec.command import RemotingCommand
from codec.record import StoredMessage

# Property names/values exclude the two separators and must be non-empty to survive a round trip.
prop_text = st.text(
    alphabet=st.characters(blacklist_characters="\x01\x02", blacklist_categories=["Cs"]), min_size=1, max_size=12
)
topics = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-%|", min_size=1, max_size=200
)
ipv4 = st.ip_addresses(v=4).map(str)
any_ip = st.ip_addresses().map(str)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
port = st.integers(0, 65535)


def properties() -> st.SearchStrategy[str]:
    return st.dictionaries(prop_text, prop_text, max_size=6).map(
        lambda d: "".join(f"{k}\x01{v}\x02" for k, v in d.items())
    )


@st.composite
def stored_messages(draw: st.DrawFn, hosts: st.SearchStrategy[str] = any_ip) -> StoredMessage:
    return StoredMessage(
        topic=draw(topics),
        queue_id=draw(int32),
        body=draw(st.binary(max_size=300)),
        properties=draw(properties()),
        flag=draw(int32),
        sys_flag=draw(st.integers(0, 0xF) | st.sampled_from([0x300, 0x301])),
        queue_offset=draw(int64),
        phys_offset=draw(int64),
        born_timestamp=draw(int64),
        born_host=draw(hosts),
        born_port=draw(port),
        store_timestamp=draw(int64),
        store_host=draw(hosts),
        store_port=draw(port),
        reconsume_times=draw(int32),
        prepared_transaction_offset=draw(int64),
    )


ext_key = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=10)
ext_value = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30)


@st.composite
def commands(draw: st.DrawFn, serialize_type: SerializeType | None = None) -> RemotingCommand:
    stype = serialize_type if serialize_type is not None else draw(st.sampled_from(list(SerializeType)))
    remark = draw(st.none() | ext_value)
    return RemotingCommand(
        code=draw(st.integers(-32768, 32767) if stype == SerializeType.ROCKETMQ else int32),
        opaque=draw(int32),
        flag=draw(st.integers(0, 3)),
        remark=remark,
        ext_fields=draw(st.dictionaries(ext_key, ext_value, max_size=5)),
        body=draw(st.binary(max_size=200)),
        language=draw(st.sampled_from(["JAVA", "CPP", "GO", "RUST", "OTHER"])),
        version=draw(st.integers(-32768, 32767)),
        serialize_type=stype,
    )
