"""``python -m bench``: every benchmark row in one run (``bench.run``)."""

from bench.run import main

raise SystemExit(main())
