"""Settings for daphne subprocesses started by the chat tests: the real settings, plus a
channel-layer key prefix of the test's own (CHANNELS_PREFIX), so test runs sharing one Redis
never hear each other's groups."""

import os

from chatbot.settings import *  # noqa: F401,F403
from chatbot.settings import CHANNEL_LAYERS, REDIS_URL

if REDIS_URL and os.environ.get("CHANNELS_PREFIX"):
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = os.environ["CHANNELS_PREFIX"]
