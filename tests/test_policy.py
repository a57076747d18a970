"""Policy model: sampling arrays, reproducibility, JSON round trips and clear errors."""

import json

import numpy as np
import pytest

from fastpolicy import AWSDistribution, Policy, PolicyFormatError, PolicyParams, PolicySchedule, sample_policies
from fastpolicy.registry import OP_NAMES, OPS
from fastpolicy.spaces import aws


def _policy():
    return Policy(
        [[("ShearX", 9), ("Invert", 3)], [("Rotate", 4), ("Cutout", 9)], [("SamplePairing", 9), ("Posterize", 0)]]
    )


def test_sample_shapes_and_dtypes():
    params = _policy().sample(50, np.random.default_rng(0), policy_index=2, version=5)
    assert isinstance(params, PolicyParams) and (params.n, params.k) == (50, 2)
    assert params.op.dtype == np.int16 and params.value.dtype == np.float64 and params.center.shape == (50, 2, 2)
    assert np.all(params.policy == 2) and params.version == 5


def test_sampling_uses_each_sub_policy_and_its_values():
    params = _policy().sample(3000, np.random.default_rng(1))
    first = params.op[:, 0]
    counts = np.bincount(first, minlength=16)[[OPS["ShearX"].id, OPS["Rotate"].id, OPS["SamplePairing"].id]]
    assert counts.sum() == 3000 and counts.min() > 900  # uniform over 3 sub-policies
    shear = params.op[:, 0] == OPS["ShearX"].id
    assert set(np.round(params.value[shear, 0], 6)) == {-0.3, 0.3}  # bin 9, both signs
    assert 0.4 < (params.sign[shear, 0] == 1).mean() < 0.6
    invert = params.op[:, 1] == OPS["Invert"].id
    assert np.all(params.bin[invert, 1] == -1) and np.all(params.sign[invert, 1] == 1)
    post = params.op[:, 1] == OPS["Posterize"].id
    assert np.all(params.value[post, 1] == 8.0)


def test_partners_are_other_samples():
    params = _policy().sample(64, np.random.default_rng(2))
    assert np.all(params.partner != np.arange(64)[:, None]) and params.partner.max() < 64


def test_probabilities_skip_ops():
    params = Policy([[("Invert", 0, 0.25), ("Equalize", 0)]]).sample(4000, np.random.default_rng(3))
    assert 0.2 < (params.op[:, 0] == OPS["Invert"].id).mean() < 0.3
    assert np.all((params.op[:, 0] == -1) | (params.op[:, 0] == OPS["Invert"].id))
    assert np.all(params.op[:, 1] == OPS["Equalize"].id)


def test_seeded_sampling_is_reproducible():
    a = sample_policies([_policy(), Policy.random(np.random.default_rng(9))], 16, np.random.default_rng(4))
    b = sample_policies([_policy(), Policy.random(np.random.default_rng(9))], 16, np.random.default_rng(4))
    c = sample_policies([_policy(), Policy.random(np.random.default_rng(9))], 16, np.random.default_rng(5))
    assert a == b and a != c


def test_sample_policies_is_policy_major_with_partners_in_block():
    params = sample_policies([_policy()] * 3, 8, np.random.default_rng(0), version=2)
    assert np.array_equal(params.policy, np.repeat(np.arange(3), 8)) and params.version == 2
    blocks = params.partner // 8
    assert np.array_equal(blocks, np.repeat(np.arange(3), 8)[:, None].repeat(2, 1))


def test_stacked_policies_draw_as_each_would_alone():
    # sample_policies stacks Policy objects of one shape through their sub_policy_tables; the
    # stacked draw must give each policy its own sub-policies (not the first policy's).
    first, second = Policy([[("Invert", 0), ("Equalize", 0)]]), Policy([[("Rotate", 4, 0.0), ("ShearX", 9)]])
    params = sample_policies([first, second], 64, np.random.default_rng(6))
    assert np.all(params.op[:64] == [OPS["Invert"].id, OPS["Equalize"].id])
    assert np.all(params.op[64:, 0] == -1) and np.all(params.op[64:, 1] == OPS["ShearX"].id)
    ops, bins = second.choose(5, np.random.default_rng(7))
    assert ops.shape == bins.shape == (5, 2) and np.all(bins[:, 1] == 9)


