"""Backends that do real I/O for the reference devices: a file-backed disk, a TAP port.

Rules: everything here touches the operating system (files, `/dev/net/tun`), which the
sans-IO `impl` package never does; the devices in `impl` reach these only through the
contracts `impl` defines (`impl.disk.Disk`, `impl.net_backend.FrameSink`).
"""
