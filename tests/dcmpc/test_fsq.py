"""FSQ against hand-computed cases: codebook, values, indices, straight-through gradient."""

from __future__ import annotations

import torch as th

from sb3_worldmodels.dcmpc.fsq import FSQ


# ------------------------------------------------------------------------------------------- FSQ
def test_fsq_codebook_has_15_ordered_codes():
    fsq = FSQ([5, 3])
    assert fsq.codebook_size == 15
    assert fsq.codebook.shape == (15, 2)
    assert set(fsq.codebook[:, 0].tolist()) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert set(fsq.codebook[:, 1].tolist()) == {-1.0, 0.0, 1.0}
    # index = level_index_0 * 1 + level_index_1 * 5
    assert fsq.codebook[0].tolist() == [-1.0, -1.0]
    assert fsq.codebook[1].tolist() == [-0.5, -1.0]
    assert fsq.codebook[5].tolist() == [-1.0, 0.0]
    assert fsq.codebook[14].tolist() == [1.0, 1.0]


def test_fsq_values_match_hand_computation():
    fsq = FSQ([5, 3])
    z = th.tensor([[0.0, 0.0], [0.3, 0.3], [0.6, 0.6], [5.0, 5.0], [-5.0, -0.6]])
    # Channel 0: tanh(z) * 2.002 rounded, / 2.  Channel 1: tanh(z) * 1.001 rounded, / 1.
    # tanh(0.3) = 0.2913 -> 0.583 -> 1 -> 0.5 ; 0.2916 -> 0
    # tanh(0.6) = 0.5370 -> 1.075 -> 1 -> 0.5 ; 0.5375 -> 1
    expected = th.tensor([[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    assert th.equal(fsq(z), expected)
    assert fsq.codes_to_indices(expected).tolist() == [7, 8, 13, 14, 0]


def test_fsq_indices_round_trip():
    fsq = FSQ([5, 3])
    idx = th.arange(15)
    assert th.equal(fsq.codes_to_indices(fsq.indices_to_codes(idx)), idx)
    z = th.randn(100, 7, 2) * 3
    codes = fsq(z)
    assert th.equal(fsq.indices_to_codes(fsq.codes_to_indices(codes)), codes)


def test_fsq_even_levels_use_an_offset():
    fsq = FSQ([4])
    codes = fsq(th.linspace(-6, 6, 101).unsqueeze(-1))
    assert set(codes.squeeze(-1).tolist()) == {-1.0, -0.5, 0.0, 0.5}


def test_fsq_gradient_is_straight_through_the_rounding():
    fsq = FSQ([5, 3])
    z = th.tensor([[0.3, -0.2]], requires_grad=True)
    fsq(z).sum().backward()
    # d/dz [tanh(z) * half / (L // 2)] = (1 - tanh^2 z) * half / (L // 2): rounding contributes identity.
    half = th.tensor([2.002, 1.001])
    expected = (1 - th.tanh(z.detach()) ** 2) * half / th.tensor([2.0, 1.0])
    assert th.allclose(z.grad, expected)
