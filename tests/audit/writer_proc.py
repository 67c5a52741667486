"""A process that appends decisions until it is killed, acknowledging each one in a shared
file the test reads after the kill.

Usage: writer_proc.py STORE ACKFILE MODE [PACE_SECONDS]

ACKFILE (mmap'd): int64 count of acknowledged appends, then one float64 wall-clock time per
decision index `i` (0 until acknowledged). MODE `default`: `append` returning acknowledges;
`durable`: `await wait_durable` returning acknowledges, with 16 concurrent tasks sharing fsyncs.
"""

from __future__ import annotations

import asyncio
import mmap
import struct
import sys
import time

from audit_kit import event

from guard.audit import AuditLog

CAPACITY = 2_000_000


def main() -> None:
    store, ackfile, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    pace = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    with open(ackfile, "r+b") as fh:
        ack = mmap.mmap(fh.fileno(), 8 + 8 * CAPACITY)
    log = AuditLog(store, durable=mode == "durable")
    print("ready", flush=True)
    if mode == "durable":
        asyncio.run(_durable(log, ack))
        return
    i = 0
    while i < CAPACITY:
        log.append(event(i))
        struct.pack_into("d", ack, 8 + 8 * i, time.time())
        i += 1
        struct.pack_into("q", ack, 0, i)
        if pace:
            time.sleep(pace)


async def _durable(log: AuditLog, ack: mmap.mmap) -> None:
    counter = iter(range(CAPACITY))

    async def worker() -> None:
        for i in counter:
            ev = event(i)
            log.append(ev)
            assert await log.wait_durable(ev.decision_id)
            struct.pack_into("d", ack, 8 + 8 * i, time.time())

    await asyncio.gather(*(worker() for _ in range(16)))


if __name__ == "__main__":
    main()
