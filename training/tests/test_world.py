"""The built-in world, its held-out pairs and the judge."""

from __future__ import annotations

import random

import numpy as np

from training import judge, world


def test_world_size_and_held_out_pairs():
    assert len(world.SHAPES) >= 5 and len(world.COLORS) >= 6
    assert len(world.SIZES) >= 2 and len(world.POSITIONS) >= 3
    pairs = len(world.SHAPES) * len(world.COLORS)
    assert len(world.HELD_OUT) / pairs >= 0.10
    train = world.training_scenes()
    assert not any((s.shape, s.color) in world.HELD_OUT for s in train)
    assert len(train) + len(world.held_out_scenes()) == len(world.all_scenes())


def test_rendering_is_seeded():
    s = world.all_scenes()[7]
    a = world.render(s, random.Random(3))
    b = world.render(s, random.Random(3))
    c = world.render(s, random.Random(4))
    assert a.shape == (world.RESOLUTION, world.RESOLUTION, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_judge_reads_every_attribute_of_rendered_scenes():
    scenes = world.sample_scenes(360, 9, world.all_scenes())
    images = world.render_many(scenes, 9)
    wrong = [(s, judge.judge(im).attributes()) for s, im in zip(scenes, images, strict=True)
             if judge.judge(im).attributes() != s.attributes()]
    assert len(wrong) <= 2, wrong[:5]


def test_judge_rejects_empty_and_two_objects():
    blank = np.full((32, 32, 3), 235, np.uint8)
    assert judge.judge(blank).shape == "none"
    rng = random.Random(0)
    a = world.render(world.Scene("circle", "red", "small", "left"), rng)
    b = world.render(world.Scene("square", "blue", "small", "right"), rng)
    two = np.where((b.astype(int) - 235).__abs__().sum(-1, keepdims=True) > 60, b, a)
    assert judge.judge(two).shape == "none"


def test_judge_handles_other_sizes():
    s = world.Scene("triangle", "green", "large", "middle")
    img = world.render(s, random.Random(1), resolution=64)
    assert judge.judge(img).attributes() == s.attributes()


def test_prompts_parse_back():
    for s in world.all_scenes()[:40]:
        assert world.parse_prompt(world.prompt(s)) == s.attributes()
    rng = random.Random(1)
    for s in world.all_scenes()[:40]:
        text, named = world.random_caption(s, rng)
        assert world.parse_prompt(text) == named
