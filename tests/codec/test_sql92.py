"""SQL92 filter: a table of Java-derived outcomes, syntax errors, hypothesis against reference evaluations, fuzzing.

Expected values follow Apache RocketMQ's filter expression classes (ComparisonExpression, UnaryExpression,
LogicExpression) as the broker runs them, including their odd corners (see codec/sql92.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.sql92 import MAX_EXPRESSION_LENGTH, SqlFilter, SqlSyntaxError, compile_sql92

T, F = True, False

MATCHES: list[tuple[str, dict[str, str], bool]] = [
    # string equality, TAGS is an ordinary property
    ("TAGS = 'TagA'", {"TAGS": "TagA"}, T),
    ("TAGS = 'TagA'", {"TAGS": "taga"}, F),
    ("TAGS = 'TagA'", {}, F),
    ("a <> 'x'", {"a": "y"}, T),
    ("a <> 'x'", {"a": "x"}, F),
    ("a <> 'x'", {}, F),
    ("a = ''", {"a": ""}, T),
    ("a = b", {"a": "10", "b": "10"}, T),
    ("a = b", {"a": "10", "b": "10.0"}, F),  # two strings: string equality
    ("'a' = 'a'", {}, T),
    # numeric comparisons read the property as the literal's Java type
    ("a > 5", {"a": "6"}, T),
    ("a > 5", {"a": "5"}, F),
    ("a >= 5", {"a": "5"}, T),
    ("a < 5", {"a": "4"}, T),
    ("a < 5", {"a": "5"}, F),
    ("a <= 5", {"a": "5"}, T),
    ("a <= 5", {"a": "6"}, F),
    ("a > 5", {}, F),
    ("a = 5", {"a": "05"}, T),
    ("a = 5", {"a": "+5"}, T),
    ("a = 5", {"a": " 5"}, F),  # Integer.valueOf does not trim
    ("a = 5.0", {"a": " 5"}, T),  # Double.valueOf does
    ("a = 5", {"a": "5.0"}, F),
    ("a > 5", {"a": "5.5"}, F),  # not an Integer
    ("a > 5.0", {"a": "5.5"}, T),
    ("a = 5", {"a": "\u0665"}, T),  # ARABIC-INDIC DIGIT FIVE: Character.digit accepts it
    ("a = 5", {"a": "\uff15"}, T),  # FULLWIDTH DIGIT FIVE
    ("a = 5", {"a": "\U0001d7d3"}, F),  # MATHEMATICAL BOLD DIGIT FIVE: two UTF-16 chars in Java
    ("a = 5.0", {"a": "\u0665"}, F),  # Double.valueOf wants ASCII
    ("a > 1", {"a": "0" * 30 + "5"}, T),  # any number of leading zeros
    ("a > 1", {"a": "99999999999"}, F),  # overflows Integer: exception
    ("a > 2147483647", {"a": "2147483648"}, F),
    ("a > 2147483648", {"a": "2147483649"}, T),  # a Long literal reads the property as Long
    ("a < 3000000000", {"a": "2"}, T),
    ("a = 5L", {"a": "5"}, T),
    ("a = 3000000000L", {"a": "3000000000"}, T),
    ("a < -2147483648", {"a": "-2147483649"}, T),
    ("a > -5", {"a": "-4"}, T),
    ("a > - -5", {"a": "6"}, T),
    ("a > --5", {"a": "6"}, T),  # no line end: two minus signs, not a comment
    ("a > +5", {"a": "6"}, T),
    ("5 < a", {"a": "6"}, T),
    ("5 < a", {"a": "x"}, F),
    ("a = .5", {"a": "0.5"}, T),
    ("a = 5.", {"a": "5"}, T),
    ("a = 5E1", {"a": "50"}, T),
    ("a = 1.5e-1", {"a": "0.15"}, T),
    ("a > 1e3", {"a": "1001"}, T),
    # Double.valueOf grammar and Double.compareTo
    ("a = 1.5", {"a": "1.5f"}, T),
    ("a = 1.5", {"a": "1.5D"}, T),
    ("a = 1.5", {"a": "0x1.8p0"}, T),
    ("a = 1.5", {"a": "1_5"}, F),
    ("a > 1.5", {"a": "NaN"}, T),  # NaN sorts above everything
    ("a < 1.5", {"a": "NaN"}, F),
    ("a > 1.5", {"a": "Infinity"}, T),
    ("a < 1.5", {"a": "-Infinity"}, T),
    ("a > 1.5", {"a": "inf"}, F),
    ("a > 1.5", {"a": "nan"}, F),
    ("a > 1.5", {"a": "0x1p99999"}, T),
    ("a >= b", {"a": "-0.0", "b": "0.0"}, F),  # -0.0 < 0.0
    ("a < b", {"a": "-0.0", "b": "0.0"}, T),
    ("a > b", {"a": "10", "b": "9"}, T),  # two properties: both read as doubles
    ("a > b", {"a": "x", "b": "9"}, F),
    ("a > b", {"a": "10"}, F),
    ("2 > 1", {}, T),
    ("1 = 1.0", {}, T),
    ("1 = '1'", {}, T),
    ("1 = 'x'", {}, F),
    # a failed conversion is an exception: the whole message fails, short-circuits aside
    ("a = 5", {"a": "abc"}, F),
    ("a <> 5", {"a": "abc"}, F),
    ("NOT (a = 5)", {"a": "abc"}, F),
    ("a <> 5 OR TRUE", {"a": "abc"}, F),
    ("TRUE OR a <> 5", {"a": "abc"}, T),
    ("FALSE AND a <> 5", {"a": "abc"}, F),
    ("a = 'x' AND b > 1", {"a": "y", "b": "bad"}, F),
    ("a = 'x' OR b > 1", {"a": "x", "b": "bad"}, T),
    # booleans: Boolean.valueOf on the property; a Boolean on the left of a string is a ClassCastException
    ("a = TRUE", {"a": "true"}, T),
    ("a = TRUE", {"a": "TRUE"}, T),
    ("a = TRUE", {"a": "1"}, F),
    ("a = FALSE", {"a": "yes"}, T),
    ("TRUE = a", {"a": "true"}, F),
    ("NOT (TRUE = a)", {"a": "true"}, F),
    ("1 = TRUE", {}, F),  # Integer against Boolean: "not comparable"
    ("NOT (1 = TRUE)", {}, T),
    ("(a > 1) = TRUE", {"a": "2"}, T),
    ("(a > 1) = (b > 1)", {"a": "0", "b": "0"}, T),
    # missing properties: three-valued logic, with Java's asymmetric equality
    ("NOT (a = 5)", {}, F),
    ("NOT (a > 1)", {}, F),
    ("NOT (a > 1)", {"a": "0"}, T),
    ("5 = a", {}, F),
    ("NOT (5 = a)", {}, T),  # right side null: FALSE, not unknown
    ("5 <> a", {}, T),
    ("a <> 5", {}, F),
    ("a = b", {}, T),  # both null: equal
    ("a = b", {"b": "1"}, F),
    ("NOT (a = b)", {"b": "1"}, F),
    ("NOT (a = b)", {"a": "1"}, T),
    ("a = '1' OR TRUE", {}, T),
    ("a = '1' OR FALSE", {}, F),
    ("NOT (a = '1' OR FALSE)", {}, F),
    ("a = '1' AND FALSE", {}, F),
    ("NOT (a = '1' AND FALSE)", {}, T),
    ("NOT (a = '1' AND TRUE)", {}, F),
    ("-a < 0", {"a": "5"}, F),  # unary minus of a string: unknown
    ("NOT (-a < 0)", {"a": "5"}, F),
    # IS [NOT] NULL
    ("a IS NULL", {}, T),
    ("a IS NULL", {"a": ""}, F),
    ("a IS NOT NULL", {"a": ""}, T),
    ("a IS NOT NULL", {}, F),
    ("a is not null", {"a": "x"}, T),
    ("NULL IS NULL", {}, T),
    ("5 IS NOT NULL", {}, T),
    ("(a > 1) IS NULL", {}, T),
    # constants and bare properties as conditions
    ("TRUE", {}, T),
    ("FALSE", {}, F),
    ("NULL", {}, F),
    ("NOT NULL", {}, F),
    ("NOT FALSE", {}, T),
    ("a", {"a": "true"}, F),  # a string is never a Boolean
    ("NOT a", {"a": "true"}, T),
    ("NOT a", {}, F),
    ("a OR TRUE", {}, T),
    # prefix NOT binds tighter than comparisons
    ("NOT a = 'x'", {"a": "x"}, F),  # (NOT a) = 'x': Boolean vs String
    ("NOT a = 'x'", {"a": "y"}, F),
    ("NOT (a = 'x')", {"a": "y"}, T),
    ("NOT a CONTAINS 'x'", {"a": "x"}, F),  # (NOT a) is no string
    # BETWEEN
    ("a BETWEEN 1 AND 3", {"a": "1"}, T),
    ("a BETWEEN 1 AND 3", {"a": "3"}, T),
    ("a BETWEEN 1 AND 3", {"a": "4"}, F),
    ("a BETWEEN 1 AND 3", {}, F),
    ("a BETWEEN 1 AND 3", {"a": "2.5"}, F),
    ("a BETWEEN 1.0 AND 3", {"a": "2.5"}, F),  # 2.5 <= 3 reads 2.5 as an Integer: exception
    ("a BETWEEN 1.0 AND 3.0", {"a": "2.5"}, T),
    ("a BETWEEN -1 AND 1", {"a": "0"}, T),
    ("a BETWEEN 5 AND -1", {"a": "2"}, F),  # a negated bound escapes Java's order check
    ("a NOT BETWEEN 1 AND 3", {"a": "4"}, T),
    ("a NOT BETWEEN 1 AND 3", {"a": "0"}, T),
    ("a NOT BETWEEN 1 AND 3", {"a": "2"}, F),
    ("a NOT BETWEEN 1 AND 3", {}, F),
    ("NOT (a BETWEEN 1 AND 3)", {}, F),
    ("a BETWEEN 1 AND 3 AND b = 'x'", {"a": "2", "b": "x"}, T),
    ("a BETWEEN b AND c", {"a": "2", "b": "1", "c": "3"}, T),
    # IN
    ("a IN ('x', 'y')", {"a": "y"}, T),
    ("a IN ('x', 'y')", {"a": "z"}, F),
    ("a IN ('x', 'y')", {"a": "X"}, F),
    ("a IN ('x', 'y')", {}, F),
    ("a IN ('1', '2', '3', '4', '5', '6')", {"a": "6"}, T),
    ("a IN ('it''s')", {"a": "it's"}, T),
    ("a NOT IN ('x', 'y')", {"a": "z"}, T),
    ("a NOT IN ('x', 'y')", {"a": "x"}, F),
    ("a NOT IN ('x', 'y')", {}, F),
    ("NOT (a IN ('x'))", {}, F),
    ("(a) IN ('x')", {"a": "x"}, T),
    # CONTAINS / STARTSWITH / ENDSWITH: false, never unknown, for a missing operand or empty search
    ("a CONTAINS 'b'", {"a": "abc"}, T),
    ("a CONTAINS 'b'", {"a": "xyz"}, F),
    ("a CONTAINS 'b'", {}, F),
    ("a NOT CONTAINS 'b'", {"a": "xyz"}, T),
    ("a NOT CONTAINS 'b'", {"a": "abc"}, F),
    ("a NOT CONTAINS 'b'", {}, F),
    ("NOT (a CONTAINS 'b')", {}, T),
    ("a CONTAINS ''", {"a": "x"}, F),
    ("a NOT CONTAINS ''", {"a": "x"}, F),
    ("a STARTSWITH 'ab'", {"a": "abc"}, T),
    ("a STARTSWITH 'bc'", {"a": "abc"}, F),
    ("a NOT STARTSWITH 'bc'", {"a": "abc"}, T),
    ("a NOT STARTSWITH 'x'", {}, F),
    ("a STARTSWITH ''", {"a": "abc"}, F),
    ("a ENDSWITH 'bc'", {"a": "abc"}, T),
    ("a ENDSWITH 'ab'", {"a": "abc"}, F),
    ("a NOT ENDSWITH 'ab'", {"a": "abc"}, T),
    ("a NOT ENDSWITH ''", {"a": "abc"}, F),
    ("'axb' CONTAINS 'x'", {}, T),
    ("5 CONTAINS '5'", {}, F),
    ("a CONTAINS '.'", {"a": "axb"}, F),
    ("a CONTAINS '%'", {"a": "a%b"}, T),
    # precedence: NOT > AND > OR, parentheses
    ("a = '1' OR b = '1' AND c = '1'", {"a": "1"}, T),
    ("a = '1' OR b = '1' AND c = '1'", {"b": "1"}, F),
    ("(a = '1' OR b = '1') AND c = '1'", {"a": "1"}, F),
    ("FALSE AND TRUE OR TRUE", {}, T),
    ("TRUE OR TRUE AND FALSE", {}, T),
    ("NOT TRUE AND FALSE", {}, F),
    ("NOT FALSE OR FALSE", {}, T),
    ("NOT (FALSE OR TRUE)", {}, F),
    ("NOT NOT TRUE", {}, T),
    ("((a = 'x'))", {"a": "x"}, T),
    ("a = 'x' AND (b = 'y' OR c = 'z')", {"a": "x", "c": "z"}, T),
    # keywords in any case, escapes, whitespace and comments, identifiers
    ("a between 1 and 3 aNd b iN ('x') oR c Is NoT nULL", {"c": "1"}, T),
    ("a CONTAINS 'x' and b startswith 'y' AND c EndsWith 'z'", {"a": "x", "b": "y", "c": "z"}, T),
    ("true", {}, T),
    ("a = 'it''s'", {"a": "it's"}, T),
    ("a = ''''", {"a": "'"}, T),
    ("a = 'a -- b /* c */'", {"a": "a -- b /* c */"}, T),
    ("a = '\u00e9\u4e2d'", {"a": "\u00e9\u4e2d"}, T),
    ("a = 1 -- note\n AND b = 2", {"a": "1", "b": "2"}, T),
    ("a = 1 -- note\r\n AND b = 2", {"a": "1", "b": "3"}, F),
    ("/* lead */ a = 1 /* mid ** */ AND /**/ b = 2", {"a": "1", "b": "2"}, T),
    ("\ta\n=\r1\f", {"a": "1"}, T),
    ("$a_1 = 'x'", {"$a_1": "x"}, T),
    ("_x = 'y'", {"_x": "y"}, T),
    ("now = 'x'", {"now": "x"}, T),  # an ordinary property name
    ("notx = 'x'", {"notx": "x"}, T),
]


@pytest.mark.parametrize(("expression", "props", "expected"), MATCHES)
def test_matches(expression: str, props: dict[str, str], expected: bool) -> None:
    assert compile_sql92(expression).matches(props) is expected


SYNTAX_ERRORS: list[tuple[str, str, int]] = [
    ("", "expected a value, a property or '(' but found end of expression", 0),
    ("   ", "expected a value, a property or '(' but found end of expression", 3),
    ("a =", "expected a value, a property or '(' but found end of expression", 3),
    ("a = 1 b", "unexpected 'b' after a complete expression", 6),
    ("a LIKE 'x'", "unexpected 'LIKE' after a complete expression", 2),
    ("a = 1)", "unexpected ')' after a complete expression", 5),
    ("a = 01", "unexpected '1' after a complete expression", 5),
    ("a > 1 --", "unexpected '-' after a complete expression", 6),
    ("a > --1\n", "expected a value, a property or '(' but found end of expression", 8),
    ("(a = 1", "expected ')' but found end of expression", 6),
    ("a AND", "expected a value, a property or '(' but found end of expression", 5),
    ("AND a", "expected a value, a property or '(' but found 'AND'", 0),
    ("a > 'x'", "only numbers and properties can be compared with '>'", 4),
    ("'x' < a", "only numbers and properties can be compared with '<'", 0),
    ("a >= TRUE", "only numbers and properties can be compared with '>='", 5),
    ("a <= NULL", "only numbers and properties can be compared with '<='", 5),
    ("NOT a > 1", "only numbers and properties can be compared with '>'", 0),
    ("(a > 1) > 2", "only numbers and properties can be compared with '>'", 1),
    ("a > 1 > 2", "only numbers and properties can be compared with '>'", 0),
    ("a BETWEEN 'x' AND 'y'", "only numbers and properties can be compared with '>='", 10),
    ("'abc", "unterminated string literal", 0),
    ("a = 'x", "unterminated string literal", 4),
    ("a = 'it''s", "unterminated string literal", 8),  # 'it' is a whole literal,
    ("/* x", "unterminated comment", 0),
    ("a = 1 / 2", "unexpected character '/'", 6),
    ("a # 1", "unexpected character '#'", 2),
    ("a == 1", "expected a value, a property or '(' but found '='", 3),
    ("a != 1", "unexpected character '!'", 2),
    ("\u00e9 = 1", "unexpected character '\u00e9'", 0),
    ("a.b = 1", "unexpected character '.'", 1),
    ('a = "x"', "unexpected character '\"'", 4),
    ("a IN (1)", "expected a string literal but found '1'", 6),
    ("a IN ()", "expected a string literal but found ')'", 6),
    ("a IN 'x'", "expected '(' after IN but found \"'x'\"", 5),
    ("a IN ('x'", "expected ',' or ')' in the IN list but found end of expression", 9),
    ("a IN ('x' 'y')", "expected ',' or ')' in the IN list but found \"'y'\"", 10),
    ("5 IN ('x')", "IN needs a property on its left", 2),
    ("NULL NOT IN ('x')", "IN needs a property on its left", 9),
    ("a CONTAINS b", "expected a string literal but found 'b'", 11),
    ("a CONTAINS 123", "expected a string literal but found '123'", 11),
    ("a NOT STARTSWITH", "expected a string literal but found end of expression", 16),
    ("a NOT = 1", "expected BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT but found '='", 6),
    ("a IS 1", "expected NULL or NOT NULL but found '1'", 5),
    ("a IS NOT 1", "expected NULL but found '1'", 9),
    ("NULL = a", "NULL cannot be compared with '=' (use IS NULL)", 5),
    ("a = NULL", "NULL cannot be compared with '=' (use IS NULL)", 2),
    ("a <> NULL", "NULL cannot be compared with '<>' (use IS NULL)", 2),
    ("TRUE = 1", "TRUE cannot be compared with 1", 5),
    ("FALSE <> 'x'", "FALSE cannot be compared with 'x'", 6),
    ("a BETWEEN 3 AND 1", "BETWEEN 3 AND 1: the lower bound is above the upper bound", 2),
    ("a BETWEEN 2.5 AND 2", "BETWEEN 2.5 AND 2: the lower bound is above the upper bound", 2),
    ("a BETWEEN 1 AND 'x'", "BETWEEN 1 AND 'x': the bounds cannot be compared", 2),
    ("a BETWEEN 'x' AND TRUE", "BETWEEN 'x' AND TRUE: the bounds cannot be compared", 2),  # ClassCastException
    ("a BETWEEN TRUE AND 'x'", "BETWEEN TRUE AND 'x': the lower bound is above the upper bound", 2),
    ("a BETWEEN FALSE AND TRUE", "only numbers and properties can be compared with '>='", 10),
    ("a IN ('" + "x" * 100 + "' 'y')", "expected ',' or ')' in the IN list but found \"'y'\"", 109),
    ("a IN ('x', " + "b" * 100 + ")", "expected a string literal but found '" + "b" * 37 + "...'", 11),
    ("a BETWEEN NULL AND 1", "BETWEEN bounds cannot be NULL", 2),
    ("a BETWEEN 1 OR 3", "expected AND of BETWEEN but found 'OR'", 12),
    ("a BETWEEN 1", "expected AND of BETWEEN but found end of expression", 11),
    ("a = 0.0", "floating literal 0.0 is outside the range of a double", 4),
    ("a = .0e5", "floating literal .0e5 is outside the range of a double", 4),
    ("a = 1e400", "floating literal 1e400 is outside the range of a double", 4),
    ("a = 1e-400", "floating literal 1e-400 is outside the range of a double", 4),
    ("a = 9223372036854775808", "integer literal 9223372036854775808 is above 9223372036854775807", 4),
    ("a > 100000000000000000000000", "integer literal 100000000000000000000000 is above", 4),
    ("'x'", "expression will not result in a boolean value", 0),
    ("5", "expression will not result in a boolean value", 0),
    ("-a", "expression will not result in a boolean value", 0),
    ("NOT 'x'", "expression will not result in a boolean value", 4),
    ("a AND 5", "expression will not result in a boolean value", 6),
    ("1.5 OR a", "expression will not result in a boolean value", 0),
    ("a and between 2 and 10", "expected a value, a property or '(' but found 'between'", 6),
    ("IN = 1", "expected a value, a property or '(' but found 'IN'", 0),
]


@pytest.mark.parametrize(("expression", "message", "position"), SYNTAX_ERRORS)
def test_syntax_error(expression: str, message: str, position: int) -> None:
    with pytest.raises(SqlSyntaxError) as caught:
        compile_sql92(expression)
    assert caught.value.problem.startswith(message)
    assert caught.value.position == position
    assert str(caught.value) == f"{caught.value.problem} at position {position}"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 10_000 + "a" + ")" * 10_000,
        "NOT " * 10_000 + "a",
        "a > " + "-" * 10_000 + "1",
        "a = " * 1_000 + "'x'",  # a left-deep chain of equalities
        "(" * (65) + "a" + ")" * 65,
        "x" * (MAX_EXPRESSION_LENGTH + 1),
    ],
)
def test_pathological_input_is_a_syntax_error(expression: str) -> None:
    with pytest.raises(SqlSyntaxError, match=r"nested too deeply|longer than"):
        compile_sql92(expression)


def test_reasonable_nesting_and_long_chains_compile() -> None:
    assert compile_sql92("(" * 60 + "a = 'x'" + ")" * 60).matches({"a": "x"})
    assert compile_sql92("NOT " * 60 + "TRUE").matches({})
    chain = " AND ".join(f"p{i} = '{i}'" for i in range(3_000))
    props = {f"p{i}": str(i) for i in range(3_000)}
    assert compile_sql92(chain).matches(props)
    assert not compile_sql92(chain).matches({**props, "p2999": "x"})
    any_of = compile_sql92(" OR ".join(f"p = '{i}'" for i in range(3_000)))
    assert any_of.matches({"p": "2999"}) and not any_of.matches({"p": "3000"})
    many = compile_sql92("a IN (" + ", ".join(f"'{i}'" for i in range(5_000)) + ")")
    assert many.matches({"a": "4999"}) and not many.matches({"a": "-1"})
    assert compile_sql92("a = '" + "x" * (MAX_EXPRESSION_LENGTH - 6) + "'").matches(
        {"a": "x" * (MAX_EXPRESSION_LENGTH - 6)}
    )


def test_compiled_filter_keeps_its_expression() -> None:
    compiled = compile_sql92("TAGS = 'a'")
    assert isinstance(compiled, SqlFilter)
    assert compiled.expression == "TAGS = 'a'"
    assert repr(compiled) == "SqlFilter(\"TAGS = 'a'\")"


# ---------------------------------------------------------------------------------------------------- hypothesis


class Value(NamedTuple):
    """A property text with what Java makes of it: Integer.valueOf and Double.valueOf (None: exception)."""

    text: str
    as_int: int | None
    as_double: float | None


CURATED = [
    Value("150", 150, 150.0),
    Value("+7", 7, 7.0),
    Value("-0", 0, -0.0),
    Value("007", 7, 7.0),
    Value(" 5", None, 5.0),
    Value("5\n", None, 5.0),
    Value("1_0", None, None),
    Value("\u0665", 5, None),
    Value("\uff14\uff12", 42, None),
    Value("\U0001d7d3", None, None),
    Value("1.5", None, 1.5),
    Value("1.5f", None, 1.5),
    Value("2d", None, 2.0),
    Value("0x1p3", None, 8.0),
    Value("NaN", None, math.nan),
    Value("Infinity", None, math.inf),
    Value("-Infinity", None, -math.inf),
    Value("inf", None, None),
    Value("1e3", None, 1000.0),
    Value(".5", None, 0.5),
    Value("5.", None, 5.0),
    Value(".", None, None),
    Value("", None, None),
    Value("+", None, None),
    Value("2147483647", 2147483647, 2147483647.0),
    Value("2147483648", None, 2147483648.0),
    Value("-2147483648", -2147483648, -2147483648.0),
    Value("-2147483649", None, -2147483649.0),
    Value("true", None, None),
    Value("p", None, None),
]
INT32 = range(-(2**31), 2**31)

values = st.one_of(
    st.sampled_from(CURATED),
    st.integers(-(2**40), 2**40).map(lambda n: Value(str(n), n if n in INT32 else None, float(n))),
    st.integers(-20, 20).map(lambda n: Value(str(n), n, float(n))),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: Value(repr(x), None, x)),
    st.text(alphabet="abcxyz", max_size=5).map(lambda w: Value(w, None, None)),
)
maybe = st.one_of(st.none(), values)


def java_double_compare(a: float, b: float) -> int:
    """Double.compareTo: NaN equals itself and is above everything, -0.0 is below 0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) - math.isnan(b)
    if a != b:
        return -1 if a < b else 1
    return (math.copysign(1, a) > 0) - (math.copysign(1, b) > 0)


