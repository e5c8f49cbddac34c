#!/usr/bin/env bash
# One setup path for a fresh Debian 12 machine: apt packages for offscreen rendering, the
# project venv with pinned wheels, and the colcon build of rig_msgs and rig_ros.
# Idempotent: each stage is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
STAMPS=$ROOT/.setup-stamps
mkdir -p "$STAMPS"

say() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# 1. Debian packages: EGL on Mesa for MuJoCo offscreen rendering, cmake/g++ for rig_msgs.
APT_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 cmake g++ python3-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# 2. The venv with pinned wheels.
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi
req_hash=$(hash_of requirements.txt)
if [ "$(cat "$STAMPS/pip" 2>/dev/null)" != "$req_hash" ]; then
  say 'installing pinned Python packages (first time: a few minutes)'
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r requirements.txt
  echo "$req_hash" > "$STAMPS/pip"
fi

# 3. The wheels hard-code the build image's Python/NumPy include paths in their exported
#    CMake targets; point them at this venv's once.
pyinc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
npinc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
baked=$(grep -rl '/opt/python/cp311-cp311' "$VENV/share" --include='*.cmake' || true)
if [ -n "$baked" ]; then
  say 'rewriting baked-in include paths of the ROS wheels'
  echo "$baked" | xargs sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#${pyinc}#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${npinc}#g"
fi

# 4. colcon build of both packages into one merged prefix.
mkdir -p build
src_hash=$(find rig_msgs rig_ros/setup.py rig_ros/setup.cfg rig_ros/package.xml rig_ros/launch \
  rig_ros/config -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/colcon" 2>/dev/null)" != "$src_hash" ] \
    || [ ! -f install/share/rig_msgs/package.xml ]; then
  say 'building rig_msgs and rig_ros with colcon'
  # A source file deleted since the last build leaves a dangling link in the symlink
  # install, and colcon then fails on it: drop such links first.
  find build install -xtype l -delete 2>/dev/null || true
  (
    export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
    export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV
    "$VENV/bin/colcon" --log-base build/colcon-log build --merge-install \
      --build-base build --install-base install --symlink-install \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
      --event-handlers console_direct- >build/colcon.out 2>&1 \
      || { tail -40 build/colcon.out; exit 1; }
  )
  echo "$src_hash" > "$STAMPS/colcon"
fi
say 'ready'
