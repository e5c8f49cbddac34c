# rig_ros: two commands on a fresh machine, `make demo` and `make test`.
SHELL := /bin/bash
ENV := . scripts/env.sh &&
RUN_DIR ?= runs/demo

.PHONY: setup demo test test-robot test-unit bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(ENV) ROS_AUTOMATIC_DISCOVERY_RANGE=$${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST} \
		python -m rig_ros.cli demo --graph --run-dir $(RUN_DIR)

test: setup
	@$(ENV) python -m pytest rig_ros/test -q

test-robot: setup
	@$(ENV) python -m pytest rig_ros/test -q -m robot

test-unit: setup
	@$(ENV) python -m pytest rig_ros/test/unit -q

bench: setup
	@$(ENV) python bench/sim_throughput.py && python bench/learner_device.py && python bench/driver_cycle.py && python bench/learning.py

clean:
	rm -rf build install log .setup-stamps runs
