"""`python -m idp.effective`: record the settings a server is about to start with, so the
admin CLI in any other shell uses the same issuer and database (idp/settings.py explains).

`make run` calls it before serving, with the environment it gives the server. It reads the
settings without the previous file (which would otherwise feed back into the new one) and
writes instance/effective.toml, or the file IDP_EFFECTIVE_CONFIG names.
"""

from __future__ import annotations

import os
import sys

from idp.settings import SettingsError, effective_config_path, load_settings, write_effective


def main(command: str = "make run") -> int:
    env = dict(os.environ)
    path = effective_config_path(env)
    if path is None:
        print("idp: IDP_EFFECTIVE_CONFIG is empty: no effective settings written", file=sys.stderr)
        return 0
    try:
        # The old file must not count: only what this start-up is given.
        settings = load_settings(environ={**env, "IDP_EFFECTIVE_CONFIG": ""})
        write_effective(settings, path, env.get("IDP_CONFIG", ""), command)
    except (SettingsError, OSError) as exc:
        print(f"idp: {exc}", file=sys.stderr)
        return 2
    print(f"Effective settings written to {path} (the idp CLI uses issuer {settings.issuer})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
