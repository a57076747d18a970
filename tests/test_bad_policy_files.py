"""Bad policy files and extreme policies: a malformed file raises PolicyFormatError naming it;
size caps; finite probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastpolicy import AWSDistribution, Policy
from fastpolicy.jsonio import PolicyFormatError, read_json
from fastpolicy.policies import load_policy_file


def test_extreme_finite_theta_gives_finite_probabilities(tmp_path):
    theta2 = np.zeros((36, 36))
    theta2[:, :5] = -1000.0
    theta2[3] = -1000.0  # a whole row underflows: sigmoid is 0 everywhere, the plain ratio 0/0
    path = tmp_path / "theta.json"
    AWSDistribution(np.full(36, 800.0), theta2).save(path)
    loaded = load_policy_file(str(path))
    _p1, p2 = loaded.probabilities()
    assert np.all(np.isfinite(p2)) and np.allclose(p2.sum(axis=1), 1) and np.allclose(p2[3], 1 / 36)
    assert np.all(p2[0, :5] < 1e-300) and np.isfinite(loaded.entropy())
    pairs = loaded.sample_pairs(2000, np.random.default_rng(0))
    assert not np.any(np.isin(pairs[pairs[:, 0] != 3, 1], range(5)))
    assert np.all(np.isfinite(loaded.log_prob(pairs)))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        (b'{"format": "fastpolicy.policy", "space": "caf\xe9"}', "not UTF-8 text"),
        (b'{"format": []}', "'format' is []"),
        (b'{"format": {"a": 1}}', "'format' is {'a': 1}"),
        (b'{"format": "fastpolicy.aws_distribution", "version": 1, "elements": 3}', "'elements' must be list"),
        (b'{"format": "fastpolicy.aws_distribution", "version": 1, "elements": [], "theta1": NaN}', "NaN"),
        (
            b'{"format": "fastpolicy.policy", "version": 1, "space": "adversarial", "sub_policies": [[{"op": "Rotate", '
            b'"bin": 99}]]}',
            "bin",
        ),
        (b'{"format": "fastpolicy.schedule", "version": 1, "epochs": [{"epoch": 0, "policies": [[]]}]}', "policies[0]"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"", "not valid JSON"),
    ],
    ids=["deep", "latin1", "format-list", "format-dict", "elements-int", "nan", "bin", "schedule", "bom16", "empty"],
)
def test_malformed_policy_files_raise_policy_format_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(PolicyFormatError, match="p\\.json") as error:
        load_policy_file(str(path))
    assert message in str(error.value)
    for kind in (Policy, AWSDistribution):
        with pytest.raises(PolicyFormatError, match="p\\.json"):
            kind.load(path)


def test_policy_files_have_a_size_cap(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"format": "x", "pad": "y" * 200}))
    with pytest.raises(PolicyFormatError, match=r"big\.json: \d+ bytes, more than a policy file may hold \(100\)"):
        read_json(path, max_bytes=100)