def test_policy_tables_are_read_only_and_copies_writable():
    policy = _policy()
    with pytest.raises(ValueError, match="read-only"):
        policy.sub_policy_tables.op[0, 0] = 3
    ops, _, _ = policy.tables()
    ops[0, 0] = 3
    assert policy.sub_policy_tables.op[0, 0] == OPS["ShearX"].id


def test_numpy_integer_bins_are_accepted():
    policy = Policy([[("Rotate", np.int64(4)), ("Invert", np.int32(0))]])
    assert policy.sub_policies[0][0].bin == 4 and type(policy.sub_policies[0][0].bin) is int
    assert Policy.from_json(policy.to_json()) == policy


def test_random_policy_shape():
    policy = Policy.random(np.random.default_rng(0))
    assert len(policy.sub_policies) == 5 and all(len(s) == 2 for s in policy.sub_policies)


def test_json_round_trip(tmp_path):
    policy = Policy([[("Color", 3, 0.5), ("Equalize", 0)], [("Brightness", 9)]], space="aws")
    assert Policy.from_json(policy.to_json()) == policy
    path = policy.save(tmp_path / "p.json")
    assert Policy.load(path) == policy
    assert policy.n_ops == 2 and policy.tables()[0][1, 1] == -1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["sub_policies"][0][0].update(op="Shear"), r"sub-policy 0, op 0: unknown op 'Shear'"),
        (lambda d: d["sub_policies"][0][0].update(bin=10), r"bin 10 of ShearX out of range"),
        (lambda d: d["sub_policies"][0][0].update(bin="3"), r"'bin' must be int"),
        (lambda d: d["sub_policies"][0][0].update(bin=True), r"'bin' must be int, got bool"),
        (lambda d: d["sub_policies"][0][0].update(prob=1.5), r"probability 1.5"),
        (lambda d: d["sub_policies"][0][0].update(extra=1), r"unknown field"),
        (lambda d: d.update(space="nope"), r"unknown search space"),
        (lambda d: d.update(format="other"), r"'format' must be"),
        (lambda d: d.update(version=2), r"unsupported"),
        (lambda d: d.pop("sub_policies"), r"missing field 'sub_policies'"),
        (lambda d: d.update(sub_policies=[]), r"at least one sub-policy"),
        (lambda d: d["sub_policies"].append([]), r"sub-policy 1 is empty"),
    ],
)
def test_bad_policy_json_names_the_problem(tmp_path, mutate, message):
    data = Policy([[("ShearX", 3), ("Invert", 0)]]).to_dict()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(PolicyFormatError, match=message) as info:
        Policy.load(path)
    assert str(path) in str(info.value)


def test_op_outside_space_is_rejected():
    with pytest.raises(ValueError, match="Cutout.*not in the aws search space"):
        Policy([[("Cutout", 3)]], space="aws")


def test_malformed_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(PolicyFormatError, match="broken.json: not valid JSON"):
        Policy.load(bad)
    with pytest.raises(PolicyFormatError, match="missing.json: no such file"):
        Policy.load(tmp_path / "missing.json")
    bad.write_text("[1, 2]")
    with pytest.raises(PolicyFormatError, match="expected a JSON object"):
        PolicySchedule.load(bad)


def test_distribution_starts_uniform_and_sums_to_one():
    dist = AWSDistribution()
    p1, p2 = dist.probabilities()
    assert np.allclose(p1, 1 / 36) and np.allclose(p2, 1 / 36)
    dist = AWSDistribution(np.random.default_rng(0).normal(size=36), np.random.default_rng(1).normal(size=(36, 36)))
    p1, p2 = dist.probabilities()
    assert np.isclose(p1.sum(), 1) and np.allclose(p2.sum(1), 1) and np.isclose(dist.joint().sum(), 1)
    assert np.isclose(AWSDistribution().entropy(), np.log(36 * 36))


