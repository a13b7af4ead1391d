"""`python -m examples.meter_service`: see examples.run for the environment."""

from examples import run
from examples.meter_service import DEFAULT_AUDIENCE, DEFAULT_PORT, create_app

run(create_app, DEFAULT_AUDIENCE, DEFAULT_PORT)
