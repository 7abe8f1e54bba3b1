"""World: validation names the bad value; numpy integers are normalised to int."""
from __future__ import annotations

import numpy as np
import pytest

from imagenet_stream.errors import PlanError
from imagenet_stream.streaming.plan import World


def test_defaults_describe_a_single_process() -> None:
    assert World() == World(rank=0, world_size=1, worker=0, num_workers=1)


def test_numpy_integers_become_plain_ints() -> None:
    world = World(np.int64(1), np.int32(4), np.int16(2), np.uint8(3))
    assert world == World(1, 4, 2, 3)
    assert all(type(v) is int for v in (world.rank, world.world_size, world.worker, world.num_workers))


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"rank": 2, "world_size": 2}, "rank=2"),
    ({"rank": -1}, "-1"),
    ({"world_size": 0}, "world_size must be >= 1, got 0"),
    ({"worker": 3, "num_workers": 3}, "worker=3"),
    ({"num_workers": 0}, "num_workers must be >= 1, got 0"),
    ({"rank": True}, "True"),
    ({"worker": 1.0, "num_workers": 2}, "1.0"),
    ({"world_size": "2"}, "'2'"),
])
def test_invalid_worlds_raise_plan_error_naming_the_value(kwargs: dict, needle: str) -> None:
    with pytest.raises(PlanError) as info:
        World(**kwargs)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)
