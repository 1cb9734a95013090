"""Child process for the crash test: append audit entries until the log holds TOTAL.

Usage: python -m tests.audit.crash_child DATABASE_URL KEY_FILE TOTAL

Prints ``A <index> <leaf hash hex>`` for every entry *after* ``append`` returned
(the acknowledgement), from several threads at once so that commits are grouped.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from modelpact.audit.entries import AccessEntry
from modelpact.audit.log import AuditLog
from modelpact.crypto import SigningKey
from modelpact.store import open_store

ORIGIN = "modelpact/crash-test/log"
THREADS = 4


def main() -> None:
    url, key_file, total = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    store = open_store(url)
    with store.unit_of_work() as uow:
        start = uow.audit.size()
    log = AuditLog(
        store,
        key=SigningKey.load(key_file),
        origin=ORIGIN,
        clock=lambda: datetime.now(UTC),
        checkpoint_interval=0.02,
    )
    counter = iter(range(start, total))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            entry = AccessEntry(
                time=datetime.now(UTC),
                actor="acme",
                subject=f"request-{n}",
                charter="crash",
                purpose="testing",
                action="predict",
                model="m",
                version="1",
                decision="allow" if n % 3 else "deny",
                reasons=(f"reason {n}",),
                rows=n % 7,
            )
            receipt = log.append(entry)
            line = f"A {receipt.index} {receipt.leaf_hash.hex()}\n"
            with lock:
                sys.stdout.write(line)
                sys.stdout.flush()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    store.close()
    sys.stdout.write("DONE\n")


if __name__ == "__main__":
    main()
