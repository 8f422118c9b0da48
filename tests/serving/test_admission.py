"""Front-end overload shedding: lag -> shed level -> lowest classes refused at admission."""

from __future__ import annotations

import asyncio
import time

import pytest

from serving.admission import LagMonitor, shed_level
from tests.serving.conftest import MODEL, http, make_config


def test_shed_level_grows_with_lag_up_to_the_classes_below_default() -> None:
    assert [shed_level(lag, 0.01, 2) for lag in (0.0, 0.009, 0.01, 0.019, 0.02, 0.5)] == \
        [0, 0, 1, 1, 2, 2]
    assert shed_level(0.5, 0.01, 1) == 1  # with (low, normal, high) only 'low' is ever shed
    assert shed_level(1.0, 0.0, 2) == 0  # disabled


def test_monitor_publishes_changes_only() -> None:
    published = []
    monitor = LagMonitor(0.01, 2, published.append)
    for _ in range(20):
        monitor.observe(0.05)
    assert published == [1, 2] and monitor.level == 2
    for _ in range(40):
        monitor.observe(0.0)
    assert published[-1] == 0 and monitor.level == 0


def test_monitor_measures_a_blocked_loop() -> None:
    published = []
    monitor = LagMonitor(0.01, 1, published.append)

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(monitor.run())
        await asyncio.sleep(0.02)
        for _ in range(8):
            time.sleep(0.03)  # a starved loop: every probe wakes ~30 ms late
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(scenario())
    assert published and published[0] == 1


def test_shed_classes_are_refused_before_any_work(base_path, start_server) -> None:
    server = start_server(make_config(base_path))
    port = server.ports.rest
    server.core.set_shed_level(1)
    path = f"/v1/models/{MODEL}:predict"
    status, reply = http(port, "POST", path, {"instances": ["u1"]}, headers={"X-Priority": "low"})
    assert status == 429 and "overloaded" in reply["error"]
    assert http(port, "POST", path, {"instances": ["u1"]}, headers={"X-Priority": "normal"})[0] == 200
    # even a malformed low-priority request is refused for load, before it is decoded
    assert http(port, "POST", path, {"instances": [1]}, headers={"X-Priority": "low"})[0] == 429
    assert server.metrics.shed.value(MODEL, "low") == 2
    status, text = http(port, "GET", "/monitoring/prometheus/metrics")
    assert "serving_shed_level 1" in text
    server.core.set_shed_level(0)
    assert http(port, "POST", path, {"instances": ["u1"]}, headers={"X-Priority": "low"})[0] == 200


@pytest.mark.parametrize("lag_ms", [-1.0, float("nan")])
def test_invalid_lag_setting_is_refused(lag_ms) -> None:
    from serving.config import SchedulingConfig, ServingConfigError

    with pytest.raises(ServingConfigError):
        SchedulingConfig(overload_lag_ms=lag_ms)


def test_shed_max_class_lets_lag_shed_up_to_it_but_never_the_highest_class() -> None:
    from serving.config import SchedulingConfig, ServingConfigError

    assert SchedulingConfig().shed_levels == 1  # only the classes below the default
    assert SchedulingConfig(shed_max_class="normal").shed_levels == 2
    for bad in ({"shed_max_class": "high"}, {"shed_max_class": "urgent"},
                {"urgent_workers": -1}, {"urgent_max_batch_size": -1}):
        with pytest.raises(ServingConfigError, match=next(iter(bad))):
            SchedulingConfig(**bad)


def test_urgent_workers_join_the_pool_and_serve(base_path, start_server) -> None:
    from serving.config import SchedulingConfig

    server = start_server(make_config(base_path, scheduling=SchedulingConfig(
        overload_lag_ms=0.0, urgent_workers=1, urgent_max_batch_size=2)))
    assert server._pool.num_workers == server.config.batching.num_batch_threads + 1
    path = f"/v1/models/{MODEL}:predict"
    for priority in ("high", "low"):
        assert http(server.ports.rest, "POST", path, {"instances": ["u1", "u2"]},
                    headers={"X-Priority": priority})[0] == 200


def test_inflight_limit_shares_refuse_the_lowest_classes_first() -> None:
    from serving.config import SchedulingConfig
    from serving.core import refused_at_door

    scheduling = SchedulingConfig(inflight_limit=9)  # low may fill 1, normal 4, high 9
    assert [[refused_at_door(scheduling, level, 0, inflight) for level in range(3)]
            for inflight in (0, 1, 3, 4, 8, 9)] == [[False, False, False], [True, False, False],
                                                    [True, False, False], [True, True, False],
                                                    [True, True, False], [True, True, True]]
    assert not refused_at_door(SchedulingConfig(), 0, 0, 10 ** 6)  # 0: no limit
    assert refused_at_door(SchedulingConfig(), 0, 1, 0)  # lag shedding still applies


def test_inflight_limit_refuses_low_before_any_work(base_path, start_server) -> None:
    import threading

    from serving.config import SchedulingConfig
    from tests.serving.conftest import wait_for

    server = start_server(make_config(base_path, scheduling=SchedulingConfig(
        overload_lag_ms=0.0, inflight_limit=3)))
    path = f"/v1/models/{MODEL}:predict"
    slow = {"signature_name": "slow", "instances": [{"user_id": "u1", "delay_us": 1_500_000}]}
    holder = threading.Thread(target=http, args=(server.ports.rest, "POST", path, slow))
    holder.start()
    try:
        assert wait_for(lambda: server.core.inflight == 1)
        status, reply = http(server.ports.rest, "POST", path, {"instances": ["u1"]},
                             headers={"X-Priority": "low"})
        assert status == 429 and "overloaded" in reply["error"]
        for priority in ("normal", "high"):  # their shares are not reached
            assert http(server.ports.rest, "POST", path, {"instances": ["u1"]},
                        headers={"X-Priority": priority})[0] == 200
    finally:
        holder.join(timeout=20)
    assert http(server.ports.rest, "POST", path, {"instances": ["u1"]},
                headers={"X-Priority": "low"})[0] == 200
