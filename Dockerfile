# The IdP as a container image, built from this repository: `docker build -t gas-idp .`
# (docs/production.md, "Containers"). No secret is baked in: every IDP_* setting comes from
# the environment (`docker run --env-file /etc/idp/idp.env …`) or an IDP_CONFIG file mounted
# at run time. Checked without a Docker daemon by tests/unit/test_dockerfile.py.
#
# Migrations are NOT run at start: `docker run --rm --env-file … gas-idp idp db upgrade`
# once per release, before the new instances start (several instances starting together
# would race for the migration, and an instance must never change the schema under the
# older ones that still serve; docs/production.md, "Upgrading").

# The project's Python (setup.cfg: python_requires >= 3.11, mypy python_version 3.11).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A system user without a login shell or a password; it owns only what the IdP writes.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin idp

WORKDIR /app

# The package itself (a regular, not editable, install): its dependencies and the `idp`
# command. The metadata first, so that the layer of dependencies is rebuilt only when
# they change.
COPY setup.cfg pyproject.toml README.md ./
COPY idp/ idp/
COPY providers/ providers/
COPY examples/ examples/
RUN pip install . \
    && for po in idp/translations/*/LC_MESSAGES/messages.po; do \
        pybabel compile --statistics -i "$po" -o "${po%.po}.mo" || exit 1; \
    done

# What the package reads from beside itself at run time: the IdP finds templates/,
# static/, config/ and migrations/ next to the idp/ folder (idp.settings.PROJECT_ROOT),
# and they are not in the wheel. So the code runs from /app (PYTHONPATH puts /app/idp
# before the installed copy), and the installed package provides the dependencies and
# the console script.
COPY config/ config/
COPY migrations/ migrations/
COPY templates/ templates/
COPY static/ static/
COPY wsgi.py ./

# Writable only where the IdP writes: the instance folder (a SQLite file in a trial run,
# demo mails). Production keeps its data in PostgreSQL.
RUN mkdir -p /var/lib/idp && chown idp:idp /var/lib/idp

# granian reads its options from GRANIAN_* too: one worker per core of the container
# (docs/production.md, "Workers and threads"); override with -e GRANIAN_WORKERS=4.
ENV PYTHONPATH=/app \
    IDP_MODE=production \
    IDP_INSTANCE_PATH=/var/lib/idp \
    GRANIAN_WORKERS=2 \
    GRANIAN_BLOCKING_THREADS=4

USER idp:idp
EXPOSE 5000

# /healthz: the process answers (no database); the balancer asks /readyz itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4)"]

# granian is PID 1 and gets the SIGTERM of `docker stop` itself: it stops accepting,
# finishes the requests in flight and exits (give it `docker stop --time 30`).
CMD ["granian", "--interface", "wsgi", "--host", "0.0.0.0", "--port", "5000", "wsgi:app"]
