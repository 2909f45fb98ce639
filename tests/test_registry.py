import pytest

from uda.registry import ALL_REGISTRIES, MODELS, TERMS


def test_every_registry_imports_its_modules():
    for name, reg in ALL_REGISTRIES.items():
        assert reg.scope in ('uda', 'mmengine'), name
    assert 'Adapter' in MODELS.available()
    assert {'SourceCE', 'SACSelfTraining'} <= set(TERMS.available())


def test_unknown_type_lists_registered_names():
    with pytest.raises(KeyError) as err:
        TERMS.build(dict(type='SourceCe'))
    msg = str(err.value)
    assert "Unknown type 'SourceCe'" in msg
    assert 'SourceCE' in msg and 'MinEnt' in msg  # the registered names
    assert 'Did you mean' in msg
    # A class that exists but was never imported: the message names where to import it.
    assert 'uda/methods/__init__.py' in msg and 'locations=' in msg


def test_unknown_model_type_through_root_registry():
    from mmengine.registry import MODELS as ROOT
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('uda'):
        with pytest.raises(KeyError, match='Adapter'):
            ROOT.build(dict(type='Adaptr', segmentor={}, terms=[]))


def test_registered_names_equal_class_names():
    for reg in ALL_REGISTRIES.values():
        for name, obj in reg.module_dict.items():
            if isinstance(obj, type):
                assert name == obj.__name__, (name, obj)


def test_unknown_keyword_names_the_class_and_key():
    with pytest.raises(TypeError, match=r"SourceCE.*unexpected keyword argument 'wieght'"):
        TERMS.build(dict(type='SourceCE', wieght=2.0))
    with pytest.raises(ValueError, match=r'SMPSegmentor.*encoder_nme'):
        MODELS.build(dict(type='SMPSegmentor', encoder_nme='resnet34'))
