"""Fetch Linux's ring code from Debian and build it, with this project's shim, into one library.

Rules:
- Linux is GPL: none of its source or objects enter this repository. Everything this
  script fetches, patches and builds lives in a cache folder outside the repo
  (`$VIRTIO_ORACLE_CACHE`, default `~/.cache/virtio-oracle`) and is reused when present.
- The source comes from the Debian package `linux-source-<version>` through the
  ordinary client (`apt-get download`, no root needed): the first of `PREFERRED` this
  machine's apt has a candidate for. If apt cannot deliver (offline) but a tree was
  extracted before, that tree is used.
- Only what the peer needs is extracted: `tools/virtio` (the kernel's userspace shims),
  `tools/include`, `include/`, `drivers/virtio/virtio_ring.c`, `drivers/vhost/vringh.c`.
- The few gaps in `tools/virtio` that stop it compiling are filled in the cache copy
  (`FIXES`), each only when the header lacks it, so a tree that already has it is left
  alone.
- The library is named for a hash of the shim sources, the flags and the tree, so an
  edited shim rebuilds and an unchanged one is reused.

Run `python tests/peers/build.py` (CI does) to build and print the library path;
`--selftest` also builds and runs the kernel's own `vringh_test` in the cache tree.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PREFERRED = ("6.12", "6.1")
"""Debian `linux-source-*` versions to look for, best first (bookworm carries 6.1)."""

MEMBERS = (
    "tools/virtio",
    "tools/include",
    "include",
    "drivers/virtio/virtio_ring.c",
    "drivers/vhost/vringh.c",
)
SHIM_DIR = Path(__file__).resolve().parent / "shim"
SHIM_SOURCES = ("oracle_driver.c", "oracle_device.c")
CFLAGS = (
    "-g", "-O2", "-fPIC", "-Wall", "-Wno-maybe-uninitialized", "-Wno-pointer-sign",
    "-Wno-unused-function", "-fno-strict-overflow", "-fno-strict-aliasing", "-fno-common",
    "-U_FORTIFY_SOURCE", "-pthread",
)
NO_PEERS_ENV = "VIRTIO_ORACLE_NO_PEERS"

# (header under tools/virtio, marker that shows the gap is already filled, text appended)
FIXES = (
    ("linux/compiler.h", "data_race",
     "\n#ifndef data_race\n#define data_race(expr) (expr)\n#endif\n"),
    ("linux/module.h", "MODULE_DESCRIPTION",
     "\n#ifndef MODULE_DESCRIPTION\n#define MODULE_DESCRIPTION(text)\n#endif\n"),
)


class PeerUnavailable(RuntimeError):
    """The Linux peer could not be fetched or built; the message says why and what to do."""


def cache_root() -> Path:
    """Where downloads, the extracted tree and built libraries live."""
    default = Path.home() / ".cache" / "virtio-oracle"
    return Path(os.environ.get("VIRTIO_ORACLE_CACHE", default))


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PeerUnavailable(f"`{' '.join(cmd)}` failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def candidate() -> tuple[str, str]:
    """(package, version) of the first `linux-source-*` in PREFERRED apt can fetch."""
    if shutil.which("apt-cache") is None:
        raise PeerUnavailable("apt-cache not found: the Linux peer needs a Debian system")
    for version in PREFERRED:
        package = f"linux-source-{version}"
        policy = _run(["apt-cache", "policy", package])
        found = re.search(r"Candidate:\s*(\S+)", policy)
        if found and found.group(1) != "(none)":
            return package, found.group(1)
    raise PeerUnavailable(f"apt knows none of linux-source-{{{', '.join(PREFERRED)}}}")


def download(package: str, version: str, root: Path) -> Path:
    """The package's .deb in the cache, fetched with `apt-get download` if missing."""
    dl = root / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    debs = sorted(dl.glob(f"{package}_{version.replace(':', '%3a')}_*.deb"))
    if not debs:
        _run(["apt-get", "download", f"{package}={version}"], cwd=dl)
        debs = sorted(dl.glob(f"{package}_*.deb"))
    if not debs:
        raise PeerUnavailable(f"apt-get download left no {package} .deb in {dl}")
    return debs[-1]


