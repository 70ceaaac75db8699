"""Holds the warehouse lock for SECONDS, printing ``held`` once it has it (run by ``test_lock``).

    python tests/unit/lock_holder.py SECONDS
"""

import sys
import time

from pipeline import config
from pipeline.io import lock

if __name__ == "__main__":
    config.load_profile()
    with lock.warehouse_lock("TransactionBatch(date=2010-12-01, window=8)"):
        print("held", flush=True)
        time.sleep(float(sys.argv[1]))
