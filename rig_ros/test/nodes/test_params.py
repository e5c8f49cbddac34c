"""rig_ros.edge.params: dataclass configs from ROS parameters (in process, no DDS traffic)."""

import dataclasses
from dataclasses import dataclass, field
import re
from typing import Iterator, Literal, Optional

import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from rig_ros.core.goals import GoalSchedulerConfig
from rig_ros.core.learner import LearnerConfig
from rig_ros.core.policy_runtime import PolicyConfig
from rig_ros.edge.params import (
    build_config, ConfigParameters, declare_config, describe_config, field_descriptions,
    ParameterError)
from rig_ros.nodes.fake_sawyer import FakeSawyerConfig
from rig_ros.nodes.scene_camera import SceneCameraConfig
from rig_ros.robot.backends import BridgeConfig
from rig_ros.robot.control import ControllerConfig
from rig_ros.robot.driver import DriverConfig
from rig_ros.robot.safety import SafetyConfig
from rig_ros.sim.driver import SimDriverConfig
from rig_ros.sim.joint_camera import JointCameraConfig
from rig_ros.sim.sawyer import SawyerSimConfig

# The configs nodes declare whole, described by their own text. (PreprocessConfig and
# EncoderConfig hold a CropBox, whose fields camera_pipeline describes itself.)
NODE_CONFIGS = (LearnerConfig, SawyerSimConfig, SimDriverConfig, PolicyConfig,
                GoalSchedulerConfig, DriverConfig, SafetyConfig, ControllerConfig, BridgeConfig,
                FakeSawyerConfig, SceneCameraConfig, JointCameraConfig)


@dataclass(frozen=True)
class Box:
    """A box.

    low: lower corner.
    high: upper corner.
    """

    low: tuple[float, float]
    high: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class Config:
    """A config with every supported kind of field.

    rate_hz: control rate, per second; spans
        two lines.
    """

    rate_hz: float = 10.0
    steps: int = 100
    verbose: bool = False
    name: str = 'robot'
    mode: Literal['fast', 'slow'] = 'fast'
    gains: list[float] = field(default_factory=lambda: [1.0, 2.0])
    tags: tuple[str, ...] = ()
    limit: Optional[int] = None
    box: Optional[Box] = None
    weight: float = field(default=0.5, metadata={'description': 'mixing weight in [0, 1]'})

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ValueError(f'rate_hz must be positive, got {self.rate_hz}')
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f'weight must lie in [0, 1], got {self.weight}')


@dataclass(frozen=True)
class Gains:
    """Fields described by the strings under them."""

    proportional: float = 1.0
    """Proportional gain,
    per metre."""
    derivative: float = 0.0


@dataclass(frozen=True)
class TunedGains(Gains):
    """Gains with a name.

    label: shown in logs.
    """

    label: str = 'pd'


@pytest.fixture
def context() -> Iterator[Context]:
    context = Context()
    rclpy.init(context=context, domain_id=0)
    try:
        yield context
    finally:
        context.try_shutdown()


def make_node(context: Context, **overrides: object) -> Node:
    return Node('params_test', context=context, parameter_overrides=[
        Parameter(name, value=value) for name, value in overrides.items()])


def test_defaults_and_descriptions(context):
    node = make_node(context)
    parameters = ConfigParameters(node, Config)
    assert parameters.config == Config()
    assert set(parameters.names) == {
        'rate_hz', 'steps', 'verbose', 'name', 'mode', 'gains', 'tags', 'limit', 'box.low',
        'box.high', 'weight'}
    descriptors = dict(zip(parameters.names, node.describe_parameters(parameters.names)))
    assert descriptors['rate_hz'].description == 'control rate, per second; spans two lines.'
    assert descriptors['weight'].description == 'mixing weight in [0, 1]'
    assert descriptors['box.low'].description == 'lower corner.'
    assert descriptors['mode'].additional_constraints == 'one of: fast, slow'
    assert not descriptors['steps'].dynamic_typing  # typed: INTEGER
    assert descriptors['rate_hz'].dynamic_typing  # numbers accept integers


def test_overrides_build_the_config(context):
    node = make_node(context, rate_hz=5, steps=7, verbose=True, mode='slow', gains=[3.0],
                     tags=['a', 'b'], limit=3, **{'box.low': [0.0, 0.5]})
    config = declare_config(node, Config)
    assert config == Config(rate_hz=5, steps=7, verbose=True, mode='slow', gains=[3.0],
                            tags=('a', 'b'), limit=3, box=Box((0.0, 0.5)))


