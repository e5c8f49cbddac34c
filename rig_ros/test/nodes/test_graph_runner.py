"""The runner starts real nodes from specs: namespaces, layered parameters, clean stop."""

import io
import threading

from builtin_interfaces.msg import Time
import numpy as np
import pytest
from sensor_msgs.msg import Image

from rig_ros import graph
from rig_ros.edge.image_msgs import array_to_image
from rig_ros.graph import NodeSpec
from rig_ros.interfaces.qos import SENSOR_QOS
from rig_ros.run.runner import GraphRunner


@pytest.mark.multiprocess
def test_runner_runs_namespaced_nodes_with_layered_parameters(ros, wait_for):
    task_file = graph.config_file(graph.BASE_CONFIG)  # size: 84 for every camera_pipeline
    specs = [
        NodeSpec('camera_pipeline', 'camera_pipeline', '/robot_0', {}, (task_file,)),
        # The spec's parameters come last and win over the task file's.
        NodeSpec('camera_pipeline', 'camera_pipeline', '/robot_1', {'size': 48}, (task_file,)),
    ]
    output = io.StringIO()
    runner = GraphRunner(specs, output=output, sigint_timeout=10.0)
    runner.start()
    try:
        sizes = {}
        publishers = {}
        for robot in ('robot_0', 'robot_1'):
            sizes[robot] = ros.collect(Image, f'/{robot}/rig/image', SENSOR_QOS)
            publishers[robot] = ros.publisher(Image, f'/{robot}/camera/image_raw', SENSOR_QOS)
        for robot, publisher in publishers.items():
            assert ros.wait_for_subscribers(publisher), output.getvalue()
            assert wait_for(lambda: ros.node.count_publishers(f'/{robot}/rig/image') >= 1)
        frame = array_to_image(np.full((120, 160, 3), 7, np.uint8), 'rgb8')
        frame.header.stamp = Time(sec=1)

        def received() -> bool:
            for publisher in publishers.values():
                publisher.publish(frame)
            return all(collector.messages for collector in sizes.values())
        assert wait_for(received, timeout=20.0, interval=0.2), output.getvalue()
        assert sizes['robot_0'].messages[0].width == 84
        assert sizes['robot_1'].messages[0].width == 48
        assert '[robot_1/camera_pipeline]' in output.getvalue()
    finally:
        # Stop as a Ctrl-C would: from another thread, while run()-style waiting goes on.
        threading.Timer(0.0, runner.request_stop).start()
        assert runner.wait(timeout=5.0) is None
        assert runner.stop() == 0, output.getvalue()
    assert runner.exit_codes == {'robot_0/camera_pipeline': 0, 'robot_1/camera_pipeline': 0}
    assert 'Traceback' not in output.getvalue()
