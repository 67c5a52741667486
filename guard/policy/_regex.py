"""Load-time checks for regular expressions written in policies.

Python's `re` backtracks, so a pattern such as `(a+)+$` takes exponential time on an input
like `aaaa…!`. A policy regex runs on caller-controlled arguments, which makes that a denial
of service. We reject such patterns at load with a conservative structural check on the
parsed pattern: an unbounded repeat whose body can itself match the same text in more than
one way (a nested variable-length repeat, or alternatives that can start with the same
character). It may reject a few harmless patterns; it never needs to run the regex.
"""

from __future__ import annotations

import re
import string
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any, Final

__all__ = ["regex_problem"]

_MAXREPEAT: Final = _c.MAXREPEAT
_REPEATS: Final = (_c.MAX_REPEAT, _c.MIN_REPEAT)
_ANY_CHAR: Final = None  # "could start with any character"

_CATEGORY_CHARS: Final[dict[Any, frozenset[str]]] = {
    _c.CATEGORY_DIGIT: frozenset(string.digits),
    _c.CATEGORY_WORD: frozenset(string.ascii_letters + string.digits + "_"),
    _c.CATEGORY_SPACE: frozenset(string.whitespace),
}

CATASTROPHIC_HINT: Final = (
    "a crafted argument makes such a regex backtrack exponentially; remove the nested "
    "quantifier or make the alternatives disjoint (`a+`, not `(a+)+`)"
)


def regex_problem(pattern: str) -> tuple[str, str, str] | None:
    """Check one regex: `None` if usable, else `(code, message, hint)`.

    `code` is `bad_regex` (does not compile) or `catastrophic_regex` (exponential
    backtracking possible).

    ```python
    regex_problem("^/srv/[a-z]+$")  # None
    regex_problem("(a+)+$")[0]      # 'catastrophic_regex'
    ```
    """
    try:
        parsed = _parser.parse(pattern)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        return "bad_regex", f"invalid regex {pattern!r}: {exc.msg}{where}", "check the syntax"
    except (RecursionError, OverflowError) as exc:
        return "bad_regex", f"regex {pattern!r} is too complex: {exc}", "simplify it"
    culprit = _find_catastrophe(list(parsed), inside_unbounded=False, last=True)
    if culprit is not None:
        return (
            "catastrophic_regex",
            f"regex {pattern!r} can backtrack catastrophically ({culprit})",
            CATASTROPHIC_HINT,
        )
    return None


def _find_catastrophe(items: list[Any], inside_unbounded: bool, last: bool = False) -> str | None:
    if _overlapping_run(items, last):
        return "three or more overlapping repeats in a row"
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            body = list(body)
            # `{1,10}` or `{20}` multiplies paths as `*` does: each iteration may split the
            # text differently (n**10 or 2**20 ways instead of 2**n). Two iterations (n**2)
            # stay allowed; three already take seconds on a few thousand characters.
            unbounded = high == _MAXREPEAT or high > 2
            if inside_unbounded and high != low and _can_consume(body):
                return "nested quantifier inside an unbounded repeat"
            if unbounded and _has_overlapping_branch(body, _first_chars(body, frozenset())):
                return "overlapping alternatives inside an unbounded repeat"
            if unbounded and _separated(body):
                # Every iteration must consume a character its inner repeats cannot, so
                # iterations cannot trade characters: no exponential choice.
                continue
            found = _find_catastrophe(body, inside_unbounded or unbounded)
            if found:
                return found
        elif op is _c.SUBPATTERN:
            found = _find_catastrophe(list(av[3]), inside_unbounded)
            if found:
                return found
        elif op is _c.BRANCH:
            for alt in av[1]:
                found = _find_catastrophe(list(alt), inside_unbounded)
                if found:
                    return found
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            found = _find_catastrophe(list(av[1]), inside_unbounded=False)
            if found:
                return found
        elif op is _c.GROUPREF_EXISTS:
            for branch in av[1:]:
                if branch is not None:
                    found = _find_catastrophe(list(branch), inside_unbounded)
                    if found:
                        return found
        # POSSESSIVE_REPEAT and ATOMIC_GROUP never backtrack into their body: safe.
    return None


