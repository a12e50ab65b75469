"""RocketMQ's SQL92 message filter (expressionType ``SQL92``): compile a selector once, match properties fast.

Grammar and semantics follow Apache RocketMQ's ``filter`` module (``SelectorParser.jj`` and the
``expression`` classes); nothing here is copied from it.

* Precedence, loosest first: ``OR``; ``AND``; ``=``, ``<>``, ``IS [NOT] NULL``; ``>``, ``>=``, ``<``, ``<=``,
  ``[NOT] BETWEEN``, ``[NOT] IN``, ``[NOT] CONTAINS|STARTSWITH|ENDSWITH``; prefix ``NOT``, ``-``, ``+``.
  Prefix ``NOT`` binds tightest: ``NOT a = 'x'`` is ``(NOT a) = 'x'``; write ``NOT (a = 'x')``.
* Keywords are case-insensitive; a property name is ``[A-Za-z_$][A-Za-z0-9_$]*``. ``'it''s'`` escapes a
  quote. ``--`` comments run to a line end (without one they are two minus signs); ``/* */`` comments too.
* Integer literals are Java ``Integer`` when they fit 32 bits, else ``Long`` (an ``L`` suffix is allowed);
  floating literals are ``Double`` and must lie in [Double.MIN_VALUE, Double.MAX_VALUE], so ``0.0`` is refused.
* Evaluation is three-valued (true, false, unknown); a message matches only when the result is true.
  A missing property is unknown; ``AND``/``OR`` are Kleene logic, ``NOT unknown`` is unknown.
* A property is converted to the type of the number it meets: ``Integer.valueOf``/``Long.valueOf``/
  ``Double.valueOf`` rules (``price > 100`` refuses ``"100.5"``, ``price > 100.0`` accepts it). A failed
  conversion is a Java exception: the *whole* message does not match, unless an earlier AND/OR operand
  already decided the result (evaluation is left to right with short-circuit).
  Two properties compared with ``>`` etc. are both read as doubles; ``=`` between strings is string equality.
* Java's quirks are kept: ``x = y`` is unknown when ``x`` is missing but false when only ``y`` is, and true when
  both are; ``CONTAINS`` and friends are false (never unknown) for a missing or non-string operand and for an
  empty search string; ``IN`` accepts only a property on its left and string literals in its list.

Limits (each a SqlSyntaxError, never a RecursionError): MAX_EXPRESSION_LENGTH characters, MAX_NESTING open
parentheses and prefix operators, MAX_TREE_DEPTH nested operators. Positions in messages are 0-based offsets.

One deliberate difference: Java's parser stops after the first complete expression and ignores what follows
(``a = 1 LIKE 'x'`` means ``a = 1``); here trailing tokens are a syntax error.
"""

from __future__ import annotations

import math
import operator
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import NamedTuple

from codec.codes import ResponseCode
from codec.errors import CodecError

__all__ = ["MAX_EXPRESSION_LENGTH", "MAX_NESTING", "MAX_TREE_DEPTH", "SqlFilter", "SqlSyntaxError", "compile_sql92"]

MAX_EXPRESSION_LENGTH = 64 * 1024  # a long IN list of a few thousand keys fits
MAX_NESTING = 64  # open parentheses and prefix operators (NOT, -, +) at one point of the text
MAX_TREE_DEPTH = 128  # nested operators once parsed (AND/OR chains count once)

_INT_MAX = (1 << 31) - 1
_LONG_MAX = (1 << 63) - 1
_DOUBLE_MIN = 5e-324  # Double.MIN_VALUE

Props = Mapping[str, str]
Evaluator = Callable[[Props], object]  # returns True, False or None (unknown); raises _EvalError


class SqlSyntaxError(CodecError, ValueError):
    """An expression that does not compile; ``position`` is the 0-based character offset of the problem.

    A CodecError (a broker answers SUBSCRIPTION_PARSE_FAILED), and still a ValueError as it always was.
    """

    response_code = ResponseCode.SUBSCRIPTION_PARSE_FAILED

    def __init__(self, problem: str, position: int) -> None:
        super().__init__(f"{problem} at position {position}")
        self.problem = problem
        self.position = position


