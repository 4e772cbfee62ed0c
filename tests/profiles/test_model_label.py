"""Short model names for labels and profile names: the model id's last part."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.config.profiles import model_label


@pytest.mark.parametrize(
    ("model", "label"),
    [
        ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL-7B-Instruct"),
        ("/home/ana/models/qwen/Qwen2.5-VL-7B-Q4_K_M.gguf", "Qwen2.5-VL-7B-Q4_K_M"),
        ("C:\\models\\gemma-3-4b-it-Q8_0.GGUF", "gemma-3-4b-it-Q8_0"),
        ("smollm2", "smollm2"),
        ("models/", "models"),
        ("", ""),
        (".gguf", ".gguf"),
    ],
)
def test_model_label_is_the_last_part_without_a_weights_suffix(model, label):
    assert model_label(model) == label
