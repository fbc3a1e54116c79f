"""`python -m vlogger.cli`: the same as the `vlogger` command."""

from vlogger.cli import main

raise SystemExit(main())
