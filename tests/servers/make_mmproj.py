"""Write a tiny vision projector (mmproj GGUF) that llama.cpp's llama-server accepts.

No vision weights can be downloaded for the tests, but llama-server loads any projector
that matches its loader (``tools/mtmd/clip.cpp`` in the vendored llama.cpp of the
llama-cpp-python 0.3.36 sdist). This writes a LLaVA-style one with seeded random weights:
a CLIP ViT on 32x32 images in 8x8 patches (16 patches, hidden width 64, two blocks, of
which the ``mlp`` projector uses the first, as LLaVA drops the last) and a two-layer
``mlp`` projector whose output width is SmolLM2-135M's embedding width, 576. The server
then really decodes images, resizes them, encodes them and counts their tokens; the
answers are nonsense, which the tests do not care about.

Key and tensor names follow ``tools/mtmd/clip-impl.h``; the layout follows the reference
writer ``tools/mtmd/legacy-models/convert_image_encoder_to_gguf.py``. NumPy shapes are
ggml's ``ne`` reversed: a weight applied as ``ggml_mul_mat(w, x)`` is ``(out, in)``.

Usage: ``python tests/servers/make_mmproj.py DIR`` writes ``DIR/mmproj-tiny-clip-vN.gguf``
unless it is there already (build_llama_server.sh runs it next to the SmolLM2 GGUF), and
prints its path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

IMAGE_SIZE = 32
PATCH_SIZE = 8
HIDDEN = 64
HEADS = 4
FFN = 128
BLOCKS = 2
PROJ_HIDDEN = 128
TEXT_EMBD = 576  # SmolLM2-135M's embedding width: the server refuses any other
SEED = 14
# Bump when the layout changes, so a stale cached file is not reused (see FILENAME).
VERSION = 1
FILENAME = f"mmproj-tiny-clip-v{VERSION}.gguf"
# One image costs (IMAGE_SIZE / PATCH_SIZE) ** 2 tokens: every image is resized to
# IMAGE_SIZE x IMAGE_SIZE first (a fixed-size projector, no tiling).
TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE) ** 2


def _tensors(np: Any, rng: Any) -> dict[str, Any]:
    def w(*shape: int, scale: float = 0.02) -> Any:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ones(n: int) -> Any:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> Any:
        return np.zeros(n, dtype=np.float32)

    n_patches = TOKENS_PER_IMAGE
    t: dict[str, Any] = {
        # conv kernel, ne = [patch, patch, 3, hidden]; kept f16 like the reference writer
        "v.patch_embd.weight": w(HIDDEN, 3, PATCH_SIZE, PATCH_SIZE).astype(np.float16),
        "v.patch_embd.bias": zeros(HIDDEN),
        "v.position_embd.weight": w(n_patches, HIDDEN),
        "v.pre_ln.weight": ones(HIDDEN),
        "v.pre_ln.bias": zeros(HIDDEN),
    }
    for i in range(BLOCKS):
        p = f"v.blk.{i}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            t[f"{p}.{name}.weight"] = w(HIDDEN, HIDDEN)
            t[f"{p}.{name}.bias"] = zeros(HIDDEN)
        for name in ("ln1", "ln2"):
            t[f"{p}.{name}.weight"] = ones(HIDDEN)
            t[f"{p}.{name}.bias"] = zeros(HIDDEN)
        # up: hidden -> ffn, down: ffn -> hidden (down's ne[0] is FFN, so the loader's
        # "legacy swapped up/down" check does not fire)
        t[f"{p}.ffn_up.weight"] = w(FFN, HIDDEN)
        t[f"{p}.ffn_up.bias"] = zeros(FFN)
        t[f"{p}.ffn_down.weight"] = w(HIDDEN, FFN)
        t[f"{p}.ffn_down.bias"] = zeros(HIDDEN)
    t["mm.0.weight"] = w(PROJ_HIDDEN, HIDDEN)
    t["mm.0.bias"] = zeros(PROJ_HIDDEN)
    t["mm.2.weight"] = w(TEXT_EMBD, PROJ_HIDDEN)
    t["mm.2.bias"] = zeros(TEXT_EMBD)
    return t


def write_mmproj(out: Path) -> Path:
    """Write the projector to ``out`` (via a temporary file, so a crash leaves none)."""
    try:
        import gguf
        import numpy as np
    except ImportError:
        sys.exit(
            "make_mmproj: the `gguf` package is missing: install the test extras "
            "(pip install -e '.[test]')."
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(tmp, arch="clip")
    writer.add_name("kanoa-desktop tiny test projector")
    writer.add_description("random seeded CLIP-style ViT + mlp projector for SmolLM2-135M")
    writer.add_file_type(0)  # all f32 except the conv kernel
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", HIDDEN)
    writer.add_uint32("clip.vision.feed_forward_length", FFN)
    writer.add_uint32("clip.vision.block_count", BLOCKS)
    writer.add_uint32("clip.vision.projection_dim", TEXT_EMBD)
    writer.add_uint32("clip.vision.attention.head_count", HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    writer.add_bool("clip.use_gelu", True)
    for name, data in _tensors(np, np.random.default_rng(SEED)).items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out


def ensure_mmproj(folder: Path) -> Path:
    """``folder/FILENAME``, written first if it is not there yet."""
    out = Path(folder) / FILENAME
    if not out.is_file():
        write_mmproj(out)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: python {Path(__file__).name} DIR", file=sys.stderr)
        return 2
    print(ensure_mmproj(Path(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
