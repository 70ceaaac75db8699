from pipeline.runtime.cli import main

raise SystemExit(main())
