#!/usr/bin/env bash
# Set up and run the demo on the embedded defaults (SQLite, in-memory channel layer):
# .venv + install, migrate, demo data, the training worker, a first trained model, then the
# server on http://127.0.0.1:8000. Ctrl-C stops the server and the worker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements.txt
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Plain log lines for a person at a terminal (production writes JSON lines: docs/operations.md).
export LOG_FORMAT="${LOG_FORMAT:-text}"
# Metrics in multiprocess mode: every process below writes its samples here, GET /metrics sums
# them. The directory must start empty (samples of processes from an earlier run would count).
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
PY=.venv/bin/python
ADDR="${DEMO_ADDR:-127.0.0.1:8000}"
HOST="${ADDR%:*}" PORT="${ADDR##*:}"

echo "==> migrating the database (var/switchboard.sqlite3)"
$PY manage.py migrate --noinput -v0
echo "==> loading the demo data"
$PY manage.py load_demo

mkdir -p var
echo "==> starting the training worker, the job worker and the scheduler (logs: var/*.log)"
$PY manage.py db_worker --queue-name training --no-reload >var/worker.log 2>&1 &
WORKER_PID=$!
# Periodic jobs (purges, timeouts) run on their own worker: a training run takes minutes.
$PY manage.py db_worker --queue-name default --no-reload >var/jobs.log 2>&1 &
JOBS_PID=$!
$PY manage.py run_scheduler >var/scheduler.log 2>&1 &
SCHEDULER_PID=$!
trap 'kill $WORKER_PID $JOBS_PID $SCHEDULER_PID 2>/dev/null || true' EXIT INT TERM

if ! $PY manage.py shell -v 0 -c "from routing.models import ModelVersion as M; raise SystemExit(0 if M.objects.filter(state='active').exists() else 1)"; then
  echo "==> the worker trains the first model on the demo tickets (about 4 minutes on 2 cores)"
  $PY manage.py train --queue --wait
fi

echo
echo "==> Switchboard is running:"
echo "    chat widget demo   http://$ADDR/"
echo "    agent console      http://$ADDR/agent/"
echo "    admin              http://$ADDR/admin/   (credentials printed above)"
echo "    API docs           http://$ADDR/api/docs/"
echo "    metrics            curl -H 'Authorization: Token <the API token printed above>' http://$ADDR/metrics"
# The same app server as production (uvicorn; see README "At scale").
$PY -m uvicorn chatbot.project.asgi:application --host "$HOST" --port "$PORT" --http httptools --loop uvloop --ws websockets --ws-max-size 65536
