import sys

from torch_geometric_unlearn.cli import main

sys.exit(main())