class _EvalError(Exception):
    """A Java exception during evaluation (failed number conversion, ClassCastException): no match."""


class _Long(int):
    """A Java ``Long`` constant; a plain ``int`` is a Java ``Integer``, ``float`` a ``Double``."""

    __slots__ = ()


# ---------------------------------------------------------------------------------------------------- Java values

_JAVA_INTEGER = re.compile(r"[+-]?(?:(?![\U00010000-\U0010ffff])\d)+")  # Character.digit: BMP Nd digits
_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?)"
)
_JAVA_TRIM = "".join(map(chr, range(33)))  # String.trim() removes every char <= ' '


def _java_integer(text: str, bits: int) -> int:
    """``Integer.valueOf`` (bits=32) / ``Long.valueOf`` (bits=64)."""
    if not (text.isascii() and text.isdigit()) and _JAVA_INTEGER.fullmatch(text) is None:
        raise _EvalError
    if len(text) > 20:  # any number of leading zeros is fine in Java; int() would refuse > 4300 digits
        sign = text[0] if text[0] in "+-" else ""
        digits = "".join(str(unicodedata.decimal(c)) for c in text[len(sign) :]).lstrip("0") or "0"
        if len(digits) > 19:
            raise _EvalError
        text = sign + digits
    value = int(text)
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        raise _EvalError
    return value


def _java_int(text: str) -> int:
    """``Integer.valueOf``; up to nine plain ASCII digits take the short way."""
    if len(text) < 10 and text.isdigit() and text.isascii():
        return int(text)
    return _java_integer(text, 32)


def _java_long(text: str) -> int:
    """``Long.valueOf``; up to eighteen plain ASCII digits take the short way."""
    if len(text) < 19 and text.isdigit() and text.isascii():
        return int(text)
    return _java_integer(text, 64)


def _java_double(text: str) -> float:
    """``Double.valueOf``: trimmed, optional f/d suffix, NaN/Infinity, hexadecimal with a binary exponent."""
    if text.isascii() and text.replace(".", "", 1).isdigit():  # plain "150", "1.5", ".5", "5."
        return float(text)
    text = text.strip(_JAVA_TRIM)
    if _JAVA_DOUBLE.fullmatch(text) is None:
        raise _EvalError
    if text[-1] in "fFdD":
        text = text[:-1]
    if "x" not in text and "X" not in text:
        return float(text)
    try:
        return float.fromhex(text)
    except OverflowError:
        return -math.inf if text[0] == "-" else math.inf


def _double_compare(a: float, b: float) -> int:
    """``Double.compareTo``: -0.0 < 0.0, NaN equals itself and is above everything."""
    if a < b:
        return -1
    if a > b:
        return 1
    a_nan, b_nan = a != a, b != b
    if a_nan or b_nan:
        return a_nan - b_nan
    return (math.copysign(1.0, a) > 0) - (math.copysign(1.0, b) > 0)  # only -0.0 vs 0.0 differ


def _to_type_of(text: str, other: object) -> object:
    """Convert a string to the type of ``other`` as ComparisonExpression does when their types differ."""
    kind = type(other)
    if kind is bool:
        return text.lower() == "true"  # Boolean.valueOf
    if kind is int:
        return _java_int(text)
    if kind is _Long:
        return _Long(_java_long(text))
    return _java_double(text)


def _compare(lv: object, rv: object) -> int:
    """ComparisonExpression's compare of two non-null values, string conversions on (as the broker sets them)."""
    lt, rt = type(lv), type(rv)
    if lt is str and rt is not str:
        lv, lt = _to_type_of(lv, rv), rt  # type: ignore[arg-type]
    elif rt is str and lt is not str:
        if lt is bool:
            raise _EvalError  # Java casts the Boolean itself to String: ClassCastException
        rv, rt = _to_type_of(rv, lv), lt  # type: ignore[arg-type]
    if lt is rt:
        if lt is float:
            return _double_compare(lv, rv)  # type: ignore[arg-type]
        if lt is str:
            return 0 if lv == rv else 1  # reached only by '=', which only asks "equal?"
        return (lv > rv) - (lv < rv)  # type: ignore[operator]
    if lt is bool or rt is bool:
        return -1  # a Boolean against a number: "not comparable", -1
    if lt is float or rt is float:
        return _double_compare(float(lv), float(rv))  # type: ignore[arg-type]
    return (lv > rv) - (lv < rv)  # type: ignore[operator]  # Integer vs Long


