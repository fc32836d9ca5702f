"""``python -m latentsync_client submit|jobs|result|cancel ...``"""

import sys

from latentsync_client.cli import main

sys.exit(main())
