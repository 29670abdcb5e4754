"""config_file hooks: set the key and the secret inside a bot's own config file.

Many bots keep their exchange key in their own config (freqtrade's `config.json`:
`exchange.key` / `exchange.secret`). This hook sets the two named fields in that existing file and
leaves everything else as it was:

- TOML through tomlkit and YAML through ruamel.yaml's round-trip mode: comments, key order,
  blank lines and quoting are kept (a YAML value keeps its old quote style);
- JSON by replacing only the characters of the two values (located with the standard library's
  own scanner), so every other byte stays: indentation, key order, number spelling, escapes.
  Comments are not JSON: a file with comments is refused as unparsable.

The replacement is atomic: a temp file in the same directory, created 0600 from the first instant
(os.open with O_CREAT|O_EXCL|O_NOFOLLOW), written and fsynced, given the original's owner, group
and mode, renamed over the original; then the directory is fsynced. If the file changed while we
edited it (the bot saved it), the edit starts again from the new content.

Refused, with `HandOffFailed` naming the file and the fix (the file is left untouched): a missing
file (this hook never creates one), a symbolic link or anything not a regular file, a file other
users may read (it is about to hold a secret), a file that does not parse, a field path that
crosses a non-object, a missing field (a typo would otherwise add a field the bot never reads), a
field that holds an object or a list. No value from the file, old or new, is ever logged or put in
an error message; parser messages are reduced to a line and column.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from rotator.adapters.files import fsync_directory
from rotator.config import ConfigFileFormat, ConfigFileHook
from rotator.errors import HandOffFailed

if TYPE_CHECKING:
    from rotator.adapters.hooks import HookContext

log = structlog.get_logger(__name__)

EDIT_TRIES = 3  # the bot saved its file while we edited it: start again this many times


class _ChangedMeanwhile(Exception):
    """The file is not the one we read any more."""


@dataclass(frozen=True, slots=True)
class ConfigFileHandOff:
    hook: ConfigFileHook
    kind: str = "config_file"

    def run(self, key_name: str, record: Mapping[str, Any], context: HookContext) -> None:
        del context
        api_key, api_secret = _credentials(record)
        path, fmt = self.hook.path, self.hook.file_format
        values = {self.hook.api_key_field: api_key, self.hook.api_secret_field: api_secret}
        for _ in range(EDIT_TRIES):
            data, before = read_config_file(path)
            text = _decode(data, path)
            edited = set_fields(text, fmt, values, path)
            if edited == text:
                log.info("handoff.config_file_unchanged", key=key_name, path=str(path))
                return
            try:
                replace_keeping_owner_and_mode(path, edited.encode("utf-8"), before)
            except _ChangedMeanwhile:
                continue
            log.info(
                "handoff.config_file_written",
                key=key_name,
                path=str(path),
                format=fmt,
                fields=sorted(values),
                mode=oct(stat.S_IMODE(before.st_mode)),
            )
            return
        raise HandOffFailed(
            f"config_file hook: {path} changed {EDIT_TRIES} times while the rotator edited it; "
            "the hand-off is retried later"
        )


# ---------------------------------------------------------------------------------- the file
def read_config_file(path: Path) -> tuple[bytes, os.stat_result]:
    """The file's bytes and its status, refusing what must not be edited."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise HandOffFailed(
            f"config_file hook: {path} does not exist; this hook sets fields in the bot's "
            "existing config file and never creates one: create it (with the two fields) first"
        ) from None
    except OSError as exc:
        raise HandOffFailed(f"config_file hook: cannot read {path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise HandOffFailed(
            f"config_file hook: {path} is a symbolic link; set path to the file it points to "
            f"({os.path.realpath(path)})"
        )
    if not stat.S_ISREG(info.st_mode):
        raise HandOffFailed(f"config_file hook: {path} is not a regular file")
    if info.st_mode & 0o007:
        raise HandOffFailed(
            f"config_file hook: {path} has mode {oct(stat.S_IMODE(info.st_mode))}: other users "
            f"may read it, and it is about to hold a secret. Run `chmod o-rwx {path}` (the file "
            "keeps its mode, owner and group when the rotator rewrites it)"
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            return handle.read(), info
    except OSError as exc:
        raise HandOffFailed(f"config_file hook: cannot read {path}: {exc.strerror}") from None


def replace_keeping_owner_and_mode(path: Path, data: bytes, before: os.stat_result) -> None:
    """Replace `path` with `data` atomically; the new file gets the old one's owner, group and
    mode. The temp file is 0600 from its first instant. Raises _ChangedMeanwhile (and changes
    nothing) when the file is no longer the one described by `before`."""
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        raise HandOffFailed(
            f"config_file hook: cannot create a temp file in {directory}: {exc.strerror}; the "
            "service must be allowed to write in that directory (systemd: ReadWritePaths=)"
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            own = os.fstat(handle.fileno())
            if (own.st_uid, own.st_gid) != (before.st_uid, before.st_gid):
                try:
                    os.fchown(handle.fileno(), before.st_uid, before.st_gid)
                except PermissionError:
                    raise HandOffFailed(
                        f"config_file hook: {path} belongs to uid {before.st_uid} gid "
                        f"{before.st_gid}; the service may not give its replacement the same "
                        "owner (no CAP_CHOWN). Let the file belong to the service's user and "
                        "give the bot's group read access (mode 0640) instead (docs/hooks.md)"
                    ) from None
            os.fchmod(handle.fileno(), stat.S_IMODE(before.st_mode))
        _ensure_unchanged(path, before)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(directory)


def _ensure_unchanged(path: Path, before: os.stat_result) -> None:
    now = os.lstat(path)
    if (now.st_ino, now.st_mtime_ns, now.st_size) != (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    ):
        raise _ChangedMeanwhile


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HandOffFailed(
            f"config_file hook: {path} is not UTF-8 text (byte {exc.start}); the rotator edits "
            "UTF-8 files only"
        ) from None


# ---------------------------------------------------------------------------------- formats
def set_fields(
    text: str, fmt: ConfigFileFormat, values: Mapping[str, str], path: Path | str
) -> str:
    """`text` with each field path of `values` set to its value, everything else kept."""
    if fmt == "json":
        return _set_json(text, values, path)
    if fmt == "yaml":
        return _set_yaml(text, values, path)
    return _set_toml(text, values, path)


def _unparsable(path: Path | str, fmt: str, line: int | None, column: int | None) -> HandOffFailed:
    where = f" (line {line}, column {column})" if line is not None else ""
    return HandOffFailed(
        f"config_file hook: {path} is not valid {fmt}{where}; fix the file, the rotator changes "
        "nothing in a file it cannot parse"
    )


def _locate(root: object, field: str, path: Path | str) -> tuple[MutableMapping[str, Any], str]:
    """The object holding `field` (a dotted path) in the parsed document, and its last key.
    Refuses paths that cross a non-object, missing fields and fields holding a structure."""
    parts = field.split(".")
    node = root
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node, MutableMapping):
            crossed = ".".join(parts[:depth]) or "the top level"
            raise HandOffFailed(
                f"config_file hook: {path}: {crossed} is not an object, so {field} cannot be set"
            )
        if part not in node:
            raise HandOffFailed(
                f"config_file hook: {path} has no {'.'.join(parts[: depth + 1])}; check "
                f"the field path {field!r} (the rotator adds no objects to a bot's config)"
            )
        node = node[part]
    leaf = parts[-1]
    if not isinstance(node, MutableMapping):
        crossed = ".".join(parts[:-1]) or "the top level"
        raise HandOffFailed(
            f"config_file hook: {path}: {crossed} is not an object, so {field} cannot be set"
        )
    if leaf not in node:
        raise HandOffFailed(
            f"config_file hook: {path} has no field {field}; check the field path, or add the "
            'field with an empty value (e.g. "") so the rotator knows it is the right one'
        )
    if isinstance(node[leaf], Mapping | list):
        raise HandOffFailed(
            f"config_file hook: {path}: {field} holds an object or a list, not a value; "
            "point the field path at the key or secret itself"
        )
    return node, leaf


# ---- JSON
def _skip_ws(text: str, idx: int) -> int:
    while idx < len(text) and text[idx] in " \t\n\r":
        idx += 1
    return idx


def _set_json(text: str, values: Mapping[str, str], path: Path | str) -> str:
    """Replace only the bytes of the two values: every other byte of the file stays as it was."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise HandOffFailed(
                f"config_file hook: {path} repeats a key inside one object; which one the bot "
                "reads is undefined, so the rotator will not edit it. Remove the duplicate"
            )
        return dict(pairs)

    try:
        doc = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise _unparsable(path, "JSON", exc.lineno, exc.colno) from None
    spans = []
    for field, value in values.items():
        _locate(doc, field, path)  # the clear refusals; the text below is then known to be valid
        start, end = json_value_span(text, field.split("."))
        spans.append((start, end, json.dumps(value)))
    for start, end, replacement in sorted(spans, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def json_value_span(text: str, parts: list[str]) -> tuple[int, int]:
    """Start and end offsets of the value at `parts` in valid JSON `text` without duplicate keys
    (both checked by the caller, as is that every step is an object holding the next key)."""
    decoder = json.JSONDecoder()
    idx = _skip_ws(text, 0)
    span = (idx, idx)
    for part in parts:
        idx = _skip_ws(text, idx + 1)
        while text[idx] != "}":
            key, idx = json.decoder.scanstring(text, idx + 1)  # type: ignore[attr-defined]  # typeshed omits it
            idx = _skip_ws(text, idx) + 1
            start = _skip_ws(text, idx)
            _, end = decoder.raw_decode(text, start)
            if key == part:
                span = (start, end)
            idx = _skip_ws(text, end)
            if text[idx] == ",":
                idx = _skip_ws(text, idx + 1)
        idx = span[0]
    return span


# ---- YAML
def _set_yaml(text: str, values: Mapping[str, str], path: Path | str) -> str:
    # ruamel.yaml and tomlkit are imported where a file of their format is edited: the daemon of
    # a fleet with no config_file hook never loads them (tests/test_lazy_imports.py).
    from ruamel.yaml import YAML  # noqa: PLC0415
    from ruamel.yaml.error import MarkedYAMLError, YAMLError  # noqa: PLC0415
    from ruamel.yaml.util import load_yaml_guess_indent  # noqa: PLC0415

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never fold a long line that was not folded
    try:
        doc, seq_indent, seq_offset = load_yaml_guess_indent(text, yaml=yaml)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise _unparsable(path, "YAML", line, column) from None
    except YAMLError:
        raise _unparsable(path, "YAML", None, None) from None
    if not isinstance(doc, MutableMapping):
        raise HandOffFailed(f"config_file hook: {path}: the top level is not a YAML mapping")
    mapping_indent = yaml_mapping_indent(text)
    if seq_offset is None or seq_indent is None:  # no block sequence in the file
        seq_indent, seq_offset = mapping_indent, 0
    yaml.indent(mapping=mapping_indent, sequence=max(seq_indent, seq_offset + 2), offset=seq_offset)
    yaml.explicit_start = text.lstrip().startswith("---")
    for field, value in values.items():
        node, leaf = _locate(doc, field, path)
        old = node[leaf]
        node[leaf] = _yaml_scalar(old, value)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


# ---- TOML
_YAML_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Plain words a YAML 1.1 reader (PyYAML, most bots) takes for booleans or null.
_YAML11_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})


def _yaml_scalar(old: object, value: str) -> object:
    """The new value in the old value's quote style; a plain old value stays plain only when
    every YAML reader (1.1 and 1.2) reads the new one back as the same string."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString  # noqa: PLC0415

    if isinstance(old, ScalarString):
        return type(old)(value)
    if _YAML_PLAIN.fullmatch(value) and value.lower() not in _YAML11_WORDS:
        return value
    return DoubleQuotedScalarString(value)


def yaml_mapping_indent(text: str) -> int:
    """How far the file indents a nested mapping (2 when it has none)."""
    parent: int | None = None
    for line in text.splitlines():
        content = line.split(" #", 1)[0].rstrip()
        if not content.strip() or content.lstrip().startswith(("#", "-")):
            continue
        column = len(content) - len(content.lstrip(" "))
        if parent is not None and column > parent:
            return column - parent
        parent = column if content.endswith(":") else None
    return 2


def _set_toml(text: str, values: Mapping[str, str], path: Path | str) -> str:
    import tomlkit  # noqa: PLC0415 (see _set_yaml)
    import tomlkit.exceptions  # noqa: PLC0415
    import tomlkit.items  # noqa: PLC0415

    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise _unparsable(path, "TOML", exc.line, exc.col) from None
    for field, value in values.items():
        node, leaf = _locate(doc, field, path)
        old = node[leaf]
        literal = (
            isinstance(old, tomlkit.items.String)
            and old.type is tomlkit.items.StringType.SLL
            and "'" not in value
            and value.isprintable()
        )
        node[leaf] = tomlkit.string(value, literal=literal)  # the old quote style where it fits
    return tomlkit.dumps(doc)


def _credentials(record: Mapping[str, Any]) -> tuple[str, str]:
    api_key, api_secret = record.get("api_key"), record.get("api_secret")
    if not isinstance(api_key, str) or not isinstance(api_secret, str) or not api_key:
        raise HandOffFailed("the consumer record lacks api_key/api_secret")
    return api_key, api_secret