# ---------------------------------------------------------------------------------------------------- tree

_ORDERINGS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_MATCHERS = {"CONTAINS": str.__contains__, "STARTSWITH": str.startswith, "ENDSWITH": str.endswith}


def _number_reader(constant: object) -> Callable[[str], object]:
    """How a property is read to meet this numeric constant (its Java type decides)."""
    if type(constant) is int:
        return _java_int
    if type(constant) is _Long:
        return _java_long
    return _java_double


def _is_number(value: object) -> bool:
    return type(value) in (int, _Long, float)


class _Node:
    """A parsed expression. ``boolean``: Java's BooleanExpression; ``depth``: height of the tree."""

    boolean = True
    depth = 1

    def __init__(self, pos: int, *children: _Node) -> None:
        self.pos = pos
        if children:
            self.depth = 1 + max(c.depth for c in children)

    def build(self) -> Evaluator:
        raise NotImplementedError


class _Const(_Node):
    """A literal (``literal``: a Java ConstantExpression) or a negated number folded at compile time."""

    def __init__(self, pos: int, value: object, literal: bool = True) -> None:
        super().__init__(pos)
        self.value, self.literal = value, literal
        self.boolean = value is None or type(value) is bool

    def build(self) -> Evaluator:
        value = self.value
        return lambda _props: value


class _Prop(_Node):
    boolean = False

    def __init__(self, pos: int, name: str) -> None:
        super().__init__(pos)
        self.name = name

    def build(self) -> Evaluator:
        name = self.name
        return lambda props: props.get(name)


class _Negate(_Node):
    """Unary minus of a non-constant: Java negates only numbers, and properties are strings: always unknown."""

    boolean = False

    def __init__(self, pos: int, operand: _Node) -> None:
        super().__init__(pos, operand)
        self.operand = operand

    def build(self) -> Evaluator:
        operand = self.operand.build()

        def negate(props: Props) -> object:
            operand(props)  # may still raise
            return None

        return negate


class _BoolCast(_Node):
    """A bare property used as a condition: unknown when missing, else false (a string is not a Boolean)."""

    def __init__(self, prop: _Prop) -> None:
        super().__init__(prop.pos, prop)
        self.name = prop.name

    def build(self) -> Evaluator:
        name = self.name
        return lambda props: None if props.get(name) is None else False


class _Not(_Node):
    def __init__(self, pos: int, operand: _Node) -> None:
        super().__init__(pos, operand)
        self.operand = operand

    def build(self) -> Evaluator:
        operand = self.operand.build()

        def negation(props: Props) -> object:
            value = operand(props)
            return None if value is None else not value

        return negation


class _Logic(_Node):
    """AND / OR over a flattened chain, left to right with short-circuit, as Java's nested pairs do."""

    def __init__(self, pos: int, is_and: bool, operands: list[_Node]) -> None:
        super().__init__(pos, *operands)
        self.is_and, self.operands = is_and, operands

    def add(self, operand: _Node) -> None:
        """Extend the chain in place (a long ``a AND b AND ...`` stays linear to parse)."""
        same = isinstance(operand, _Logic) and operand.is_and == self.is_and
        self.operands.extend(operand.operands if same else [operand])  # type: ignore[attr-defined]
        self.depth = max(self.depth, operand.depth if same else operand.depth + 1)

    def build(self) -> Evaluator:
        # Kleene AND/OR evaluated left to right is associative: pair neighbours into a balanced tree.
        evaluators = [o.build() for o in self.operands]
        while len(evaluators) > 1:
            pairs = [self._pair(*evaluators[i : i + 2]) for i in range(0, len(evaluators) - 1, 2)]
            evaluators = pairs + evaluators[len(pairs) * 2 :]
        return evaluators[0]

    def _pair(self, first: Evaluator, second: Evaluator) -> Evaluator:
        decisive = not self.is_and  # False decides an AND, True decides an OR
        otherwise = not decisive

        def pair(props: Props) -> object:
            a = first(props)
            if a is decisive:
                return decisive
            b = second(props)
            if b is decisive:
                return decisive
            return None if a is None or b is None else otherwise

        return pair


