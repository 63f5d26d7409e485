"""Native peers: Linux's own ring code driven from Python, to check the reference against.

`build` fetches and compiles Linux's `virtio_ring.c` (driver) and `vringh.c` (device)
with this project's C shim (`shim/`) into a cache outside the repository; `linux`
wraps the split ring in the same small driver/device interface the reference has
(docs/oracle.md), so the lockstep machine in `tests/machines.py` can pair any two, and
`linux_packed` wraps Linux's packed-ring driver (there is no Linux packed device) for
the packed machine in `tests/packed_machine.py`.
"""
