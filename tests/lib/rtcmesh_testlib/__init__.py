"""The Python test kit of rtcmesh: every Python test under tests/ uses it.

Modules:
  failures  TestFailure (every test failure), Skip, require()
  process   Process: a child process with its stdout/stderr lines (or JSON
            events) read by threads, waits with timeouts; wait_until, free
            ports, temporary directories
  hub       Hub: `rtcmesh hub` started on 127.0.0.1, its listening line and
            HTTP API; dump_hubs/kill_hubs
  peer      MeshPeer: `rtcmesh peer --json` and its events; MeshScene
  connect   ConnectPeer: `rtcmesh connect` with its stdout and stderr lines
  metrics   parse_prometheus (text format 0.0.4)
  turn      Coturn, Capture (packets on lo), Session (two connect peers through
            TURN/STUN), free_port_block

A test script adds this folder to sys.path with its first two lines:
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
"""
