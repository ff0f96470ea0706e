import pytest

from pipeline.common.registry import Registry, UnknownName
from pipeline.features.backends import AUDIO_ENCODERS, TEXT_ENCODERS
from pipeline.text.backends import CAPTIONERS, REASONERS


def test_lookup_by_name_and_clear_errors():
    reg: Registry[int] = Registry("widget")
    reg.register("b", 2)
    reg.register("a", 1)
    assert reg.get("a") == 1 and "b" in reg and list(reg) == ["a", "b"]
    with pytest.raises(UnknownName, match="unknown widget 'c'; known: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", 3)


def test_every_kind_has_its_backends_under_their_own_names():
    assert CAPTIONERS.names() == ["hf", "reference", "vllm"]
    assert REASONERS.names() == ["cot_rules", "hf", "nouns", "vllm"]
    assert AUDIO_ENCODERS.names() == ["logmel", "vggish"]
    assert TEXT_ENCODERS.names() == ["clip", "imagebind", "sentence-transformers"]
    for registry in (CAPTIONERS, REASONERS, AUDIO_ENCODERS, TEXT_ENCODERS):
        assert all(registry.get(name).name == name for name in registry)
