"""A run of the graph: processes from the graph description and the sessions that drive them.

Belongs here: the process runner (`runner`), the launch-file builder (`launch_description`),
sessions (`session`: practise, evaluate, report), the session's own node
(`session_operator`), the evaluation protocol through the graph, operator tools
(`operator_tools`: send a goal image). No argument parsing (that is `rig_ros.cli`).
"""
