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
