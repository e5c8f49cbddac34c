"""ament_python setup for rig_ros."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'rig_ros'

NODES = [
    'camera_pipeline',
    'vae_encoder',
    'policy',
    'goal_scheduler',
    'learner',
    'mujoco_sim',
    'robot_chain',  # composed: a robot chain's per-frame nodes in one process
    'sawyer_driver',  # the real robot (sim:=false)
    'fake_sawyer',  # a stand-in for a bridged Sawyer, for tests
    'scene_camera',  # the fake Sawyer's camera: the sim scene at its joint angles, for tests
]

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={package_name: ['sim/assets/*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=False,
    maintainer='rig_ros maintainers',
    maintainer_email='rig-ros@example.org',
    description='RIG (Reinforcement learning with Imagined Goals) for the Rethink Sawyer.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            f'{node} = rig_ros.nodes.{node}:main' for node in NODES
        ] + ['rig = rig_ros.cli:main'],
    },
)
