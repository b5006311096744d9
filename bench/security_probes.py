"""Issue 17's security probes, run by hand: a real server of this tree, attacked as a client would.

    .venv/bin/python bench/security_probes.py [--artifact DIR] [--layer redis|memory] [--json FILE]

One uvicorn of this tree on loopback, started as bench/releases.py starts a release (its
``Release``: temp SQLite database, ``migrate``, the model registered as the active version, the
command of bench/chat_load.py's ``server_command`` with ``--ws-max-size``), with the bench's
production settings (``DEBUG=0``, a real ``SECRET_KEY``, ``ALLOWED_HOSTS=127.0.0.1``; only
``SECURE_SSL_REDIRECT=0``: loopback has no TLS) after ``collectstatic``. The probe also sets
``TRUSTED_PROXY_COUNT=1`` (each probe comes from its own ``X-Forwarded-For`` address, so the
per-address limits of one probe do not touch the next) and ``CHAT_HANDSHAKES_PER_MINUTE=50``.
The model is ``--artifact DIR``, else the tests' tiny artifact (tests/ml_fixtures.py, seconds).

``--layer redis`` (the default when ``redis-server`` is on PATH) starts a private redis-server on
loopback for the channel layer and cache: account changes made in another process (the probe's
``manage.py shell``) then reach the server's open sockets, as in a deployment. With ``memory``
the server re-checks access every 2 s instead, and those rows say what that timer did.

Then issue 17's list (items 1-8), over HTTP and websockets only; the database is touched only
where the issue says an operator changes it (``manage.py shell``) and to count rows. Prints one
table row per probe (PASS / FAIL / NOT RUN, with what was sent, expected and observed) and exits
1 if any probe failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from probe_kit import FAIL, PASSWORD, summary_line, table_lines  # noqa: E402
from probes_access import HANDSHAKES_PER_MINUTE, MEMORY_RECHECK_SECONDS, AccessProbes  # noqa: E402
from probes_input import InputProbes  # noqa: E402
from releases import Release, free_port, manage, shell_value  # noqa: E402

LABELS = ["accounts", "billing", "bugs"]
SETUP = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from routing.models import ModelVersion, Team
users, password = get_user_model().objects, __import__("os").environ["PROBE_PASSWORD"]
staff = users.create_user("probe-staff", "s@example.com", password, is_staff=True, is_superuser=True)
plain = users.create_user("probe-user", "u@example.com", password)
teams = list(Team.objects.filter(active=True))
for mode in ("deactivate", "team", "session"):
    agent = users.create_user(f"probe-agent-{mode}", f"{mode}@example.com", password)
    agent.teams.add(*teams)
print("PROBE_SETUP", json.dumps({
    "staff_token": Token.objects.create(user=staff).key,
    "token": Token.objects.create(user=plain).key,
    "version": ModelVersion.objects.get(state="active").pk,
    "artifact_dir": ModelVersion.objects.get(state="active").artifact_dir,
    "teams": sorted(team.slug for team in teams),
}))
"""


class Probes(AccessProbes, InputProbes):
    """Every probe, against one server."""


@contextlib.contextmanager
def redis_server(work: Path):
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def tiny_artifact(work: Path) -> Path:
    from tests.ml_fixtures import make_tiny_artifact

    return make_tiny_artifact(work / "tiny", LABELS)


async def probes_run(probes: Probes) -> None:
    await probes.revoked_agent()
    await probes.handshakes()
    await probes.nested_json()
    probes.static_files(probes.csp()["/"])
    await probes.max_size()
    probes.login_throttle()
    await probes.console_origin()
    probes.api_contract()
    await probes.health_and_artifacts()  # last: it corrupts the served model's file
    probes.server_log()
    probes.results.sort(key=lambda r: r.probe[0] if r.probe[0].isdigit() else "9")  # stable: run order within one


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--artifact", type=Path, help="a model version directory to serve (default: the tiny test model)"
    )
    parser.add_argument(
        "--layer", choices=["redis", "memory"], default="redis" if shutil.which("redis-server") else "memory"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="security-probes-") as tmp_name, contextlib.ExitStack() as stack:
        work = Path(tmp_name)
        print(f"model: {args.artifact or 'tiny test artifact'}; channel layer: {args.layer}", flush=True)
        artifact = args.artifact or tiny_artifact(work)
        release = Release("current", ROOT, work / "server", None, artifact, team_names={})
        release.env.update(
            {
                "CHAT_HANDSHAKES_PER_MINUTE": str(HANDSHAKES_PER_MINUTE),
                "TRUSTED_PROXY_COUNT": "1",
                "STATIC_ROOT": str(work / "static"),
                "PROBE_PASSWORD": PASSWORD,
            }
        )
        if args.layer == "redis":
            release.env["REDIS_URL"] = stack.enter_context(redis_server(work))
        else:  # another process's change reaches the sockets only by the server's own re-check
            release.env["AGENT_ACCESS_RECHECK_SECONDS"] = str(MEMORY_RECHECK_SECONDS)
        manage(ROOT, release.env, "collectstatic", "--noinput", "-v", "0")
        try:
            release.start(None)
            setup = json.loads(shell_value(ROOT, release.env, SETUP, "PROBE_SETUP"))
            probes = Probes(release, setup, args.layer, Path(release.env["MODEL_STORE"]))
            print(f"server on port {release.port}; probes:", flush=True)
            try:
                asyncio.run(probes_run(probes))
            except BaseException:
                log = (release.work / "server.log").read_text(errors="replace")
                print(f"a probe could not run; the server's log ends:\n{log[-4000:]}", file=sys.stderr)
                raise
        finally:
            release.stop()
    print("\n" + "\n".join(table_lines(probes.results)))
    print("\n" + summary_line(probes.results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in probes.results], indent=2))
    return 1 if any(r.status == FAIL for r in probes.results) else 0


if __name__ == "__main__":
    sys.exit(main())
