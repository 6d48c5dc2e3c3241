"""The native module as AWS Lambda layers: build the wheels, lay them out, check them.

    python native/layer.py build --arch x86_64|arm64   # one zip in out/layers/
    python native/layer.py check out/layers/*.zip      # what `make layer` runs after building

A layer zip holds the unpacked wheel under `python/` (Lambda puts
/opt/python on sys.path): `python/sendtrail_native/...abi3.so` and its
dist-info. Wheels are built by `maturin build --zig` for the manylinux2014
(glibc 2.17) target of each architecture and the abi3 cp311 tag, so one
layer serves every Python >= 3.11 runtime of that architecture. The check
reads what a loader would: the wheel tag, the ELF header's class and machine
of every shared object, and the newest glibc symbol version it needs.
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "native"
LAYERS = ROOT / "out" / "layers"
WHEELS = ROOT / "out" / "wheels"

# Lambda architecture -> (Rust target triple, ELF e_machine, wheel platform suffix)
ARCHITECTURES = {
    "x86_64": ("x86_64-unknown-linux-gnu", 0x3E, "x86_64"),
    "arm64": ("aarch64-unknown-linux-gnu", 0xB7, "aarch64"),
}
MAX_GLIBC = (2, 17)  # manylinux2014
ABI_TAG = "cp311-abi3"
# A fixed timestamp keeps the zip's bytes (and so the layer's hash) the same for the same wheel.
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class LayerError(Exception):
    pass


def layer_path(arch: str) -> Path:
    return LAYERS / f"sendtrail-native-{arch}.zip"


def build(arch: str) -> Path:
    triple = ARCHITECTURES[arch][0]
    _ensure_rust_target(triple)
    out = WHEELS / arch
    shutil.rmtree(out, ignore_errors=True)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}  # maturin finds ziglang here
    subprocess.run([str(bin_dir / "maturin"), "build", "--release", "--locked", "--zig", "--target", triple,
                    "--compatibility", "manylinux2014", "--out", str(out)], cwd=NATIVE, env=env, check=True)
    [wheel] = out.glob("*.whl")
    target = layer_path(arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target.with_suffix(".tmp"), "w",
                                                           zipfile.ZIP_DEFLATED) as layer:
        for item in sorted(source.infolist(), key=lambda info: info.filename):
            if item.is_dir():
                continue
            info = zipfile.ZipInfo(f"python/{item.filename}", date_time=ZIP_DATE)
            info.external_attr = (0o755 if item.filename.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            layer.writestr(info, source.read(item))
        layer.comment = wheel.name.encode()
    target.with_suffix(".tmp").replace(target)
    check(target, arch)
    print(f"layer {arch}: {target.relative_to(ROOT)} ({target.stat().st_size // 1024} KiB, from {wheel.name})")
    return target


def _ensure_rust_target(triple: str) -> None:
    installed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True,
                               check=True).stdout.split()
    if triple not in installed:
        subprocess.run(["rustup", "target", "add", triple], check=True)


def elf_machine(data: bytes) -> int:
    """e_machine of a 64-bit little-endian ELF image (LayerError for anything else)."""
    if data[:4] != b"\x7fELF":
        raise LayerError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise LayerError("not a 64-bit little-endian ELF file")
    if int.from_bytes(data[16:18], "little") != 3:  # ET_DYN
        raise LayerError("not a shared object")
    return int.from_bytes(data[18:20], "little")


def newest_glibc(data: bytes) -> tuple[int, ...]:
    """The newest GLIBC_x.y symbol version the object names (its .dynstr holds them)."""
    versions = [tuple(int(part) for part in match.split(b".")) for match in re.findall(rb"GLIBC_(\d+(?:\.\d+)+)", data)]
    return max(versions, default=(0,))


def check(path: Path, arch: str | None = None) -> None:
    """The layer zip is what Lambda expects for `arch` (taken from its name when not given)."""
    arch = arch or path.stem.rsplit("-", 1)[-1]
    if arch not in ARCHITECTURES:
        raise LayerError(f"{path.name}: unknown architecture {arch!r}")
    _, machine, platform = ARCHITECTURES[arch]
    with zipfile.ZipFile(path) as layer:
        names = layer.namelist()
        wheel = layer.comment.decode()
        if not wheel.endswith(".whl") or f"-{ABI_TAG}-" not in wheel or "manylinux2014_" + platform not in wheel:
            raise LayerError(f"{path.name}: built from {wheel or 'an unnamed wheel'}, not a {ABI_TAG} "
                             f"manylinux2014_{platform} wheel")
        outside = [name for name in names if not name.startswith("python/")]
        if outside:
            raise LayerError(f"{path.name}: files outside python/: {outside}")
        objects = [name for name in names if name.endswith(".so")]
        if objects != ["python/sendtrail_native/sendtrail_native.abi3.so"]:
            raise LayerError(f"{path.name}: expected the one abi3 extension module, found {objects}")
        if "python/sendtrail_native/__init__.py" not in names:
            raise LayerError(f"{path.name}: no sendtrail_native package")
        data = layer.read(objects[0])
    found = elf_machine(data)
    if found != machine:
        raise LayerError(f"{path.name}: {objects[0]} is for ELF machine {found:#x}, not {arch} ({machine:#x})")
    glibc = newest_glibc(data)
    if glibc > MAX_GLIBC:
        raise LayerError(f"{path.name}: needs glibc {'.'.join(map(str, glibc))}, newer than manylinux2014's 2.17")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build")
    build_command.add_argument("--arch", choices=sorted(ARCHITECTURES), required=True)
    check_command = commands.add_parser("check")
    check_command.add_argument("zips", nargs="+", type=Path)
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "build":
            build(arguments.arch)
        else:
            for path in arguments.zips:
                check(path)
                print(f"{path.relative_to(ROOT) if path.is_absolute() else path}: ok")
    except LayerError as error:
        print(f"layer check failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