def _can_consume(items: list[Any]) -> bool:
    """Whether the sequence can match at least one character (so nesting it multiplies paths)."""
    for op, av in items:
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue
        if op in _REPEATS and av[1] == 0:
            continue
        return True
    return False


def _nullable(items: list[Any]) -> bool:
    for op, av in items:
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue
        if op in _REPEATS and (av[0] == 0 or _nullable(list(av[2]))):
            continue
        if op is _c.SUBPATTERN and _nullable(list(av[3])):
            continue
        if op is _c.BRANCH and any(_nullable(list(alt)) for alt in av[1]):
            continue
        return False
    return True


def _separated(body: list[Any]) -> bool:
    r"""A mandatory single character in `body` that none of its variable repeats can match,
    with every repeat on the same side of it. (Repeats on both sides, `[a-z]*\.[a-z]*`,
    let one iteration's tail and the next one's head share the letters between two dots
    in as many ways as there are letters: exponential again.)"""
    flat: list[Any] = []
    for op, av in body:
        flat.extend(av[3] if op is _c.SUBPATTERN else [(op, av)])
    repeats: list[tuple[int, bool, frozenset[str]]] = []
    mandatory: list[tuple[int, frozenset[str]]] = []
    for at, (op, av) in enumerate(flat):
        if op in _REPEATS:
            inner = list(av[2])
            if len(inner) != 1 or inner[0][0] not in (_c.LITERAL, _c.NOT_LITERAL, _c.IN):
                return False
            chars = _charset(*inner[0])
            if chars is None:
                return False
            repeats.append((at, *chars))
        elif op in (_c.LITERAL, _c.IN):
            chars = _charset(op, av)
            if chars is not None and not chars[0]:
                mandatory.append((at, chars[1]))
        elif op is not _c.AT:
            return False
    # a plain set `m` is disjoint from a set `r` if no char of m is in r; from a negated
    # set `[^r]` if every char of m is in r
    return any(
        all(not (m & r) if not neg else m <= r for _, neg, r in repeats)
        and (all(at < sep for at, _, _ in repeats) or all(at > sep for at, _, _ in repeats))
        for sep, m in mandatory
    )


def _overlapping_run(items: list[Any], last: bool) -> bool:
    """Whether three variable repeats follow one another in `items`, each able to match
    what the one before it matches, with nothing between them that the one before could
    not match (`.*x.*x.*y`, `a*a*a*b`): a failing match tries every way to share the text
    among them, O(n**3) and worse. A repeat ending the whole pattern (`last`) does not
    count: it takes what is left at once."""
    run = 0
    before: frozenset[str] | None = frozenset()  # the previous repeat's characters
    consuming = [i for i, (op, _) in enumerate(items) if op is not _c.AT]
    end = consuming[-1] if consuming and last else -1
    for i, (op, av) in enumerate(items):
        if op is _c.AT:
            continue
        if op in _REPEATS and av[0] != av[1] and (av[1] == _MAXREPEAT or av[1] > 2):
            if i == end:
                break
            found = _all_chars(list(av[2]))
            overlaps = before is _ANY_CHAR or found is _ANY_CHAR or bool(found & before)
            run = run + 1 if run and overlaps else 1
            before = found
            if run >= 3:
                return True
        elif op in (_c.LITERAL, _c.IN) and run:
            found = _all_chars([(op, av)])
            if not (before is _ANY_CHAR or (found is not _ANY_CHAR and found <= before)):
                run = 0
        else:
            run = 0
    return False


