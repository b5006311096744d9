"""A release of Switchboard under test: its tree, database, model and one uvicorn on loopback.

``Release`` is what ``bench/open_world.py`` measures (this tree beside ``--baseline-ref`` in a
git worktree) and what the security probes attack; ``manage`` and ``shell_value`` run that
tree's own ``manage.py``, so each release is set up by its own code.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from chat_servers import server_command  # noqa: E402
from common import banking77_team_names, banking77_tickets_csv  # noqa: E402
from route_bench import server_env, wait_healthy  # noqa: E402

REGISTER = """
import json, os, shutil
from pathlib import Path
from finetune.ml.artifacts import verify_checksums
from routing.models import ModelVersion, Team
artifact, store = Path(os.environ["BENCH_ARTIFACT"]), Path(os.environ["MODEL_STORE"])
names = json.loads(os.environ["BENCH_TEAM_NAMES"])
labels = json.loads((artifact / "labels.json").read_text())
serving = json.loads((artifact / "serving.json").read_text())
# Not teams: the reserved labels (format 2 names its no-intent label, "~no_intent"; older, "_" labels).
reserved = set(serving.get("reserved_labels", [])) | {serving.get("no_intent_label")}
for label in labels:
    if label not in reserved and not label.startswith(("_", "~")):
        Team.objects.get_or_create(slug=label, defaults={"name": names.get(label, label)})
shutil.copytree(artifact, store / "bench")
ModelVersion.objects.create(artifact_dir="bench", sha256=verify_checksums(store / "bench"), labels=labels,
                            state=ModelVersion.State.ACTIVE)
"""
TOKEN = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
user, _ = get_user_model().objects.get_or_create(username="open-world-bench")
print("BENCH_TOKEN", Token.objects.get_or_create(user=user)[0].key)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(tree: Path, env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} in {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def shell_value(tree: Path, env: dict, script: str, marker: str) -> str:
    for line in manage(tree, env, "shell", "-c", script).splitlines():
        if line.startswith(marker + " "):
            return line[len(marker) + 1 :]
    raise SystemExit(f"manage.py shell in {tree} printed no {marker} line")


def release_env(work: Path, database_url: str | None) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    env = server_env(work)
    env.update({"CHAT_HANDSHAKES_PER_MINUTE": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def model_prepare(tree: Path, env: dict, artifact: Path | None, args, work: Path) -> None:
    """The active model: ``artifact`` registered as it is, else trained by the product from tickets."""
    manage(tree, env, "migrate", "--noinput", "-v", "0")
    if artifact is not None:
        manage(tree, env, "shell", "-c", REGISTER)
        return
    csv_path = banking77_tickets_csv(work / "tickets.csv", args.train_tickets, args.seed)
    print(f"  {tree.name}: import_tickets + train ({args.train_tickets} tickets; minutes)", flush=True)
    manage(tree, env, "import_tickets", str(csv_path), "--label-column", "team", "--create-teams")
    report = manage(tree, env, "train")
    if "PROMOTED" not in report:  # the promotion gate refused it: nothing would serve
        raise SystemExit(f"manage.py train in {tree} did not promote its model:\n{report[-2000:]}")
    if args.keep:  # e.g. to measure again with --artifact / --baseline-artifact, without training
        shutil.copytree(env["MODEL_STORE"], args.keep / work.parent.name, dirs_exist_ok=True)


def project_modules(tree: Path) -> tuple[str, str]:
    """(settings module, ASGI application) of a tree; releases before the layering kept both in chatbot/."""
    if (tree / "chatbot" / "project" / "settings.py").is_file():
        return "chatbot.project.settings", "chatbot.project.asgi:application"
    return "chatbot.settings", "chatbot.asgi:application"


class Release:
    """One release's server: its tree, database and model; started by ``start``, ended by ``stop``."""

    def __init__(
        self,
        name: str,
        tree: Path,
        work: Path,
        database_url: str | None,
        artifact: Path | None,
        team_names: dict[str, str] | None = None,
    ):
        """``team_names``: the names of the teams the artifact's labels create (default: Banking77's)."""
        self.name, self.tree, self.work = name, tree, work
        self.env = release_env(work, database_url)
        self.env["DJANGO_SETTINGS_MODULE"], self.application = project_modules(tree)
        self.env["BENCH_TEAM_NAMES"] = json.dumps(banking77_team_names() if team_names is None else team_names)
        if artifact is not None:
            self.env["BENCH_ARTIFACT"] = str(artifact.resolve())
        self.artifact = artifact
        self.port, self.process, self.token = free_port(), None, ""

    def start(self, args) -> None:
        model_prepare(self.tree, self.env, self.artifact, args, self.work)
        self.token = shell_value(self.tree, self.env, TOKEN, "BENCH_TOKEN")
        log_path = self.work / "server.log"
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                server_command("uvicorn", self.port, self.application),
                cwd=self.tree,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_healthy(self.port)
        except RuntimeError as exc:
            raise SystemExit(f"{self.name}: {exc}\n{log_path.read_text(errors='replace')[-3000:]}") from exc

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def worktree(ref: str, path: Path):
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(path), ref], cwd=ROOT, check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)
