"""The patch classifier: architecture numbers, presets, dropout, batch independence, factory."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from spinefx.models import (
    DISSECTABLE_LAYERS,
    DISSECTED_LAYER,
    PATCH_PRESETS,
    PatchClassifierConfig,
    build_model,
    config_from_record,
    config_to_record,
    count_parameters,
)


def test_paper_preset_has_the_authors_parameter_count_at_96():
    # 15,269,145 = the authors' encoder + head at 96^3 computed by hand (notes, section 2);
    # the added LeakyReLU and the applied dropout have no parameters.
    model = build_model(PATCH_PRESETS["paper"])
    assert count_parameters(model) == 15_269_145


def test_paper_preset_forward_shapes_on_meta_device():
    with torch.device("meta"):
        model = build_model(PATCH_PRESETS["paper"]).eval()
        features = model.encoder(torch.empty(2, 1, 96, 96, 96))
        logits = model(torch.empty(2, 1, 96, 96, 96))
    assert tuple(features.shape) == (2, 512, 12, 12, 12)
    assert tuple(logits.shape) == (2,)


def test_cpu_preset_forward_and_dissected_layer_shape():
    config = PATCH_PRESETS["cpu"]
    model = build_model(config).eval()
    seen = {}
    layer = dict(model.named_modules())[DISSECTED_LAYER]
    layer.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        logits = model(torch.rand(3, 1, 32, 32, 32))
    assert logits.shape == (3,)
    assert tuple(seen["out"].shape) == (3, config.widths[-1], 4, 4, 4)
    assert (seen["out"] >= 0).all()  # post-ReLU activations
    assert DISSECTABLE_LAYERS["patch_classifier"][0] == "encoder.level4"
    for name in DISSECTABLE_LAYERS["patch_classifier"]:
        assert name in dict(model.named_modules())


def _tiny(**changes) -> PatchClassifierConfig:
    base = PatchClassifierConfig(
        widths=(4, 8, 8, 16),
        patch_size_vox=16,
        spacing_mm=6.0,
        head_conv_widths=(8, 4),
        head_mlp_widths=(16, 8),
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("norm", ["batch", "group", "instance"])
def test_eval_prediction_of_a_sample_does_not_depend_on_its_batch(norm):
    torch.manual_seed(0)
    model = build_model(_tiny(norm=norm))
    model.train()
    with torch.no_grad():  # move BatchNorm running stats away from their init
        for _ in range(3):
            model(torch.rand(4, 1, 16, 16, 16) * 2)
    model.eval()
    x = torch.rand(1, 1, 16, 16, 16)
    others = torch.rand(5, 1, 16, 16, 16) * 3
    with torch.no_grad():
        alone = model(x)
        in_batch = model(torch.cat([x, others]))[:1]
    assert torch.allclose(alone, in_batch, atol=1e-5)


def test_dropout_is_applied_in_training_only():
    torch.manual_seed(0)
    model = build_model(_tiny(norm="group", dropout=0.3))
    x = torch.rand(2, 1, 16, 16, 16)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 4 and all(d.p == 0.3 for d in dropouts)  # 2 conv + 2 MLP stages


def test_wrong_input_size_is_rejected():
    model = build_model(_tiny())
    with pytest.raises(ValueError, match="expected input"):
        model(torch.rand(1, 1, 24, 24, 24))


def test_config_validation_and_record_round_trip():
    with pytest.raises(ValueError):
        PatchClassifierConfig(patch_size_vox=50)
    with pytest.raises(ValueError):
        PatchClassifierConfig(norm="layer")
    config = PATCH_PRESETS["cpu"]
    record = config_to_record(config)
    assert record["kind"] == "patch_classifier"
    assert config_from_record(record) == config


def test_factory_rejects_unregistered_configs():
    @dataclasses.dataclass
    class Other:
        pass

    with pytest.raises(TypeError):
        build_model(Other())
