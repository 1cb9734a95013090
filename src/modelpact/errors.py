"""The one exception root of modelpact, and its family.

Every failure a caller must tell apart has its own type; interfaces catch only
:class:`ModelpactError` and show :meth:`ModelpactError.diagnostics` to a human::

    ModelpactError
     ├── InvalidInput            a file, argument or document that cannot be used
     │    ├── CharterInvalid     a charter with errors (carries the findings)
     │    └── ModelRejected      an artifact that must not be registered (pickle, bad graph)
     ├── NotFound                a partner, model, version, charter or workspace that does not exist
     │    └── ContextNeeded      an encryption context the gateway does not hold (upload it)
     ├── AlreadyExists           an immutable thing that is already there
     ├── Denied                  the policy said no (carries its reasons)
     │    └── Unauthenticated    no valid session or proof of key
     ├── Expired                 outside a validity window
     ├── QuotaExhausted          a limit is used up
     ├── Tampered                bytes that fail their integrity check
     │    ├── SignatureInvalid   a signature that does not verify, or by the wrong party
     │    ├── ProofInvalid       a Merkle inclusion or consistency proof that does not verify
     │    └── LogInconsistent    two checkpoints that cannot both be true (fork, rollback)
     ├── ServerError             the gateway failed or answered nonsense (seen by the SDK)
     ├── InsecureKeyFile         a private key or secret readable by others
     ├── KeyExhausted            a key made as many encryptions as it safely may (rotate it)
     └── StorageUnavailable      the database or artifact store cannot be used
          └── AuditUnavailable   the audit log cannot make an entry durable (fail closed)
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "AttestationFailed",
    "AuditUnavailable",
    "BudgetExhausted",
    "CharterInvalid",
    "ContextNeeded",
    "Denied",
    "Expired",
    "InsecureKeyFile",
    "InvalidInput",
    "KeyExhausted",
    "LogInconsistent",
    "ModelRejected",
    "ModelUnavailable",
    "ModelpactError",
    "NotFound",
    "ProofInvalid",
    "QuotaExhausted",
    "ServerError",
    "SignatureInvalid",
    "StorageUnavailable",
    "Tampered",
    "Unauthenticated",
    "UnsafeDeployment",
    "quote_untrusted",
]


class ModelpactError(Exception):
    """Root of every error modelpact raises on purpose.

    ``summary`` says what went wrong in one sentence; ``hint`` says what a human
    can do about it.  Neither ever contains a secret or a partner's raw input.
    """

    default_hint = ""

    def __init__(self, summary: str, *, hint: str | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.hint = hint if hint is not None else self.default_hint

    def diagnostics(self) -> str:
        """One line a human can act on: what happened and, if known, what to do."""
        if self.hint:
            return f"{self.summary} — {self.hint}"
        return self.summary


class InvalidInput(ModelpactError):
    """A file, argument or document that cannot be used as given."""


class CharterInvalid(InvalidInput):
    """A charter that does not pass its schema or its lint errors."""

    def __init__(self, summary: str, *, findings: tuple[str, ...] = (), hint: str | None = None):
        super().__init__(summary, hint=hint)
        self.findings = findings

    def diagnostics(self) -> str:
        first = f": {self.findings[0]}" if self.findings else ""
        more = f" (and {len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        base = f"{self.summary}{first}{more}"
        return f"{base} — {self.hint}" if self.hint else base


class ModelRejected(InvalidInput):
    """A model artifact that must not be registered."""


class NotFound(ModelpactError):
    """Something named that does not exist."""


class ContextNeeded(NotFound):
    """An encrypted request under an encryption context the gateway does not hold (never
    uploaded in this session, or dropped to make room): upload it again, then retry."""

    default_hint = "upload the session's encryption context (PUT /v1/encryption/context)"


class AlreadyExists(ModelpactError):
    """Something immutable that already exists."""


class Denied(ModelpactError):
    """The policy denied the request, or the caller could not show who it is.

    ``reasons`` are the policy's own words (which grant or rule decided), safe
    to show the partner who asked.
    """

    def __init__(
        self, summary: str, *, reasons: tuple[str, ...] = (), hint: str | None = None
    ) -> None:
        super().__init__(summary, hint=hint)
        self.reasons = reasons


class Unauthenticated(Denied):
    """No valid session: a missing, unknown, revoked or expired token, or a bad proof of key."""


class BudgetExhausted(Denied):
    """A partner's privacy budget on a noised grant is spent: no further answers, ever."""


class Expired(ModelpactError):
    """Outside a validity window."""


class QuotaExhausted(ModelpactError):
    """A limit is used up; ``retry_after`` says in how many seconds it frees up, if known."""

    def __init__(
        self, summary: str, *, retry_after: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(summary, hint=hint)
        self.retry_after = retry_after


class Tampered(ModelpactError):
    """Bytes that fail their integrity check."""


class SignatureInvalid(Tampered):
    """A signature that does not verify, or was made by the wrong party."""


class ProofInvalid(Tampered):
    """A Merkle inclusion or consistency proof that does not verify."""


class AttestationFailed(Tampered):
    """An attestation document that does not verify, is stale or for another nonce, or names
    other serving code, models or charter than the partner expects."""

    default_hint = (
        "do not send data: ask the model owner what changed, and compare the document's "
        "measurement with the charter's attestation pins"
    )


class LogInconsistent(Tampered):
    """Checkpoints that cannot both be true: a fork, a rollback or a rewritten history.

    ``evidence`` holds the conflicting signed checkpoints, as text, for a human to keep.
    """

    def __init__(self, summary: str, *, evidence: tuple[str, ...] = (), hint: str | None = None):
        super().__init__(summary, hint=hint)
        self.evidence = evidence


class ServerError(ModelpactError):
    """The other side failed in a way the caller cannot fix (an HTTP 5xx, a broken reply)."""


class InsecureKeyFile(ModelpactError):
    """A private key or secret file that others could read."""


class KeyExhausted(ModelpactError):
    """A key has made as many encryptions as it safely may: it must be replaced first."""

    default_hint = "rotate the key-encryption key with: modelpact keys rotate-kek"


class ModelUnavailable(ModelpactError):
    """The model worker that was running a request crashed, hung or ran out of memory.

    The worker is replaced; the request may be sent again.
    """

    default_hint = "send the request again; if it keeps failing, tell the model owner"


class UnsafeDeployment(ModelpactError):
    """The installation fails a critical ``modelpact doctor`` check; the gateway will not start."""

    default_hint = "run `modelpact doctor` and apply each fix it names"


class StorageUnavailable(ModelpactError):
    """The database or the artifact store cannot be used."""


class AuditUnavailable(StorageUnavailable):
    """The audit log cannot make an entry durable; requests that must be audited are refused."""


def quote_untrusted(text: str, *, limit: int = 80) -> str:
    """Show a name someone else chose (a tensor, a YAML key, a file) safely in a message.

    The text is put in single quotes, non-printable characters are escaped and it
    is cut at ``limit``, so a crafted name cannot forge log lines, smuggle
    terminal escapes or flood a message.
    """
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[: limit + 1])
    if len(text) > limit:
        shown = shown[: limit - 1] + "…"
    return "'" + shown.replace("'", "\\'") + "'"