class _Equal(_Node):
    """Java's equality (also IS NULL, against a NULL constant)."""

    def __init__(self, pos: int, left: _Node, right: _Node) -> None:
        super().__init__(pos, left, right)
        self.left, self.right = left, right

    def build(self) -> Evaluator:
        left, right = self.left, self.right
        if isinstance(left, _Prop) and isinstance(right, _Const) and right.value is not None:
            return self._build_fast(left.name, right.value)
        left_eval, right_eval = left.build(), right.build()

        def equal(props: Props) -> object:
            lv, rv = left_eval(props), right_eval(props)
            if lv is None or rv is None:
                return None if lv is None and rv is not None else lv is None
            return _compare(lv, rv) == 0

        return equal

    @staticmethod
    def _build_fast(name: str, constant: object) -> Evaluator:
        if type(constant) is str:
            return lambda props: None if (value := props.get(name)) is None else value == constant
        if not _is_number(constant):
            return lambda props: None if (value := props.get(name)) is None else _compare(value, constant) == 0
        read = _number_reader(constant)  # a numeric constant is never 0.0 nor NaN: '==' is Double.compareTo == 0
        return lambda props: None if (value := props.get(name)) is None else read(value) == constant


class _Ordering(_Node):
    """``>``, ``>=``, ``<``, ``<=`` (Java's ComparisonExpression.evaluate)."""

    def __init__(self, pos: int, op: str, left: _Node, right: _Node) -> None:
        super().__init__(pos, left, right)
        self.op, self.left, self.right = op, left, right

    def build(self) -> Evaluator:
        test = _ORDERINGS[self.op]
        left, right = self.left, self.right
        if isinstance(left, _Prop) and isinstance(right, _Const) and _is_number(right.value):
            return self._build_fast(left.name, right.value, test)
        left_eval, right_eval = left.build(), right.build()

        def ordering(props: Props) -> object:
            lv = left_eval(props)
            if lv is None:
                return None
            rv = right_eval(props)
            if rv is None:
                return None
            if type(lv) is str and type(rv) is str:  # both strings: both read as doubles
                return test(_double_compare(_java_double(lv), _java_double(rv)), 0)
            return test(_compare(lv, rv), 0)

        return ordering

    @staticmethod
    def _build_fast(name: str, constant: object, test: Callable[[object, object], bool]) -> Evaluator:
        if type(constant) is float:
            return lambda props: (
                None if (value := props.get(name)) is None else test(_double_compare(_java_double(value), constant), 0)
            )
        read = _number_reader(constant)
        return lambda props: None if (value := props.get(name)) is None else test(read(value), constant)


class _In(_Node):
    def __init__(self, pos: int, prop: _Prop, values: list[str], negated: bool) -> None:
        super().__init__(pos, prop)
        self.name, self.values, self.negated = prop.name, frozenset(values), negated

    def build(self) -> Evaluator:
        name, values, negated = self.name, self.values, self.negated
        return lambda props: None if (value := props.get(name)) is None else (value in values) is not negated


class _Match(_Node):
    """CONTAINS / STARTSWITH / ENDSWITH and their NOT forms: never unknown."""

    def __init__(self, pos: int, kind: str, operand: _Node, search: str, negated: bool) -> None:
        super().__init__(pos, operand)
        self.kind, self.operand, self.search, self.negated = kind, operand, search, negated

    def build(self) -> Evaluator:
        if not self.search:
            return lambda _props: False
        operand, search, negated = self.operand.build(), self.search, self.negated
        method = _MATCHERS[self.kind]
        return lambda props: type(value := operand(props)) is str and method(value, search) is not negated


