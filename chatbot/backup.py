"""Backup and restore of a whole installation: the database's rows and the model store, in one file.

``manage.py backup FILE`` writes a gzipped tar with ``manifest.json`` (when, which migrations,
the active version), ``db.json`` (``dumpdata`` with natural keys, so content types and
permissions are matched by name in the new database) and ``models/<artifact_dir>/`` for every
model version. ``manage.py restore FILE`` migrates an empty database, loads the rows, puts the
artifacts into MODEL_STORE and verifies the active version's checksums before it says done.
Database-agnostic (SQLite to PostgreSQL works); for large PostgreSQL installs pg_dump is faster
(docs/operations.md).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from django.core.management import call_command
from django.db import transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from chatbot.core.conf import model_store
from chatbot.core.errors import SwitchboardError
from finetune.ml.artifacts import verify_checksums
from finetune.ml.errors import ChecksumError
from finetune.models import Ticket
from routing.models import ModelVersion

FORMAT = 1
# Rebuilt by migrate in the new database, or state that must not travel (sessions, queued jobs, login lockouts).
EXCLUDED = ["contenttypes", "auth.permission", "sessions", "django_tasks_database", "admin.logentry", "axes"]


def backup_write(*, path: Path) -> dict:
    """Write the backup file; returns its manifest."""
    versions = list(ModelVersion.objects.values_list("artifact_dir", "state", "pk"))
    active = next((pk for _, state, pk in versions if state == ModelVersion.State.ACTIVE), None)
    manifest = {
        "format": FORMAT,
        "created_at": timezone.now().isoformat(),
        "active_version": active,
        "migrations": sorted(
            f"{app}.{name}" for app, name in MigrationRecorder.Migration.objects.values_list("app", "name")
        ),
        "artifacts": sorted(directory for directory, _, _ in versions if (model_store() / directory).is_dir()),
    }
    rows = io.StringIO()
    call_command("dumpdata", exclude=EXCLUDED, natural_foreign=True, natural_primary=False, stdout=rows)
    with tarfile.open(path, "w:gz") as archive:
        _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=2).encode())
        _add_bytes(archive, "db.json", rows.getvalue().encode())
        for directory in manifest["artifacts"]:
            archive.add(model_store() / directory, arcname=f"models/{directory}")
    return manifest


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(timezone.now().timestamp())
    archive.addfile(info, io.BytesIO(data))


def backup_restore(*, path: Path) -> dict:
    """Restore a backup into an empty database and model store; returns its manifest.

    Refuses, before writing anything, a database that already holds model versions or tickets,
    an artifact directory that already exists, and artifacts whose files do not verify; the rows
    and the active version's sha256 are checked in one transaction.
    """
    call_command("migrate", interactive=False, verbosity=0)
    if ModelVersion.objects.exists() or Ticket.objects.exists():
        raise SwitchboardError("The database is not empty: restore into a new database.", code="not_empty")
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(path, "r:gz") as archive:
        archive.extractall(scratch, filter="data")
        root = Path(scratch)
        manifest = json.loads((root / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise SwitchboardError(f"Backup format {manifest.get('format')} is not {FORMAT}.", code="backup_format")
        digests = _artifacts_verify(root / "models", manifest["artifacts"])
        with transaction.atomic():
            call_command("loaddata", str(root / "db.json"), verbosity=0)
            _active_check(manifest["active_version"], digests)
            _artifacts_put(root / "models", manifest["artifacts"])
    return manifest


def _artifacts_verify(source: Path, directories: list[str]) -> dict[str, str]:
    clashes = [name for name in directories if (model_store() / name).exists()]
    if clashes:
        raise SwitchboardError(
            f"MODEL_STORE already has {', '.join(clashes)}: restore into an empty store.", code="not_empty"
        )
    digests = {}
    for name in directories:
        try:
            digests[name] = verify_checksums(source / name)
        except ChecksumError as exc:
            raise SwitchboardError(f"Model version files {name} do not verify: {exc}", code="artifact_invalid") from exc
    return digests


def _active_check(active: int | None, digests: dict[str, str]) -> None:
    if active is None:
        return
    version = ModelVersion.objects.get(pk=active)
    if digests.get(version.artifact_dir) != version.sha256:
        raise SwitchboardError(f"The active version {active}'s files do not verify.", code="artifact_invalid")


def _artifacts_put(source: Path, directories: list[str]) -> None:
    model_store().mkdir(parents=True, exist_ok=True)
    for name in directories:
        shutil.copytree(source / name, model_store() / name)
