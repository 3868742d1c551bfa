"""Small defects a new user met in the Python API and the flags: each test fails without its fix.

- clip_grad_norm(g, nan) did not clip, silently; clip_grad_value(g, nan) set every gradient to nan;
- `--temperature nan` said "must be >= 0", which nan is not wrong about: it is not a number.
"""
import numpy as np
import pytest

from rnnlm.settings import check_range
from rnnlm.errors import UserError
from rnnlm.optim import clip_grad_norm, clip_grad_value


@pytest.mark.parametrize("clip", [clip_grad_norm, clip_grad_value])
@pytest.mark.parametrize("value", [float("nan"), np.float32("nan"), "0.25", None, True])
def test_a_clipping_threshold_that_is_not_a_number_is_refused_and_the_gradients_kept(clip, value):
    grads = {"w": np.array([3.0, -4.0])}
    with pytest.raises(ValueError, match="must be a number \\(0 or less: no clipping\\), got "):
        clip(grads, value)
    assert grads["w"].tolist() == [3.0, -4.0]


def test_clipping_still_clips_and_zero_still_means_none():
    grads = {"w": np.array([3.0, -4.0])}
    assert clip_grad_norm(grads, 0.0) == 5.0 and grads["w"].tolist() == [3.0, -4.0]
    assert clip_grad_norm(grads, np.float32(1.0)) == 5.0
    assert np.linalg.norm(grads["w"]) == pytest.approx(1.0, rel=1e-5)
    grads = {"w": np.array([3.0, -4.0, 0.5])}
    assert clip_grad_value(grads, 1) == 2 and grads["w"].tolist() == [1.0, -1.0, 0.5]


@pytest.mark.parametrize("name, said", [
    ("temperature", "--temperature must be a finite number >= 0 (0 = greedy), got nan"),
    ("top_p", "--top-p must be a number in (0, 1] (1 = all), got nan"),
    ("lr", "--lr must be a finite positive number, got nan"),
    ("dropout", "--dropout must be a number in [0, 1), got nan"),
])
def test_nan_is_said_to_be_not_a_number(name, said):
    with pytest.raises(UserError) as e:
        check_range(name, float("nan"))
    assert str(e.value) == said