def test_distribution_sampling_follows_the_joint():
    theta2 = np.zeros((36, 36))
    theta2[:, 5] = 8.0  # element 5 dominates every conditional
    theta1 = np.zeros(36)
    theta1[20] = 8.0
    dist = AWSDistribution(theta1, theta2)
    pairs = dist.sample_pairs(20000, np.random.default_rng(0))
    p1, p2 = dist.probabilities()
    assert abs((pairs[:, 0] == 20).mean() - p1[20]) < 0.02
    assert abs((pairs[:, 1] == 5).mean() - p2[0, 5]) < 0.02
    params = dist.params_for_pairs(pairs[:100], np.random.default_rng(1))
    elements = aws().elements
    for i in range(100):
        for slot in range(2):
            el = elements[pairs[i, slot]]
            assert params.op[i, slot] == OPS[el.op].id
            assert params.bin[i, slot] == (-1 if el.bin is None else el.bin)
    assert np.allclose(dist.log_prob(pairs[:10]), np.log(dist.joint()[pairs[:10, 0], pairs[:10, 1]]))


def test_distribution_json(tmp_path):
    dist = AWSDistribution(np.linspace(-1, 1, 36), np.ones((36, 36)))
    again = AWSDistribution.load(dist.save(tmp_path / "d.json"))
    assert np.array_equal(again.theta1, dist.theta1) and np.array_equal(again.theta2, dist.theta2)
    data = dist.to_dict()
    data["elements"][0] = "Warp@3"
    with pytest.raises(PolicyFormatError, match="unknown: Warp@3"):
        AWSDistribution.from_dict(data, "x.json")
    data = dist.to_dict()
    data["theta2"] = [[0.0] * 36] * 35
    with pytest.raises(PolicyFormatError, match="x.json: bad parameters"):
        AWSDistribution.from_dict(data, "x.json")
    data = dist.to_dict()
    data["theta1"][3] = float("nan")
    with pytest.raises(PolicyFormatError, match="finite"):
        AWSDistribution.from_dict(data, "x.json")


def test_schedule_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    schedule = PolicySchedule([[Policy.random(rng) for _ in range(8)] for _ in range(3)])
    path = schedule.save(tmp_path / "schedule.json")
    assert PolicySchedule.load(path) == schedule and len(schedule) == 3
    data = schedule.to_dict()
    data["epochs"][1]["epoch"] = 5
    with pytest.raises(PolicyFormatError, match=r"epochs\[1\]: epoch number 5"):
        PolicySchedule.from_dict(data, "s.json")
    data = schedule.to_dict()
    data["epochs"][2]["policies"][3]["sub_policies"][0][1]["op"] = "Blur"
    with pytest.raises(PolicyFormatError, match=r"epochs\[2\].policies\[3\].*unknown op 'Blur'"):
        PolicySchedule.from_dict(data, "s.json")
    with pytest.raises(ValueError, match="non-empty list of Policy"):
        schedule.append([])


def test_params_validation():
    params = _policy().sample(4, np.random.default_rng(0))
    fields = params.arrays()
    fields["partner"] = fields["partner"] + 10
    with pytest.raises(ValueError, match="partner"):
        PolicyParams(**fields)
    fields = params.arrays()
    fields["value"] = fields["value"][:3]
    with pytest.raises(ValueError, match=r"value must have shape \(4, 2\)"):
        PolicyParams(**fields)
    with pytest.raises(ValueError, match="versions"):
        PolicyParams.concat([params, _policy().sample(4, np.random.default_rng(0), version=1)])


@pytest.mark.parametrize(
    "field, bad, message",
    [
        ("op", len(OP_NAMES), "op ids must be in"),
        ("op", -2, "op ids must be in"),
        ("partner", 3, "partner indices"),
        ("partner", -1, "partner indices"),
        ("sign", 0, "sign must be"),
        ("center", 1.0, "center must lie"),
        ("center", -0.5, "center must lie"),
    ],
)
def test_policy_params_name_the_bad_field(field, bad, message):
    fields = PolicyParams.skipped_fields(3, 2)
    assert PolicyParams(**fields, policy=np.zeros(3)).n == 3  # the valid batch passes
    fields[field] = fields[field].copy()
    fields[field].flat[-1] = bad  # one bad value among valid ones
    with pytest.raises(ValueError, match=message):
        PolicyParams(**fields, policy=np.zeros(3))


def test_an_empty_batch_of_policy_params_is_valid():
    assert PolicyParams.skipped(0, 2).n == 0
