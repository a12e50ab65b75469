"""What the broker needs from the properties of each batch item: is it delayed, its tags code, its query keys.

The items of one batch almost always differ only in their UNIQ_KEY. That pair is cut out and what is left (the
item's shape) is parsed once and cached, so an item costs a few byte searches instead of a dict of its
properties. Anything unusual (a second UNIQ_KEY, the name found inside another pair) takes the general parser.
tests/codec proves the result equal to ``decode_properties`` + ``query_keys`` + ``tags_code`` for any input.
"""

from __future__ import annotations

from codec.codes import PROPERTY_DELAY, PROPERTY_TAGS, PROPERTY_UNIQ_KEY
from codec.properties import decode_properties, query_keys
from codec.tags import tags_code

_UNIQ_PAIR = f"{PROPERTY_UNIQ_KEY}\x01".encode()
_VALUE_AT = len(_UNIQ_PAIR)
_SEPARATOR = 0x02
_SHAPES_KEPT = 1024

# (delayed, tags code, query keys) of a property string: delayed is a DELAY level other than 0.
Facts = tuple[bool, int, tuple[str, ...]]
_shapes: dict[bytes, Facts] = {}


class NotUtf8(ValueError):
    def __init__(self, index: int) -> None:
        super().__init__(f"batch item {index} properties are not UTF-8")
        self.index = index


def batch_facts(raws: list[bytes]) -> tuple[list[bool], list[int], list[tuple[str, ...]]]:
    """For each item's raw properties: delayed, tags code, query keys. Raises NotUtf8 naming the first item whose
    properties are not UTF-8."""
    delayed: list[bool] = []
    codes: list[int] = []
    keys: list[tuple[str, ...]] = []
    shapes = _shapes
    for index, raw in enumerate(raws):
        try:
            at = raw.find(_UNIQ_PAIR)
            if at < 0:
                facts = shapes.get(raw) or _remember(raw)
            else:
                end = raw.find(b"\x02", at)
                if end < 0:
                    end = len(raw)
                if (at and raw[at - 1] != _SEPARATOR) or raw.find(_UNIQ_PAIR, end) >= 0:
                    facts = _general_facts(raw)
                else:
                    # Cut at ASCII bytes: the shape and the value are UTF-8 exactly when ``raw`` is, and the empty
                    # segment left behind is ignored, as Java ignores it.
                    shape = raw[:at] + raw[end:]
                    facts = shapes.get(shape) or _remember(shape)
                    uniq = raw[at + _VALUE_AT : end].decode()
                    delayed.append(facts[0])
                    codes.append(facts[1])
                    if not uniq:
                        keys.append(facts[2])
                    elif not facts[2]:
                        keys.append((uniq,))
                    else:
                        keys.append(facts[2] if uniq in facts[2] else (*facts[2], uniq))
                    continue
        except UnicodeDecodeError:
            raise NotUtf8(index) from None
        delayed.append(facts[0])
        codes.append(facts[1])
        keys.append(facts[2])
    return delayed, codes, keys


def _remember(shape: bytes) -> Facts:
    facts = _general_facts(shape)
    if len(_shapes) >= _SHAPES_KEPT:
        _shapes.clear()
    _shapes[shape] = facts
    return facts


def _general_facts(raw: bytes) -> Facts:
    props = decode_properties(raw.decode())
    return props.get(PROPERTY_DELAY, "0") != "0", tags_code(props.get(PROPERTY_TAGS)), query_keys(props)
