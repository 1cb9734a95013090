"""Charter YAML -> :class:`Charter`, with findings a human can act on.

A charter is written by hand, so every problem is reported at the line where it
can be fixed.  The YAML is composed once with ``yaml.SafeLoader`` (never
``yaml.load``): the node tree gives the line of every field, duplicate keys
(which YAML would silently collapse to the last one), anchors and aliases (which
make a signed document harder to review) and merge keys; the same tree is then
constructed into plain data and validated by the schema.  Each schema error is
rewritten into one line that says what to do.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from modelpact.charter.findings import CharterReport, FieldPath, Finding, LineMap, format_path
from modelpact.charter.lint import lint_charter
from modelpact.charter.model import Charter
from modelpact.errors import CharterInvalid, quote_untrusted

__all__ = [
    "MAX_CHARTER_BYTES",
    "charter_from_document",
    "check_charter",
    "load_charter",
    "schema_findings",
]

#: A charter is a page of text; anything larger is refused before it is parsed.
MAX_CHARTER_BYTES = 256 * 1024

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_NO_ALIASES = "anchors and aliases are not allowed in a charter; write the value out"
_ZONE_HINT = "give a time with an explicit zone, e.g. 2026-01-01T00:00:00Z"
_SLUG = "must be a lower-case slug: a-z, 0-9 and '-', at most 63 characters, not starting with '-'"

#: What a pattern mismatch means, by the name of the field (or of the list it is in).
_PATTERN_MESSAGES = {
    "charter": _SLUG,
    "id": _SLUG,
    "model": _SLUG,
    "purposes": _SLUG,
    "versions": 'must be an exact version ("1.2.0"), a prefix ("1.*") or "*"',
    "session_ttl": "must be a duration such as 90s, 15m, 1h or 1d",
    "contacts": "must be an e-mail address",
    "webhook": "must be an https:// URL",
}

_DATETIME_ERRORS = {
    "timezone_aware",
    "datetime_type",
    "datetime_parsing",
    "datetime_from_date_parsing",
    "datetime_object_invalid",
}


def check_charter(text: str, *, source: str = "<charter>") -> CharterReport:
    """Parse, validate and lint ``text``; never raises for a bad charter.

    Lint runs only when the schema holds.  Findings are sorted by line.
    """
    try:
        data, lines, findings = _read(text, source)
    except _UnreadableError as exc:
        return CharterReport(None, exc.findings, source)
    charter: Charter | None = None
    try:
        charter = Charter.model_validate(data)
    except ValidationError as exc:
        findings.extend(schema_findings(exc, lines=lines, source=source))
    if charter is not None:
        findings.extend(lint_charter(charter, lines=lines, source=source))
    findings.sort(key=lambda f: f.line or 0)
    return CharterReport(charter, tuple(findings), source)


def load_charter(text: str, *, source: str = "<charter>") -> Charter:
    """Parse and validate ``text``; raise :class:`CharterInvalid` on any error finding.

    Warnings do not stop loading; ``check_charter`` shows them.
    """
    report = check_charter(text, source=source)
    if report.charter is None or report.errors:
        errors = report.errors
        noun = "error" if len(errors) == 1 else "errors"
        raise CharterInvalid(
            f"{source}: the charter has {len(errors)} {noun}",
            findings=tuple(str(f) for f in errors),
            hint="run 'modelpact charter check' on it to see every finding",
        )
    return report.charter


def charter_from_document(document: Any, *, source: str = "<charter>") -> Charter:
    """Validate a charter document already parsed from JSON (a stored or signed charter).

    Schema only, no lint: a charter signed under an older rule set stays readable.
    Raises :class:`CharterInvalid` with one finding per schema error.
    """
    try:
        return Charter.model_validate(document)
    except ValidationError as exc:
        findings = schema_findings(exc, lines=LineMap(), source=source)
        noun = "error" if len(findings) == 1 else "errors"
        raise CharterInvalid(
            f"{source}: the charter document has {len(findings)} schema {noun}",
            findings=tuple(str(f) for f in findings),
        ) from None


def schema_findings(
    exc: ValidationError, *, lines: LineMap, source: str = "<charter>"
) -> tuple[Finding, ...]:
    """One error finding per pydantic error, with a friendly message and the nearest line."""
    details = exc.errors(include_url=False, include_context=True, include_input=True)
    paths = [_path(d) for d in details]
    out: list[Finding] = []
    for detail, path in zip(details, paths, strict=True):
        if detail["type"] == "too_short" and any(
            other[: len(path)] == path and len(other) > len(path) for other in paths
        ):
            # pydantic counts only the items that validated: a list whose one item is
            # wrong is also "too short".  The item's own error says what to fix.
            continue
        out.append(_error(source, lines.line_of(path), path, _friendly(detail, path)))
    return tuple(out)


# -- YAML ---------------------------------------------------------------------------------------


class _UnreadableError(Exception):
    """The text cannot be turned into a charter document at all."""

    def __init__(self, *findings: Finding) -> None:
        super().__init__(findings[0].message)
        self.findings = findings


def _read(text: str, source: str) -> tuple[Any, LineMap, list[Finding]]:
    """Plain data, line map and structural findings of ``text``; raise :class:`_UnreadableError`."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CHARTER_BYTES:
        message = f"the charter is {size} bytes, over the {MAX_CHARTER_BYTES // 1024} KiB limit"
        raise _UnreadableError(_error(source, None, (), message))
    loader: _CharterLoader | None = None
    try:
        loader = _CharterLoader(text)
        root = loader.get_single_node()
        if loader.alias_lines:
            # Refused before anything is built: a cyclic or exponentially shared
            # structure must never reach the validator.
            raise _UnreadableError(
                *(_error(source, line, (), _NO_ALIASES) for line in loader.alias_lines)
            )
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL_TAG):
            raise _UnreadableError(_error(source, None, (), "the charter is empty"))
        if not isinstance(root, yaml.MappingNode):
            message = "a charter is a YAML mapping of fields (charter:, version:, owner:, ...)"
            raise _UnreadableError(_error(source, root.start_mark.line + 1, (), message))
        lines, findings, fatal = _scan(root, source)
        if fatal:
            raise _UnreadableError(*sorted(findings, key=lambda f: f.line or 0))
        return loader.construct_document(root), lines, findings
    except RecursionError:
        raise _UnreadableError(
            _error(source, None, (), "the charter is nested too deeply")
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = _one_line(exc.problem or exc.context or "unreadable YAML")
        if exc.context == "expected a single document in the stream":
            message = "a charter file holds one YAML document; remove the second '---'"
        elif isinstance(exc, yaml.constructor.ConstructorError):
            message = f"YAML value not allowed in a charter: {reason}"
        else:
            message = f"YAML syntax error: {reason}"
        raise _UnreadableError(_error(source, line, (), message)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"YAML cannot contain the character U+{code:04X}"
        raise _UnreadableError(_error(source, line, (), message)) from None
    except yaml.YAMLError as exc:
        raise _UnreadableError(
            _error(source, None, (), f"unreadable YAML: {_one_line(exc)}")
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


def _scan(root: yaml.MappingNode, source: str) -> tuple[LineMap, list[Finding], bool]:
    """Lines of every field path, and the structural problems YAML itself lets through.

    The flag says whether a problem is fatal (a key that is not text: the document
    cannot be validated field by field).
    """
    lines: dict[FieldPath, int] = {}
    findings: list[Finding] = []
    fatal = False

    def walk(node: yaml.Node, path: FieldPath) -> None:
        nonlocal fatal
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:
                    message = "merge keys (<<) are not allowed in a charter; write the fields out"
                    findings.append(_error(source, line, path, message))
                elif key_node.tag != _STR_TAG:
                    fatal = True
                    what = _name(key) if key else "a list or mapping"
                    message = f"a field name must be text, not {what}"
                    findings.append(_error(source, line, path, message))
                    continue
                elif key == "from_" and path == ("valid",):
                    # The model also accepts its Python name; a charter file uses the schema's.
                    message = "unknown field 'from_' (not part of the charter schema); write 'from'"
                    findings.append(_error(source, line, (*path, key), message))
                elif key in keys:
                    message = "duplicate key (YAML would keep only the last one); keep one"
                    findings.append(_error(source, line, (*path, key), message))
                else:
                    keys.add(key)
                    lines[(*path, key)] = line
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    walk(root, ())
    return LineMap(lines), findings, fatal


class _CharterLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also notes where each alias (``*name``) is.

    The composer hands back the anchored node itself for an alias, so the alias's
    own line is only known while composing.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_lines: list[int] = []

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            self.alias_lines.append(mark.line + 1 if mark is not None else 1)
        return super().compose_node(parent, index)


# -- messages -----------------------------------------------------------------------------------


def _path(detail: ErrorDetails) -> FieldPath:
    return tuple("from" if part == "from_" else part for part in detail["loc"])


def _friendly(detail: ErrorDetails, path: FieldPath) -> str:
    kind = detail["type"]
    value = detail.get("input")
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        return f"unknown field {_name(path[-1])} (not part of the charter schema)"
    if kind == "missing":
        return "required field missing"
    if kind in _DATETIME_ERRORS:
        return _ZONE_HINT
    if kind == "string_type":
        if field == "versions" and isinstance(value, int | float) and not isinstance(value, bool):
            return 'quote the version pattern, e.g. "1.*"'
        if isinstance(value, int | float | bool | dt.date):
            return "must be text; put it in quotes"
        return "must be text"
    if kind == "string_pattern_mismatch":
        return _PATTERN_MESSAGES.get(field, "does not have the expected form")
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return "needs at least one entry"
    if kind == "value_error":
        return _one_line(detail["msg"].removeprefix("Value error, "))
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a mapping of fields"
    if kind in ("tuple_type", "list_type"):
        return "must be a list"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind == "enum":
        expected = (detail.get("ctx") or {}).get("expected", "")
        return f"must be one of {expected}" if expected else "is not one of the allowed values"
    message = detail["msg"]
    for prefix, replacement in (("Input should be", "must be"), ("Input should", "must")):
        if message.startswith(prefix):
            message = replacement + message[len(prefix) :]
            break
    return _one_line(message[:1].lower() + message[1:])


def _error(source: str, line: int | None, path: FieldPath, message: str) -> Finding:
    return Finding("error", line, format_path(path), message, source)


def _name(key: object) -> str:
    return quote_untrusted(str(key), limit=40)


def _one_line(value: object) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()
