"""Hot swap: a promotion under concurrent load fails no request and mixes no versions."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.db import connection

from routing.loaded_model import LoadedModel
from routing.services import model_version_promote

TEXTS = ["my card was charged twice", "cannot login after password reset", "the app crashes"]


def _hammer(router, stop: threading.Event, seen: list, errors: list) -> None:
    try:
        while not stop.is_set():
            predictions = router.predict(TEXTS)
            seen.append([(p.model_version, p.scores) for p in predictions])
    except Exception as exc:  # recorded, then asserted empty by the test
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_promotion_under_load_answers_every_request_wholly_by_one_version(router, teams, install_version):
    """Four threads predict while v2 is promoted: zero errors, each batch = exactly one version's output."""
    v1 = install_version("v1", state="active")
    v2 = install_version("v2")
    expected = {str(v.pk): LoadedModel.from_version(v).probabilities(TEXTS) for v in (v1, v2)}
    labels = {str(v1.pk): ("accounts", "billing", "bugs"), str(v2.pk): ("accounts", "billing")}
    stop, errors = threading.Event(), []
    seen_by_thread = [[] for _ in range(4)]
    threads = [threading.Thread(target=_hammer, args=(router, stop, seen, errors)) for seen in seen_by_thread]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    model_version_promote(version=v2, user=None)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(s and s[-1][0][0] == str(v2.pk) for s in seen_by_thread):
        time.sleep(0.05)
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()

    assert errors == []
    for seen in seen_by_thread:
        versions = [batch[0][0] for batch in seen]
        assert versions[0] == str(v1.pk) and versions[-1] == str(v2.pk)
        # Once a thread saw v2 it never sees v1 again.
        assert versions == sorted(versions, key=lambda v: v == str(v2.pk))
        for batch in seen:
            version = batch[0][0]
            for row, (batch_version, scores) in zip(expected[version], batch):
                assert batch_version == version
                assert tuple(scores) == labels[version]
                assert list(scores.values()) == pytest.approx(
                    list(row[: len(scores)]), abs=1e-6
                )  # the reserved no-intent label sorts last


@pytest.mark.django_db(transaction=True)
async def test_apredict_runs_off_the_event_loop(router, teams, install_version):
    """apredict answers like predict while the event loop keeps running other tasks."""
    from asgiref.sync import sync_to_async

    await sync_to_async(install_version)("v1", state="active")
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    predictions = await router.apredict(TEXTS)
    ticks_during_predict = ticks
    task.cancel()
    expected = await sync_to_async(router.predict)(TEXTS)
    assert [p.scores for p in predictions] == [p.scores for p in expected]
    assert ticks_during_predict > 0
