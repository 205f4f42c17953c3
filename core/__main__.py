"""``python -m simclr`` (what ``torchrun -m simclr train exp.yaml`` runs)."""

from simclr.cli.main import main

raise SystemExit(main())
