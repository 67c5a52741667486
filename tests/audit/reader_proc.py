"""A reader process: queries the store every 0.2 s until STOPFILE exists, then prints what it
saw as JSON (queries, errors, whether counts ever went backwards, the last count).

Usage: reader_proc.py STORE STOPFILE
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from guard.audit import open_store


def main() -> None:
    store, stop = Path(sys.argv[1]), Path(sys.argv[2])
    while not (store / "decisions").is_dir():
        time.sleep(0.05)
    con = open_store(store)
    queries, errors, backwards, last = 0, [], False, 0
    while not stop.exists():
        try:
            (n,) = con.execute("SELECT count(*) FROM decision_log").fetchone()
            con.execute("SELECT user_id, allowed, count(*) FROM decisions GROUP BY ALL").fetchall()
            queries += 1
            backwards |= n < last
            last = n
        except Exception as exc:  # any error is what the test is looking for
            errors.append(repr(exc))
        time.sleep(0.2)
    print(
        json.dumps({"queries": queries, "errors": errors[:5], "backwards": backwards, "last": last})
    )


if __name__ == "__main__":
    main()
