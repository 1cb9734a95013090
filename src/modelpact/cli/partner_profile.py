"""What the partner's CLI keeps on disk between commands: its profile and each run's state.

- :class:`PartnerProfile` — ``modelpact-partner.toml``, written 0600 by ``partner session``:
  the gateway, the key file, the signed charter, the purpose, the CA, the log's origin and
  the witness's state file.  Settings only, never a session token: a token is a bearer
  secret good for the charter's ``session_ttl``, so storing it would add a second secret
  file to guard for a gain of two requests per command (the key, which opens a session
  whenever one is needed, is on disk anyway).  It is still kept 0600 and refused when
  others can read or write it: whoever can edit it can send the partner's rows to
  another gateway.
- :class:`PredictionRun` — the files of one ``partner predict``: the output CSV, the
  receipts (``OUT.receipts.jsonl``, one line per request the gateway answered) and the
  run's state (``OUT.state.json``: the input's SHA-256, the model and version, how many
  rows are done and how many bytes of output hold them).  Each batch appends its receipt,
  then its output rows, then replaces the state, each made durable (fsync) before the
  next; so after a crash the state never claims rows the output lacks, and a resumed run
  cuts the output back to what the state records before it goes on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelpact.cli.terminal import fsync_folder, replace_durably
from modelpact.crypto import read_private_file
from modelpact.errors import (
    InvalidInput,
    NotFound,
    ServerError,
    StorageUnavailable,
    quote_untrusted,
)

__all__ = [
    "FeatureFile",
    "PartnerProfile",
    "PredictionRun",
    "RunState",
    "feature_rows",
    "output_csv",
    "receipts_path",
    "scan_features",
    "state_path",
]

_MAX_FILE = 1 << 20


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.json")


def receipts_path(output: Path) -> Path:
    return output.with_name(output.name + ".receipts.jsonl")


def append_durably(path: Path, data: bytes) -> int:
    """Append ``data`` to ``path`` and fsync it; return the file's size afterwards."""
    try:
        with path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            return handle.tell()
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the document"
    return f"{where}: {error['msg']}"


# -- the profile ---------------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = []
    for ch in value:
        if ch in '"\\':
            escaped.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\u{ord(ch):04X}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


class PartnerProfile(BaseModel):
    """How this partner reaches the gateway; paths are absolute once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gateway: str = Field(min_length=1)
    key: Path
    charter: Path
    purpose: str = Field(min_length=1)
    ca: Path | None = None
    log_origin: str = Field(min_length=1)
    witness: Path

    @classmethod
    def load(cls, path: Path) -> PartnerProfile:
        """Read a profile; refuses one that others can read or write, like a key."""
        try:
            data = read_private_file(path)
        except NotFound:
            raise NotFound(
                f"no partner profile at {path}",
                hint="run 'modelpact partner session' first, or pass --profile FILE",
            ) from None
        if len(data) > _MAX_FILE:
            raise InvalidInput(f"the profile {path} is larger than {_MAX_FILE} bytes")
        try:
            document = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"the profile {path} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"the profile {path} is not valid TOML: {exc}") from None
        try:
            profile = cls.model_validate(document)
        except ValidationError as exc:
            raise InvalidInput(
                f"the profile {path} is not a partner profile: {_first_error(exc)}",
                hint="write it again with 'modelpact partner session'",
            ) from None
        base = path.parent.absolute()
        return profile.model_copy(
            update={
                "key": base / profile.key,
                "charter": base / profile.charter,
                "ca": None if profile.ca is None else base / profile.ca,
                "witness": base / profile.witness,
            }
        )

    def to_toml(self) -> str:
        lines = [
            "# modelpact partner profile, written by 'modelpact partner session'.",
            "# Settings only (no session token); keep it private (0600): it names your key.",
        ]
        for name, value in self.model_dump().items():
            if value is not None:
                lines.append(f"{name} = {_toml_string(str(value))}")
        return "\n".join(lines) + "\n"

    def save(self, path: Path) -> None:
        """Write (or replace) the profile, mode 0600, durably."""
        replace_durably(path, self.to_toml().encode("utf-8"))


# -- the input and output CSVs ---------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureFile:
    """A CSV of numeric features, checked whole before any row is sent."""

    path: Path
    sha256: str
    rows: int
    width: int


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _is_header(record: list[str]) -> bool:
    """Names, not numbers: no cell is a number, or the cells are pandas' default 0..n-1."""
    return all(_number(cell) is None for cell in record) or record == [
        str(i) for i in range(len(record))
    ]