def props_of(**named: Value | str | None) -> dict[str, str]:
    return {k: v.text if isinstance(v, Value) else v for k, v in named.items() if v is not None}


@given(tags=st.one_of(st.none(), st.sampled_from(["a", "b", "c", "A", ""])), price=maybe)
def test_tags_and_price_against_reference(tags: str | None, price: Value | None) -> None:
    # matches only when TAGS is a or b and price is a Java Integer above 100 (a bad price fails all)
    expected = tags in ("a", "b") and price is not None and price.as_int is not None and price.as_int > 100
    assert compile_sql92("TAGS IN ('a','b') AND price > 100").matches(props_of(TAGS=tags, price=price)) is expected


@given(a=maybe, b=st.one_of(st.none(), st.sampled_from(["p", "q", "r"])))
def test_not_double_comparison_against_reference(a: Value | None, b: str | None) -> None:
    # NOT of unknown stays unknown; a property that is not a double fails the message
    expected = (
        a is not None
        and a.as_double is not None
        and not java_double_compare(a.as_double, 1.5) > 0
        and b is not None
        and b not in ("p", "q")
    )
    filter_ = compile_sql92("NOT (a > 1.5) AND b NOT IN ('p','q')")
    assert filter_.matches(props_of(a=a, b=b)) is expected