def _charset(op: Any, av: Any) -> tuple[bool, frozenset[str]] | None:
    """`(negated, chars)` for a one-character element, `None` when not representable."""
    if op is _c.LITERAL:
        return False, frozenset(chr(av))
    if op is _c.NOT_LITERAL:
        return True, frozenset(chr(av))
    items = list(av)
    negated = bool(items) and items[0][0] is _c.NEGATE
    chars = _set_chars(items[1:] if negated else items)
    return None if chars is None else (negated, chars)


def _all_chars(items: list[Any]) -> frozenset[str] | None:
    chars: set[str] = set()
    for op, av in items:
        if op is _c.LITERAL:
            chars.add(chr(av))
        elif op is _c.IN:
            found = _set_chars(av)
            if found is _ANY_CHAR:
                return _ANY_CHAR
            chars |= found
        elif op in _REPEATS or op is _c.SUBPATTERN:
            found = _all_chars(list(av[2] if op in _REPEATS else av[3]))
            if found is _ANY_CHAR:
                return _ANY_CHAR
            chars |= found
        elif op is not _c.AT:
            return _ANY_CHAR
    return frozenset(chars)


def _has_overlapping_branch(items: list[Any], follow: frozenset[str] | None) -> bool:
    """Whether some alternation in `items` has two alternatives that can match alike.

    `follow` is what can come after `items` (for an empty alternative, the text after the
    alternation decides where the next match starts).
    """
    for i, (op, av) in enumerate(items):
        if op is _c.SUBPATTERN:
            if _has_overlapping_branch(list(av[3]), _first_chars(items[i + 1 :], follow)):
                return True
        elif op in _REPEATS:  # `(?:(?:a|aa){2})*`: the alternation sits inside a repeat
            body = list(av[2])
            if _has_overlapping_branch(body, _first_chars(body + items[i + 1 :], follow)):
                return True
        elif op is _c.BRANCH:
            rest = _first_chars(items[i + 1 :], follow)
            alts = [list(alt) for alt in av[1]]
            if sum(1 for alt in alts if _nullable(alt)) > 1:
                return True
            firsts = [_first_chars(alt, rest) for alt in alts]
            for j, a in enumerate(firsts):
                for b in firsts[j + 1 :]:
                    if a is _ANY_CHAR or b is _ANY_CHAR or (a & b):
                        return True
    return False


def _first_chars(items: list[Any], follow: frozenset[str] | None) -> frozenset[str] | None:
    """Characters the sequence (then `follow`) can start with; `None` for "any"."""
    chars: set[str] = set()
    for op, av in items:
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue
        if op is _c.LITERAL:
            found: frozenset[str] | None = frozenset(chr(av))
        elif op is _c.IN:
            found = _set_chars(av)
        elif op is _c.SUBPATTERN:
            found = _first_chars(list(av[3]), frozenset())
        elif op in _REPEATS:
            found = _first_chars(list(av[2]), frozenset())
        elif op is _c.BRANCH:
            found = frozenset()
            for alt in av[1]:
                part = _first_chars(list(alt), frozenset())
                if part is _ANY_CHAR:
                    return _ANY_CHAR
                found |= part
        else:
            return _ANY_CHAR
        if found is _ANY_CHAR:
            return _ANY_CHAR
        chars |= found
        if not _nullable([(op, av)]):
            return frozenset(chars)
    if follow is _ANY_CHAR:
        return _ANY_CHAR
    return frozenset(chars | follow)


def _set_chars(av: list[Any]) -> frozenset[str] | None:
    chars: set[str] = set()
    for op, arg in av:
        if op is _c.LITERAL:
            chars.add(chr(arg))
        elif op is _c.RANGE and arg[1] - arg[0] < 512:
            chars.update(chr(c) for c in range(arg[0], arg[1] + 1))
        elif op is _c.CATEGORY and arg in _CATEGORY_CHARS:
            chars |= _CATEGORY_CHARS[arg]
        else:  # negated sets, wide ranges, other categories: assume anything
            return _ANY_CHAR
    return frozenset(chars)