def feature_rows(path: Path) -> Iterator[list[float]]:
    """Each row of features, after a header if the first row is one (:func:`_is_header`).

    Blank lines are skipped; every other line must hold the same number of finite
    numbers as the first row (or the header).  Errors name the line.  A first row
    mixing names and numbers is data, so a typo in it is an error, not a lost row.
    """
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise NotFound(f"input {path} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read input {path}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle, strict=True)
        width: int | None = None
        first = True
        try:
            for record in reader:
                if not record:
                    continue
                line = reader.line_num
                if first:
                    first = False
                    if _is_header(record):
                        width = len(record)
                        continue
                if width is None:
                    width = len(record)
                elif len(record) != width:
                    raise InvalidInput(
                        f"{path} line {line}: {len(record)} values, expected {width} "
                        "like the first row"
                    )
                yield [_feature(cell, path, line, column) for column, cell in enumerate(record, 1)]
        except csv.Error as exc:
            raise InvalidInput(f"{path} line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"{path} is not UTF-8 text") from None


def _feature(cell: str, path: Path, line: int, column: int) -> float:
    value = _number(cell)
    if value is None:
        raise InvalidInput(
            f"{path} line {line}, column {column}: {quote_untrusted(cell, limit=40)} "
            "is not a number"
        )
    if not math.isfinite(value):
        raise InvalidInput(f"{path} line {line}, column {column}: {cell.strip()} is not finite")
    return value


def scan_features(path: Path) -> FeatureFile:
    """Hash and check the whole input, so a bad line stops the run before any row is sent."""
    try:
        with path.open("rb") as handle:
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        raise NotFound(f"input {path} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read input {path}: {exc.strerror}") from None
    rows, width = 0, 0
    for row in feature_rows(path):
        rows, width = rows + 1, len(row)
    if not rows:
        raise InvalidInput(f"{path} holds no rows of features")
    return FeatureFile(path, sha256, rows, width)


def _pairs(items: Any) -> list[tuple[Any, Any]] | None:
    """``[{"label": l, "score": s}, ...]`` as pairs, or None for anything else."""
    if not isinstance(items, list):
        return None
    pairs = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"label", "score"}:
            return None
        pairs.append((item["label"], item["score"]))
    return pairs


def _cells(output: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """One output flattened into (column names, values).

    ``label`` → ``label``; ``value`` → ``value``; ``top_k`` → ``label_1,score_1,...``
    best first; ``scores`` → one ``score_<label>`` column per class; anything else
    → its JSON in an ``output`` column.
    """
    kind = next(iter(output)) if len(output) == 1 else None
    if kind in ("label", "value"):
        return [kind], [output[kind]]
    pairs = _pairs(output.get(kind)) if kind in ("top_k", "scores") else None
    if kind == "top_k" and pairs is not None:
        names = [
            f"{name}_{rank}" for rank in range(1, len(pairs) + 1) for name in ("label", "score")
        ]
        return names, [cell for pair in pairs for cell in pair]
    if kind == "scores" and pairs is not None:
        return [f"score_{label}" for label, _ in pairs], [score for _, score in pairs]
    return ["output"], [json.dumps(output, sort_keys=True, separators=(",", ":"))]


def output_csv(
    outputs: list[dict[str, Any]], first_row: int, columns: list[str] | None
) -> tuple[list[str], str]:
    """The batch's output rows as CSV text (with the header if the run has none yet)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for number, output in enumerate(outputs, first_row):
        names, values = _cells(output)
        if columns is None:
            columns = names
            writer.writerow(["row", *columns])
        elif names != columns:
            raise ServerError(
                f"row {number}'s output has columns {', '.join(names)[:200]}, not the run's "
                f"{', '.join(columns)[:200]}: the grant's output changed during the run",
                hint="start over into a new --out",
            )
        writer.writerow([number, *values])
    assert columns is not None
    return columns, text.getvalue()


# -- a prediction run ----------------------------------------------------------------------------


class RunState(BaseModel):
    """How far one ``partner predict`` got; replaced after every batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["modelpact-predict-run/v1"] = "modelpact-predict-run/v1"
    input: str
    input_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=1)
    model: str
    version: str | None = Field(description="pinned to the first batch's answer")
    columns: list[str] | None = Field(description="the output's header, set by the first batch")
    rows_done: int = Field(ge=0)
    output_bytes: int = Field(ge=0)

    @property
    def complete(self) -> bool:
        return self.rows_done >= self.rows


def _start_over(output: Path) -> str:
    return f"to start over, remove {output} and {state_path(output)}"


@dataclass
class PredictionRun:
    """The output CSV, its receipts and its state, for a new run or one resumed."""

    output: Path
    state: RunState
    resumed: bool

    @property
    def receipts(self) -> Path:
        return receipts_path(self.output)

    @classmethod
    def begin(
        cls,
        output: Path,
        *,
        input_path: Path,
        input_sha256: str,
        rows: int,
        model: str,
        version: str | None,
    ) -> PredictionRun:
        """Start a run, or pick up the one whose state lies beside ``output``.

        A resumed run must be over the same input (same SHA-256), model and (if given)
        version; its output is cut back to the bytes the state records, so rows of a
        batch that was written but not recorded are not duplicated.  A run that has no
        batch done yet begins afresh, whatever its input.
        """
        previous = cls._load_state(output)
        if previous is None or previous.rows_done == 0:  # nothing done yet: begin afresh
            if previous is None and output.exists():
                raise InvalidInput(
                    f"{output} already exists and is not a run in progress "
                    f"(no {state_path(output).name} beside it)",
                    hint="choose another --out, or remove it",
                )
            state = RunState(
                input=str(input_path.absolute()),
                input_sha256=input_sha256,
                rows=rows,
                model=model,
                version=version,
                columns=None,
                rows_done=0,
                output_bytes=0,
            )
            run = cls(output, state, resumed=False)
            run._save()  # first: a crash now leaves a state and no output, which resumes
            run._truncate_output(0)
            return run
        cls._check_same_run(previous, output, input_path, input_sha256, rows, model, version)
        run = cls(output, previous, resumed=True)
        run._truncate_output(previous.output_bytes)
        run._repair_receipts()
        return run

    @staticmethod
    def _check_same_run(
        state: RunState,
        output: Path,
        input_path: Path,
        input_sha256: str,
        rows: int,
        model: str,
        version: str | None,
    ) -> None:
        if state.input_sha256 != input_sha256 or state.rows != rows:
            raise InvalidInput(
                f"{input_path} is not the input the run into {output} began with "
                f"(sha256 {input_sha256[:16]}…, the run has {state.input_sha256[:16]}…)",
                hint=f"restore that input ({state.input}), or {_start_over(output)}",
            )
        if state.model != model:
            raise InvalidInput(
                f"the run into {output} predicts with model {state.model}, not {model}",
                hint=_start_over(output),
            )
        if version is not None and state.version is not None and state.version != version:
            raise InvalidInput(
                f"the run into {output} uses version {state.version}, not {version}",
                hint=f"leave out --version to go on with {state.version}, or {_start_over(output)}",
            )

    @staticmethod
    def _load_state(output: Path) -> RunState | None:
        path = state_path(output)
        try:
            text = path.read_bytes()[: _MAX_FILE + 1]
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from None
        try:
            return RunState.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidInput(
                f"the run state {path} is damaged: {_first_error(exc)}",
                hint=_start_over(output),
            ) from None

    def _truncate_output(self, size: int) -> None:
        try:
            with self.output.open("ab") as handle:
                actual = handle.seek(0, os.SEEK_END)
                if actual < size:
                    raise InvalidInput(
                        f"{self.output} holds {actual} bytes, fewer than the {size} its run "
                        "state records: the output was changed",
                        hint=_start_over(self.output),
                    )
                handle.truncate(size)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {self.output}: {exc.strerror}") from None
        fsync_folder(self.output.parent)

    def _repair_receipts(self) -> None:
        """Drop a half-written last line (a crash in mid-append); keep every whole receipt."""
        path = self.receipts
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from None
        if data and not data.endswith(b"\n"):
            try:
                with path.open("r+b") as handle:
                    handle.truncate(data.rfind(b"\n") + 1)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None

    def _save(self) -> None:
        replace_durably(state_path(self.output), self.state.model_dump_json(indent=2).encode())

    def record(
        self, receipt: dict[str, Any], csv_text: str, rows: int, *, columns: list[str], version: str
    ) -> None:
        """One batch done: its receipt, then its output rows, then the state, each durable."""
        line = json.dumps(receipt, ensure_ascii=False, sort_keys=True) + "\n"
        append_durably(self.receipts, line.encode("utf-8"))
        size = append_durably(self.output, csv_text.encode("utf-8"))
        self.state = self.state.model_copy(
            update={
                "rows_done": self.state.rows_done + rows,
                "output_bytes": size,
                "columns": columns,
                "version": self.state.version or version,
            }
        )
        self._save()
