# Source me: the environment the project's processes run in (venv + colcon install prefix).
# Works in bash and in make recipes (`. scripts/env.sh`).
_rig_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
export VIRTUAL_ENV=$_rig_root/.venv
# colcon installs rig_ros's console scripts (`rig`, the nodes) into install/lib/rig_ros.
export PATH=$_rig_root/install/lib/rig_ros:$VIRTUAL_ENV/bin:$PATH
export AMENT_PREFIX_PATH=$_rig_root/install:$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
export CMAKE_PREFIX_PATH=$_rig_root/install:$VIRTUAL_ENV
export PYTHONPATH=$_rig_root/install/lib/python3.11/site-packages:$_rig_root/rig_ros:$_rig_root/build/rig_ros${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH=$_rig_root/install/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Offscreen MuJoCo rendering on Mesa (no display on these machines).
export MUJOCO_GL=${MUJOCO_GL:-egl}
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
export ROS_LOG_DIR=${ROS_LOG_DIR:-$_rig_root/build/ros_log}
# Fast DDS transports that carry camera-sized frames (rig_ros/config/fastdds_rig.xml,
# docs/fleet.md), unless the user already chose transports: a profile file of their own, or
# FASTDDS_BUILTIN_TRANSPORTS (which a profile would override; DEFAULT: Fast DDS's defaults).
if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE+set}" ] && [ -z "${FASTDDS_BUILTIN_TRANSPORTS+set}" ]; then
    export FASTDDS_DEFAULT_PROFILES_FILE=$_rig_root/rig_ros/config/fastdds_rig.xml
fi
unset _rig_root
