"""What the WSGI server serves: `granian --interface wsgi wsgi:app`.

Start-up fails fast, with one line, on a bad setting, on a database that is not migrated
yet, and on signing keys the configured key-encryption key cannot decrypt.
"""

import sys

from sqlalchemy.exc import OperationalError, ProgrammingError

from idp import create_app, mail
from idp.keys import KeyDecryptionError
from idp.settings import SettingsError

try:
    app = create_app()
    # Loads (on a new installation: creates) the signing keys now rather than at the first
    # request, so that a wrong key-encryption key stops start-up instead of answering 500s.
    app.extensions["idp.keyring"].reload()
    # A stopping worker finishes the mail it is sending and starts no other (idp/mail.py).
    mail.get_sender(app).drain_at_exit = False
except (SettingsError, KeyDecryptionError) as exc:
    sys.stderr.write(f"idp: {exc}\n")
    sys.exit(2)
except (OperationalError, ProgrammingError) as exc:
    sys.stderr.write(f"idp: the database is not ready (run `idp db upgrade`): {exc.orig}\n")
    sys.exit(2)