@given(a=maybe, c=st.one_of(st.none(), st.sampled_from(["z", "xzy", "y", ""])))
def test_between_or_contains_against_reference(a: Value | None, c: str | None) -> None:
    c_matches = c is not None and "z" in c
    if a is None:
        expected = c_matches  # unknown OR c
    elif a.as_int is None:
        expected = False  # the conversion fails before OR looks at c
    else:
        expected = -10 <= a.as_int <= 10 or c_matches
    assert compile_sql92("a BETWEEN -10 AND 10 OR c CONTAINS 'z'").matches(props_of(a=a, c=c)) is expected


@given(a=maybe, b=maybe)
def test_two_properties_against_reference(a: Value | None, b: Value | None) -> None:
    props = props_of(a=a, b=b)
    both = a is not None and b is not None
    equal = (a is None and b is None) or (both and a.text == b.text)
    assert compile_sql92("a = b").matches(props) is equal
    assert compile_sql92("NOT (a <> b)").matches(props) is equal  # unknown only when a alone is missing
    doubles = both and a.as_double is not None and b.as_double is not None
    expected = doubles and java_double_compare(a.as_double, b.as_double) >= 0
    assert compile_sql92("a >= b").matches(props) is expected


OPERATORS = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}


@given(
    a=values,
    op=st.sampled_from(sorted(OPERATORS)),
    literal=st.one_of(
        st.integers(0, 2**63 - 1).map(str),
        st.integers(1, 2**31 - 1).map(lambda n: f"{n}L"),  # Java has no "0L"
        st.floats(min_value=1e-300, max_value=1e300).map(repr),
    ),
    negate=st.booleans(),
)
def test_property_first_and_literal_first_agree(a: Value, op: str, literal: str, negate: bool) -> None:
    # "a OP n" takes a specialised path, "n OP' a" the general one; Java converts the same way in both
    number = f"-{literal}" if negate else literal
    props = {"a": a.text}
    property_first = compile_sql92(f"a {op} {number}")
    literal_first = compile_sql92(f"{number} {OPERATORS[op]} a")
    assert property_first.matches(props) is literal_first.matches(props)


