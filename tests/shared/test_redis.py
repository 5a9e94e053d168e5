from __future__ import annotations

from redis.asyncio import Redis


async def test_each_test_gets_an_empty_real_redis(redis: Redis) -> None:
    assert await redis.dbsize() == 0
    await redis.set("left-behind", "by this test")
    info = await redis.info("server")
    assert info["redis_version"]


async def test_the_previous_tests_keys_are_gone(redis: Redis) -> None:
    assert await redis.get("left-behind") is None
