"""Message properties: ``name\\x01value\\x02`` pairs in one string (MessageDecoder.messageProperties2String)."""

from __future__ import annotations

NAME_VALUE_SEPARATOR = "\x01"
PROPERTY_SEPARATOR = "\x02"


def decode_properties(text: str) -> dict[str, str]:
    """Parse a property string as Java does: keep segments with a non-empty name and a non-empty value."""
    props: dict[str, str] = {}
    for segment in text.split(PROPERTY_SEPARATOR):
        name, sep, value = segment.partition(NAME_VALUE_SEPARATOR)
        if sep and name and value:
            props[name] = value
    return props


def encode_properties(props: dict[str, str]) -> str:
    """Serialise properties with a separator after every pair, as Java writes them."""
    return "".join(f"{name}{NAME_VALUE_SEPARATOR}{value}{PROPERTY_SEPARATOR}" for name, value in props.items())


def append_properties(text: str, extra: dict[str, str]) -> str:
    """Add pairs to an existing property string without re-encoding what is there (keeps it byte for byte)."""
    if not extra:
        return text
    if text and not text.endswith(PROPERTY_SEPARATOR):
        text += PROPERTY_SEPARATOR
    return text + encode_properties(extra)


def remove_properties(text: str, names: set[str] | frozenset[str]) -> str:
    """Drop the pairs with these names, keeping every other pair byte for byte."""
    kept = [seg for seg in text.split(PROPERTY_SEPARATOR) if seg.partition(NAME_VALUE_SEPARATOR)[0] not in names]
    return PROPERTY_SEPARATOR.join(kept)


def query_keys(props: dict[str, str]) -> tuple[str, ...]:
    """The keys QUERY_MESSAGE finds a message by: its space-separated KEYS values, then its UNIQ_KEY."""
    keys_value = props.get("KEYS")
    uniq = props.get("UNIQ_KEY")
    if keys_value is None:  # the common case: a UNIQ_KEY only
        return (uniq,) if uniq else ()
    keys = [k for k in keys_value.split(" ") if k]
    if uniq:
        keys.append(uniq)
    return tuple(dict.fromkeys(keys))
