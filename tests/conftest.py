"""Test-wide environment: offline hubs, a private Prefect home, no analytics."""
import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="teso-prefect-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
# Prefect's console handler keeps the stream it was configured with; pytest's capture streams are
# closed between tests, so point Prefect at the process's real stderr.
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM"] = "ext://sys.__stderr__"
os.environ["PREFECT_LOGGING_HANDLERS_DEBUG_STREAM"] = "ext://sys.__stderr__"