# ---------------------------------------------------------------------------------------------------- tokens


class _Token(NamedTuple):
    kind: str  # "ID", "STRING", "DECIMAL", "FLOAT", "EOF", an upper-case keyword, or the operator itself
    text: str
    pos: int


_KEYWORDS = frozenset(
    {"NOT", "AND", "OR", "BETWEEN", "IN", "TRUE", "FALSE", "NULL", "IS", "CONTAINS", "STARTSWITH", "ENDSWITH"}
)
_TOKEN = re.compile(
    r"(?P<SKIP>[ \t\n\r\f]+|/\*[^*]*\*+(?:[^/*][^*]*\*+)*/)"
    r"|(?P<FLOAT>[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)"
    r"|(?P<DECIMAL>0|[1-9][0-9]*[lL]?)"
    r"|(?P<STRING>'[^']*(?:''[^']*)*')"
    r"|(?P<ID>[A-Za-z_$][A-Za-z0-9_$]*)"
    r"|(?P<OP><>|<=|>=|[=<>(),+-])"
)


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos, end = 0, len(text)
    last_line_end = max(text.rfind("\n"), text.rfind("\r"))
    while pos < end:
        if text.startswith("--", pos) and pos < last_line_end:  # a comment only if a line end follows
            line_end = min(i for i in (text.find("\n", pos), text.find("\r", pos)) if i >= 0)
            pos = line_end + 2 if text.startswith("\r\n", line_end) else line_end + 1
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            char = text[pos]
            if char == "'":
                raise SqlSyntaxError("unterminated string literal", pos)
            if text.startswith("/*", pos):
                raise SqlSyntaxError("unterminated comment", pos)
            raise SqlSyntaxError(f"unexpected character {char!r}", pos)
        kind = m.lastgroup
        assert kind is not None
        if kind == "ID" and m.group().upper() in _KEYWORDS:
            kind = m.group().upper()
        elif kind == "OP":
            kind = m.group()
        if kind != "SKIP":
            tokens.append(_Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("EOF", "", end))
    return tokens


def _sql(value: object) -> str:
    """A constant as it would be written in an expression."""
    if value is None or type(value) is bool:
        return {None: "NULL", True: "TRUE", False: "FALSE"}[value]  # type: ignore[index]
    if type(value) is str:
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _describe(token: _Token) -> str:
    if token.kind == "EOF":
        return "end of expression"
    return repr(token.text if len(token.text) <= 40 else token.text[:37] + "...")


# ---------------------------------------------------------------------------------------------------- parser

_PRECEDENCE = {"OR": 1, "AND": 2, "=": 3, "<>": 3, "IS": 3}
_PRECEDENCE.update(dict.fromkeys([">", ">=", "<", "<=", "BETWEEN", "IN", "CONTAINS", "STARTSWITH", "ENDSWITH"], 4))
_PRECEDENCE["NOT"] = 4  # NOT BETWEEN / IN / CONTAINS / STARTSWITH / ENDSWITH after an operand
_NEGATABLE = ("BETWEEN", "IN", "CONTAINS", "STARTSWITH", "ENDSWITH")
_COMPARISON = 4