@pytest.mark.parametrize('overrides, message', [
    ({'rate_hz': -1.0}, 'rate_hz must be positive'),
    ({'steps': 'many'}, "parameter 'steps' must be an integer"),
    ({'rate_hz': 'fast'}, "parameter 'rate_hz' must be a number"),
    ({'mode': 'medium'}, "parameter 'mode' must be one of fast, slow"),
    ({'box.low': [1.0]}, "parameter 'box.low' must have 2 elements"),
    ({'box.high': [2.0, 2.0]}, 'box.low must be set together with'),
])
def test_bad_values_fail_at_startup_naming_the_parameter(context, overrides, message):
    with pytest.raises(ParameterError, match=message):
        declare_config(make_node(context, **overrides), Config)


def test_runtime_changes_are_validated_then_applied(context):
    node = make_node(context)
    seen = []
    parameters = ConfigParameters(node, Config, on_change=seen.append, read_only=['steps'])
    result = node.set_parameters([Parameter('weight', value=2.0)])[0]
    assert not result.successful and 'weight must lie in [0, 1]' in result.reason
    assert not node.set_parameters([Parameter('steps', value=5)])[0].successful  # read-only
    assert not node.set_parameters([Parameter('mode', value='medium')])[0].successful
    assert parameters.config == Config() and not seen
    assert node.set_parameters([Parameter('weight', value=1)])[0].successful
    assert parameters.config.weight == 1 and seen == [parameters.config]
    # Parameters of other components are not ours to judge.
    node.declare_parameter('other', 1)
    assert node.set_parameters([Parameter('other', value=2)])[0].successful


def test_prefix_and_default_overrides(context):
    node = make_node(context, **{'model.steps': 3})
    config = declare_config(node, Config, prefix='model', defaults={'model.name': 'sim'})
    assert (config.steps, config.name) == (3, 'sim')
    with pytest.raises(TypeError, match='unknown parameters'):
        declare_config(make_node(context), Config, defaults={'nope': 1})


def test_field_descriptions_of_both_forms(context):
    assert field_descriptions(Gains) == {'proportional': 'Proportional gain, per metre.'}
    assert field_descriptions(TunedGains) == {'proportional': 'Proportional gain, per metre.',
                                              'label': 'shown in logs.'}
    assert field_descriptions(Box) == {'low': 'lower corner.', 'high': 'upper corner.'}
    node = make_node(context)
    parameters = ConfigParameters(node, TunedGains)
    descriptors = dict(zip(parameters.names, node.describe_parameters(parameters.names)))
    assert descriptors['proportional'].description == 'Proportional gain, per metre.'
    assert descriptors['derivative'].description == 'TunedGains.derivative'  # undocumented


@pytest.mark.parametrize('config_type', NODE_CONFIGS, ids=lambda config: config.__name__)
def test_every_node_parameter_is_described(config_type):
    fallback = re.compile(r'\w+\.\w+')  # 'Class.field': no text found
    undescribed = [leaf.name for leaf in describe_config(config_type)
                   if fallback.fullmatch(leaf.description)]
    assert not undescribed


def test_the_learner_declares_no_exploration_parameters():
    names = {leaf.name for leaf in describe_config(LearnerConfig)}
    assert not names & {'td3.exploration', 'td3.exploration_sigma', 'td3.ou_theta', 'td3.seed'}


def test_the_learners_vae_stage_takes_the_augmentation_option():
    # Issue 14's option in the graph's VAE stage: the learner's pretraining and fine-tuning
    # train with `vae.augmentation.*`, on by default, off by one parameter.
    # Every parameter at its default; those without one (an unset optional box) left unset.
    defaults = {leaf.name: leaf.default for leaf in describe_config(LearnerConfig)
                if leaf.default is not dataclasses.MISSING}
    assert {'vae.augmentation.enabled', 'vae.augmentation.shift_px',
            'vae.augmentation.brightness'} <= set(defaults)
    assert build_config(LearnerConfig, defaults).vae.augmentation.enabled
    plain = build_config(LearnerConfig, {**defaults, 'vae.augmentation.enabled': False})
    assert not plain.vae.augmentation.enabled and plain.vae.image_size == 48