def extract(deb: Path, package: str, tree: Path) -> None:
    """Unpack only MEMBERS of the kernel tarball inside `deb` into `tree`."""
    stamp = tree / ".extracted"
    if stamp.exists():
        return
    staging = tree.with_name(tree.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    members = " ".join(f"'{package}/{m}'" for m in MEMBERS)
    pipeline = (
        f"dpkg-deb --fsys-tarfile '{deb}' | tar -xO './usr/src/{package}.tar.xz' "
        f"| xz -dc | tar -x -C '{staging}' {members}"
    )
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise PeerUnavailable(f"extracting {deb.name} failed:\n{proc.stderr}")
    shutil.rmtree(tree, ignore_errors=True)
    (staging / package).rename(tree)
    shutil.rmtree(staging, ignore_errors=True)
    stamp.write_text(deb.name + "\n")


def apply_fixes(tree: Path) -> list[str]:
    """Fill the gaps in `tools/virtio` headers; return what was changed."""
    changed = []
    for header, marker, text in FIXES:
        path = tree / "tools" / "virtio" / header
        body = path.read_text()
        if marker not in body:
            path.write_text(body + text)
            changed.append(f"{header}: {marker}")
    return changed


def _fingerprint(tree: Path) -> str:
    digest = hashlib.sha256(tree.name.encode())
    digest.update(" ".join(CFLAGS).encode())
    for name in (*SHIM_SOURCES, "oracle.h"):
        digest.update((SHIM_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def compile_library(tree: Path, out: Path) -> None:
    """Compile vringh.c, the two shim files (the driver shim includes virtio_ring.c), link."""
    virtio = tree / "tools" / "virtio"
    includes = [
        f"-I{SHIM_DIR}", f"-I{virtio}", f"-I{tree / 'tools' / 'include'}",
        f"-I{tree / 'drivers' / 'virtio'}", "-include", str(tree / "include/linux/kconfig.h"),
    ]
    work = out.with_suffix(".build")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sources = [tree / "drivers/vhost/vringh.c"] + [SHIM_DIR / s for s in SHIM_SOURCES]
    objects = []
    for src in sources:
        obj = work / (src.stem + ".o")
        _run(["gcc", *CFLAGS, *includes, "-c", str(src), "-o", str(obj)], cwd=virtio)
        objects.append(str(obj))
    tmp = out.with_suffix(".tmp")
    _run(["gcc", "-shared", "-pthread", "-o", str(tmp), *objects])
    tmp.rename(out)
    shutil.rmtree(work, ignore_errors=True)


def build() -> Path:
    """Fetch, extract, fix and build as needed; return the shared library's path."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tree = _source(root)
        apply_fixes(tree)
        lib = root / "lib" / f"liboracle-{_fingerprint(tree)}.so"
        if not lib.exists():
            lib.parent.mkdir(parents=True, exist_ok=True)
            compile_library(tree, lib)
        (root / "current").write_text(f"{lib}\n{tree}\n")
        return lib


def _source(root: Path) -> Path:
    """The extracted tree of apt's candidate; a cached tree if apt cannot deliver now."""
    try:
        package, version = candidate()
        tree = root / f"{package}_{version}"
        if not (tree / ".extracted").exists():
            extract(download(package, version, root), package, tree)
        return tree
    except PeerUnavailable:
        cached = sorted(p.parent for p in root.glob("linux-source-*/.extracted"))
        if cached:
            return cached[-1]
        raise


def source_tree() -> Path:
    """The extracted kernel tree of the last build (for the constant check)."""
    lines = (cache_root() / "current").read_text().splitlines()
    return Path(lines[1])


def peers_disabled() -> bool:
    """Whether the user opted out of the native peers (`VIRTIO_ORACLE_NO_PEERS=1`)."""
    return os.environ.get(NO_PEERS_ENV, "") not in ("", "0")


def selftest(tree: Path) -> str:
    """Build the kernel's own `vringh_test` in the cache tree and run it (both sides, C).

    This is how a new user would try `tools/virtio`; it shows the fixes suffice.
    """
    virtio = tree / "tools" / "virtio"
    _run(["make", "vringh_test"], cwd=virtio)
    report = _run(["./vringh_test", "--indirect", "--eventidx", "--parallel"], cwd=virtio)
    _run(["make", "clean"], cwd=virtio)
    return report


def main(argv: list[str]) -> int:
    """Build and print the library path (`--selftest`: also run Linux's vringh_test).

    With the opt-out set, say so and succeed.
    """
    if peers_disabled():
        print(f"{NO_PEERS_ENV} is set: not building the Linux peer")
        return 0
    try:
        lib = build()
        if "--selftest" in argv:
            print(selftest(source_tree()), end="")
    except PeerUnavailable as error:
        print(f"cannot build the Linux peer: {error}\n"
              f"(set {NO_PEERS_ENV}=1 to run without it)", file=sys.stderr)
        return 1
    print(lib)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