class _Parser:
    """Precedence climbing over the token list; recursion only for parentheses and prefix operators."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.nesting = 0

    def parse(self) -> _Node:
        node = self._expression(1)
        token = self._peek()
        if token.kind != "EOF":
            raise SqlSyntaxError(f"unexpected {_describe(token)} after a complete expression", token.pos)
        return self._as_boolean(node)

    # -- helpers

    def _peek(self) -> _Token:
        return self.tokens[self.index]

    def _next(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "EOF":
            self.index += 1
        return token

    def _accept(self, kind: str) -> bool:
        if self.tokens[self.index].kind != kind:
            return False
        self.index += 1
        return True

    def _expect(self, kind: str, what: str) -> _Token:
        token = self._next()
        if token.kind != kind:
            raise SqlSyntaxError(f"expected {what} but found {_describe(token)}", token.pos)
        return token

    def _string(self) -> str:
        return self._expect("STRING", "a string literal").text[1:-1].replace("''", "'")

    @staticmethod
    def _checked(node: _Node) -> _Node:
        if node.depth > MAX_TREE_DEPTH:
            raise SqlSyntaxError(f"expression nested too deeply (more than {MAX_TREE_DEPTH} operators)", node.pos)
        return node

    @staticmethod
    def _as_boolean(node: _Node) -> _Node:
        if node.boolean:
            return node
        if isinstance(node, _Prop):
            return _BoolCast(node)
        raise SqlSyntaxError("expression will not result in a boolean value", node.pos)

    # -- grammar

    def _expression(self, min_precedence: int) -> _Node:
        left = self._unary()
        while True:
            token = self._peek()
            precedence = _PRECEDENCE.get(token.kind, 0)
            if precedence < min_precedence:
                return left
            self._next()
            kind = token.kind
            if kind in ("AND", "OR"):
                left = self._logic(token, left, self._expression(precedence + 1))
            elif kind in ("=", "<>"):
                node = _Equal(left.pos, *self._equality_operands(token, left, self._expression(_COMPARISON)))
                left = node if kind == "=" else _Not(left.pos, self._checked(node))
            elif kind == "IS":
                negated = self._accept("NOT")
                self._expect("NULL", "NULL" if negated else "NULL or NOT NULL")
                node = _Equal(left.pos, left, _Const(token.pos, None))
                left = _Not(left.pos, self._checked(node)) if negated else node
            else:
                left = self._comparison(token, left)
            left = self._checked(left)

    def _logic(self, token: _Token, left: _Node, right: _Node) -> _Node:
        is_and = token.kind == "AND"
        left, right = self._as_boolean(left), self._as_boolean(right)
        if not (isinstance(left, _Logic) and left.is_and == is_and):
            left = _Logic(left.pos, is_and, [left])
        left.add(right)  # type: ignore[attr-defined]
        return left

    @staticmethod
    def _equality_operands(token: _Token, left: _Node, right: _Node) -> tuple[_Node, _Node]:
        for operand in (left, right):
            if isinstance(operand, _Const) and operand.literal and operand.value is None:
                raise SqlSyntaxError(f"NULL cannot be compared with {token.text!r} (use IS NULL)", token.pos)
        if (
            isinstance(left, _Const)
            and left.literal
            and left.boolean
            and isinstance(right, _Const)
            and right.literal
            and not right.boolean
        ):
            raise SqlSyntaxError(f"{_sql(left.value)} cannot be compared with {_sql(right.value)}", token.pos)
        return left, right

    def _comparison(self, token: _Token, left: _Node) -> _Node:
        negated = token.kind == "NOT"
        if negated:
            token = self._next()
            if token.kind not in _NEGATABLE:
                raise SqlSyntaxError(
                    f"expected BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT but found {_describe(token)}",
                    token.pos,
                )
        kind, pos = token.kind, token.pos
        if kind in _ORDERINGS:
            return self._ordering(kind, left, self._unary())
        if kind == "BETWEEN":
            low = self._unary()
            self._expect("AND", "AND of BETWEEN")
            high = self._unary()
            if not negated:
                self._check_bounds(pos, low, high)
                return _Logic(left.pos, True, [self._ordering(">=", left, low), self._ordering("<=", left, high)])
            return _Logic(left.pos, False, [self._ordering("<", left, low), self._ordering(">", left, high)])
        if kind == "IN":
            if not isinstance(left, _Prop):
                raise SqlSyntaxError("IN needs a property on its left", pos)
            self._expect("(", "'(' after IN")
            values = [self._string()]
            while self._peek().kind == ",":
                self._next()
                values.append(self._string())
            self._expect(")", "',' or ')' in the IN list")
            return _In(left.pos, left, values, negated)
        return _Match(left.pos, kind, left, self._string(), negated)

    @staticmethod
    def _ordering(op: str, left: _Node, right: _Node) -> _Node:
        for operand in (left, right):
            if operand.boolean or (isinstance(operand, _Const) and operand.literal and not _is_number(operand.value)):
                raise SqlSyntaxError(f"only numbers and properties can be compared with {op!r}", operand.pos)
        return _Ordering(left.pos, op, left, right)

    @staticmethod
    def _check_bounds(pos: int, low: _Node, high: _Node) -> None:
        if not (isinstance(low, _Const) and low.literal and isinstance(high, _Const) and high.literal):
            return
        if low.value is None or high.value is None:
            raise SqlSyntaxError("BETWEEN bounds cannot be NULL", pos)
        bounds = f"{_sql(low.value)} AND {_sql(high.value)}"
        try:
            if _compare(high.value, low.value) < 0:
                raise SqlSyntaxError(f"BETWEEN {bounds}: the lower bound is above the upper bound", pos)
        except _EvalError:
            raise SqlSyntaxError(f"BETWEEN {bounds}: the bounds cannot be compared", pos) from None

    def _unary(self) -> _Node:
        token = self._peek()
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise SqlSyntaxError(f"expression nested too deeply (more than {MAX_NESTING} levels)", token.pos)
        if token.kind == "+":
            self._next()
            node = self._unary()
        elif token.kind == "-":
            self._next()
            node = self._negate(token.pos, self._unary())
        elif token.kind == "NOT":
            self._next()
            node = _Not(token.pos, self._as_boolean(self._unary()))
        else:
            node = self._primary()
        self.nesting -= 1
        return self._checked(node)

    @staticmethod
    def _negate(pos: int, operand: _Node) -> _Node:
        if isinstance(operand, _Const) and _is_number(operand.value):
            value = operand.value
            negated = -value  # type: ignore[operator]
            return _Const(pos, _Long(negated) if type(value) is _Long else negated, literal=False)
        return _Negate(pos, operand)

    def _primary(self) -> _Node:
        token = self._next()
        kind, pos = token.kind, token.pos
        if kind == "ID":
            return _Prop(pos, token.text)
        if kind == "STRING":
            return _Const(pos, token.text[1:-1].replace("''", "'"))
        if kind in ("TRUE", "FALSE", "NULL"):
            return _Const(pos, {"TRUE": True, "FALSE": False, "NULL": None}[kind])
        if kind == "DECIMAL":
            digits = token.text.rstrip("lL")
            if len(digits) > 19 or int(digits) > _LONG_MAX:
                raise SqlSyntaxError(f"integer literal {token.text[:40]} is above {_LONG_MAX}", pos)
            value = int(digits)
            return _Const(pos, value if value <= _INT_MAX else _Long(value))
        if kind == "FLOAT":
            value = float(token.text)
            if not _DOUBLE_MIN <= value < math.inf:
                raise SqlSyntaxError(f"floating literal {token.text[:40]} is outside the range of a double", pos)
            return _Const(pos, value)
        if kind == "(":
            node = self._expression(1)
            self._expect(")", "')'")
            return node
        raise SqlSyntaxError(f"expected a value, a property or '(' but found {_describe(token)}", pos)


# ---------------------------------------------------------------------------------------------------- API


class SqlFilter:
    """A compiled SQL92 selector; ``matches`` runs per message on the pull path."""

    __slots__ = ("_evaluate", "expression")

    def __init__(self, expression: str, evaluate: Evaluator) -> None:
        self.expression = expression
        self._evaluate = evaluate

    def matches(self, props: Props) -> bool:
        """True only when the expression is true for these message properties (TAGS included)."""
        try:
            return self._evaluate(props) is True
        except _EvalError:
            return False

    def __repr__(self) -> str:
        return f"SqlFilter({self.expression!r})"


def compile_sql92(expression: str) -> SqlFilter:
    """Parse and compile a SQL92 selector; raises SqlSyntaxError naming the problem and its position."""
    if not isinstance(expression, str):
        raise SqlSyntaxError(f"expression is {type(expression).__name__}, not text", 0)
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise SqlSyntaxError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", MAX_EXPRESSION_LENGTH)
    return SqlFilter(expression, _Parser(expression).parse().build())
