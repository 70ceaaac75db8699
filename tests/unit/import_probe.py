"""What importing some modules does, seen from a fresh interpreter (run by ``test_schemas``).

    python -m tests.unit.import_probe declarations   # the declared tables before and after importing the writers
    python -m tests.unit.import_probe review         # which heavy modules the anomaly review pulls in
"""

import json
import sys


def declarations() -> list[dict]:
    from pipeline.io import warehouse

    alone = {db: sorted(t) for db, t in warehouse.SCHEMAS.items()}
    import pipeline.io.alerts  # noqa: F401
    import pipeline.tasks.ready  # noqa: F401
    import pipeline.tasks.sla  # noqa: F401

    return [alone, {db: sorted(t) for db, t in warehouse.SCHEMAS.items()}]


def review() -> list[str]:
    import pipeline.runtime.cli  # noqa: F401
    from pipeline.io import anomaly_review  # noqa: F401

    return sorted(m for m in ("pyspark", "pipeline.tasks.quality", "pipeline.tasks.ready") if m in sys.modules)


if __name__ == "__main__":
    print(json.dumps({"declarations": declarations, "review": review}[sys.argv[1]]()))
