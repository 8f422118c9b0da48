"""Child process of the crash test: appends events under load and prints each id once acked.

Usage: python -m tests.online.log_writer_child LOG_DIR ROUND SEED

Appends batches of 1-16 new events (ids ``r<ROUND>-<n>``), now and then mixed with retries of
ids from earlier rounds (a retry repeats the event's content, a function of its id), forever; prints ``ACK <id>`` for every event of a batch after
`EventLog.append` returned (that is, after the fsync). The parent kills it with SIGKILL.
"""

from __future__ import annotations

import random
import sys
import time
import zlib

from online.config import EventLogConfig
from online.event_log import EventLog
from online.events import Event


def main(log_dir: str, round_: int, seed: int) -> None:
    rng = random.Random(seed)
    log = EventLog(log_dir, EventLogConfig(segment_bytes=8192))
    print("READY", flush=True)
    n = 0
    while True:
        batch = []
        for _ in range(rng.randint(1, 16)):
            if round_ > 0 and rng.random() < 0.2:
                event_id = f"r{rng.randrange(round_)}-{rng.randrange(50)}"  # a retry, maybe never stored
            else:
                event_id, n = f"r{round_}-{n}", n + 1
            key = zlib.crc32(event_id.encode())
            batch.append(Event(event_id, f"u{key % 100}", f"i{key // 100 % 50}", "rating", 4.0, 1_600_000_000))
        results = log.append(batch, time.time())
        sys.stdout.write("".join(f"ACK {r.event_id}\n" for r in results))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
