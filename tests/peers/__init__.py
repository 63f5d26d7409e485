"""Native peers: Linux's own split-ring code driven from Python, to check the reference against.

`build` fetches and compiles Linux's `virtio_ring.c` (driver) and `vringh.c` (device)
with this project's C shim (`shim/`) into a cache outside the repository; `linux`
wraps the result in the same small driver/device interface the reference has
(docs/oracle.md), so the lockstep machine in `tests/machines.py` can pair any two.
"""
