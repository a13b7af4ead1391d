"""What the WSGI server serves: `granian --interface wsgi wsgi:app`."""

import sys

from idp import create_app
from idp.settings import SettingsError

try:
    app = create_app()
except SettingsError as exc:
    sys.stderr.write(f"idp: {exc}\n")
    sys.exit(2)
