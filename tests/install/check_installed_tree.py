#!/usr/bin/env python3
"""What a program outside the tree gets from `meson install`.

Installs the build into a temporary DESTDIR, then, using only pkg-config's
answers for that tree:
  1. compiles every installed header alone (C++ headers as C++20 with the
     project's warnings as errors, <dmakit/linux.h> as C11), so no header
     leans on an include it does not make or on a header left uninstalled;
  2. builds consumer.cpp against dmakit, dmakit-nvme, dmakit-net and
     dmakit-testing, runs it, and expects "ok".
Exits non-zero, naming each header or step that failed. That no header
under internal/ is installed or reached is tests/unit/public_headers' check.

usage: check_installed_tree.py BUILD_DIR CXX [CC]
"""
import concurrent.futures
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile

PACKAGES = ["dmakit", "dmakit-nvme", "dmakit-net", "dmakit-testing"]
WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"]


def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def pkg_config(env, *args):
    result = run(["pkg-config", *args, *PACKAGES], env=env)
    if result.returncode != 0:
        sys.exit(f"pkg-config {' '.join(args)} failed:\n{result.stderr}")
    return shlex.split(result.stdout)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    build_dir = pathlib.Path(sys.argv[1])
    cxx = shlex.split(sys.argv[2])
    cc = shlex.split(sys.argv[3]) if len(sys.argv) > 3 else ["cc"]
    here = pathlib.Path(__file__).resolve().parent

    with tempfile.TemporaryDirectory(prefix="dmakit-install-") as tmp:
        destdir = pathlib.Path(tmp) / "root"
        installed = run(["meson", "install", "-C", str(build_dir), "--destdir", str(destdir),
                         "--no-rebuild", "--quiet"])
        if installed.returncode != 0:
            sys.exit(f"meson install failed:\n{installed.stdout}{installed.stderr}")

        pc_dirs = sorted({str(p.parent) for p in destdir.rglob("dmakit.pc")})
        if len(pc_dirs) != 1:
            sys.exit(f"expected one dmakit.pc in the installed tree, found {pc_dirs}")
        env = dict(os.environ, PKG_CONFIG_PATH=pc_dirs[0], PKG_CONFIG_SYSROOT_DIR=str(destdir))
        cflags = pkg_config(env, "--cflags")
        libs = pkg_config(env, "--libs")

        include_roots = [pathlib.Path(f[2:]) for f in cflags if f.startswith("-I")]
        headers = sorted({h for root in include_roots if (root / "dmakit").is_dir()
                          for h in (root / "dmakit").rglob("*") if h.suffix in (".hpp", ".h")})
        if not headers:
            sys.exit(f"no dmakit headers under {include_roots}")
        names = sorted({str(h.relative_to(next(r for r in include_roots
                                               if h.is_relative_to(r)))) for h in headers})
        failures = []

        def compile_alone(name):
            is_c = name.endswith(".h")
            compiler = cc + ["-x", "c", "-std=c11"] if is_c else cxx + ["-x", "c++", "-std=c++20"]
            result = run(compiler + WARNINGS + cflags + ["-fsyntax-only", "-"],
                         input=f"#include <{name}>\n")
            return name, result

        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for name, result in pool.map(compile_alone, names):
                if result.returncode != 0:
                    failures.append(f"<{name}> does not compile alone:\n{result.stderr.strip()}")

        program = pathlib.Path(tmp) / "consumer"
        built = run(cxx + ["-std=c++20", *WARNINGS, *cflags, str(here / "consumer.cpp"),
                           "-o", str(program), *libs])
        if built.returncode != 0:
            failures.append(f"consumer.cpp does not build against the installed tree:\n"
                            f"{built.stderr.strip()}")
        else:
            lib_dirs = [f[2:] for f in libs if f.startswith("-L")]
            ran = run([str(program)], env=dict(os.environ,
                                               LD_LIBRARY_PATH=":".join(lib_dirs)))
            if ran.returncode != 0 or ran.stdout.strip() != "ok":
                failures.append(f"consumer exited {ran.returncode}: {ran.stdout}{ran.stderr}")
            else:
                # It must have loaded the installed libraries, not the build tree's.
                maps = run(["ldd", str(program)], env=dict(os.environ,
                                                             LD_LIBRARY_PATH=":".join(lib_dirs)))
                for lib in ("libdmakit.so", "libdmakit_nvme.so", "libdmakit_net.so",
                            "libdmakit_testing.so"):
                    line = next((l for l in maps.stdout.splitlines() if lib in l), "")
                    if str(destdir) not in line:
                        failures.append(f"consumer did not load the installed {lib}: {line!r}")

        print(f"{len(names)} installed headers compiled alone; consumer built with "
              f"pkg-config {' '.join(PACKAGES)}")
        if failures:
            print("\n\n".join(failures), file=sys.stderr)
            print(f"{len(failures)} problem(s) with the installed tree", file=sys.stderr)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
