"""Topic, service, executable and model names of the rig_ros graph (plain strings).

Names without a leading '/' are relative to the robot's namespace (the learner's: the
fleet's); see docs/fleet.md. Absolute names are intera's own topics on the robot.
"""

# Robot chain topics and services (relative).
CAMERA_IMAGE_TOPIC = 'camera/image_raw'  # sensor_msgs/Image, any size and encoding
IMAGE_TOPIC = 'rig/image'  # sensor_msgs/Image, 84x84 rgb8
LATENT_TOPIC = 'rig/latent'  # rig_msgs/LatentState
GOAL_TOPIC = 'rig/goal'  # rig_msgs/Goal, latched
GOAL_IMAGE_DECODED_TOPIC = 'rig/goal_image_decoded'  # sensor_msgs/Image, latched (viewing)
GOAL_IMAGE_TOPIC = 'rig/goal_image'  # sensor_msgs/Image from a user
RECONSTRUCTION_TOPIC = 'rig/reconstruction'  # sensor_msgs/Image, frame | VAE reconstruction
EE_VELOCITY_TOPIC = 'ee_velocity'  # geometry_msgs/TwistStamped
ENCODE_SERVICE = 'rig/encode'  # rig_msgs/Encode
RESET_SERVICE = 'robot/reset'  # std_srvs/Trigger
ACTIVATE_SERVICE = 'policy/activate'  # std_srvs/SetBool
DRIVER_ACTIVATE_SERVICE = 'driver/activate'  # std_srvs/SetBool, the real arm's gate
DRIVER_STOP_SERVICE = 'driver/stop'  # std_srvs/Trigger, latched stop
ROBOT_STATE_TOPIC = 'robot/state'  # geometry_msgs/PointStamped, the hand
GROUND_TRUTH_TOPIC = 'sim/ground_truth'  # std_msgs/Float64MultiArray, SawyerSim.state_vector
SIM_GOAL_STATE_TOPIC = 'sim/goal_state'  # std_msgs/Float64MultiArray, a state to render
SIM_GOAL_IMAGE_TOPIC = 'sim/goal_image'  # sensor_msgs/Image, that state's render, latched

# Fleet-wide topics (remapped to the fleet namespace in every robot chain).
TRANSITION_TOPIC = 'rig/transition'  # rig_msgs/Transition
WEIGHTS_TOPIC = 'rig/weights'  # rig_msgs/Weights, latched
LEARNER_STATUS_TOPIC = 'rig/learner_status'  # std_msgs/String, latched JSON counters
FLEET_TOPICS = (TRANSITION_TOPIC, WEIGHTS_TOPIC, LEARNER_STATUS_TOPIC)

# intera's topics on the robot (absolute; ros1_bridge carries them).
JOINT_STATES_TOPIC = '/robot/joint_states'
JOINT_COMMAND_TOPIC = '/robot/limb/right/joint_command'
ENDPOINT_STATE_TOPIC = '/robot/limb/right/endpoint_state'
HEAD_CAMERA_TOPIC = '/io/internal_camera/head_camera/image_rect_color'
STANDIN_SUFFIX = '_standin'  # intera topics carried by stand-in types (no intera_core_msgs)

# Executables (console scripts of rig_ros) and the node names they run under.
MUJOCO_SIM = 'mujoco_sim'
CAMERA_PIPELINE = 'camera_pipeline'
VAE_ENCODER = 'vae_encoder'
POLICY = 'policy'
GOAL_SCHEDULER = 'goal_scheduler'
LEARNER = 'learner'
SAWYER_DRIVER = 'sawyer_driver'  # the real robot (sim=False)
FAKE_SAWYER = 'fake_sawyer'  # an intera-like stand-in for tests
SCENE_CAMERA = 'scene_camera'  # the fake Sawyer's head camera: the sim scene at its joints
ROBOT_CHAIN = 'robot_chain'  # a chain's per-frame nodes composed in one process
COMPOSABLE = (MUJOCO_SIM, CAMERA_PIPELINE, VAE_ENCODER, POLICY)
EXECUTABLES = (MUJOCO_SIM, CAMERA_PIPELINE, VAE_ENCODER, POLICY, GOAL_SCHEDULER, LEARNER,
               SAWYER_DRIVER, FAKE_SAWYER, SCENE_CAMERA, ROBOT_CHAIN)  # setup.py's NODES

# Node names of the operators' tools (`rig` commands), not executables of their own.
OPERATOR_NODE = 'rig_operator'  # a session's reader/writer of a running graph
SEND_GOAL_NODE = 'rig_send_goal'  # `rig send-goal`

# Models broadcast on rig/weights (rig_msgs/Weights.model_name).
VAE_MODEL = 'vae'
POLICY_MODEL = 'policy'
KNOWN_MODELS = (VAE_MODEL, POLICY_MODEL)