@given(a=maybe, words=st.lists(st.sampled_from(["x", "y", "p", "it's", ""]), min_size=1, max_size=7))
def test_in_is_a_chain_of_equalities(a: Value | None, words: list[str]) -> None:
    quoted = [w.replace("'", "''") for w in words]
    in_list = compile_sql92("a IN (" + ", ".join(f"'{w}'" for w in quoted) + ")")
    chain = compile_sql92(" OR ".join(f"a = '{w}'" for w in quoted))
    props = props_of(a=a)
    assert in_list.matches(props) is chain.matches(props) is (a is not None and a.text in words)


# ---------------------------------------------------------------------------------------------------- fuzzing

FRAGMENTS = [
    "a", "b", "TAGS", "$x", "_1", "'s'", "'it''s'", "''", "1", "0", "5L", "2147483648", "1.5", ".5", "1e3",
    "TRUE", "FALSE", "NULL", "NOT", "AND", "OR", "IS", "IN", "BETWEEN", "CONTAINS", "STARTSWITH", "ENDSWITH",
    "=", "<>", ">", ">=", "<", "<=", "(", ")", ",", "+", "-", "--", "\n", "/*", "*/", " ", "'",
]  # fmt: skip
fuzz_props = st.dictionaries(st.sampled_from(["a", "b", "TAGS", "$x", "_1"]), values.map(lambda v: v.text), max_size=5)


def compile_or_none(expression: str) -> SqlFilter | None:
    try:
        return compile_sql92(expression)
    except SqlSyntaxError:
        return None


@settings(max_examples=300)
@given(expression=st.text(max_size=80), props=fuzz_props)
def test_fuzz_random_text(expression: str, props: dict[str, str]) -> None:
    compiled = compile_or_none(expression)
    if compiled is not None:
        assert compiled.matches(props) in (True, False)


@settings(max_examples=1000)
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS), max_size=25),
    spaced=st.booleans(),
    props=fuzz_props,
)
def test_fuzz_token_soup(parts: list[str], spaced: bool, props: dict[str, str]) -> None:
    compiled = compile_or_none((" " if spaced else "").join(parts))
    if compiled is not None:
        assert compiled.matches(props) in (True, False)
