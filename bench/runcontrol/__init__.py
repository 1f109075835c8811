"""`python -m bench.runcontrol`: how fast a run stops or moves — cancel to container gone, SIGTERM and SIGKILL of
its worker to completion on another worker — with real worker processes, Redis and the engine, default timing.
"""
