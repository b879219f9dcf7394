"""CycleGAN building blocks: networks, loss, image pool, schedule, config, checkpoint checks, report."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cyclegan.config import PROFILES, from_profile
from cyclegan.losses import LSGANLoss
from cyclegan.model import CycleGAN, load_network, lr_factor
from cyclegan.networks import (PatchDiscriminator, ResnetGenerator, SingleOutputConv2d, init_weights, instance_norm,
                               parameter_count)
from cyclegan.pool import ImagePool
from cyclegan.realism.assessment import histogram, histogram_distances, synthesis_metrics


pytestmark = pytest.mark.usefixtures("one_thread")


def test_generator_keeps_shape_and_range():
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(1, ngf=8, n_blocks=2))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    norms = [m for m in g.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(not m.affine and m.num_groups == m.num_channels for m in norms)  # instance norm
    assert isinstance(g.model[0], nn.ReflectionPad2d) and isinstance(g.model[-1], nn.Tanh)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == 2


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_norm_is_instance_norm(memory_format):
    """The one-channel-per-group norm equals ``InstanceNorm2d`` in value and gradient, in both
    layouts (in float64, where two formulas of the same norm agree far below any real difference)."""
    torch.manual_seed(0)
    x = torch.randn(3, 16, 12, 12, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    ours, reference = instance_norm(16)(x), nn.InstanceNorm2d(16)(x)
    weights = torch.randn_like(ours)
    grad_ours, = torch.autograd.grad((ours * weights).sum(), x)
    grad_reference, = torch.autograd.grad((reference * weights).sum(), x)
    assert torch.allclose(ours, reference, rtol=0, atol=1e-10)
    assert torch.allclose(grad_ours, grad_reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kernel_size, padding, size", [(7, 0, 13), (4, 1, 9), (3, 0, 3)])
def test_single_output_conv_equals_conv2d(kernel_size, padding, size):
    """Value and gradients (input, weight, bias) equal ``nn.Conv2d``'s, in float64."""
    torch.manual_seed(0)
    reference = nn.Conv2d(5, 1, kernel_size, padding=padding).double()
    ours = SingleOutputConv2d(5, kernel_size, padding=padding).double()
    ours.load_state_dict(reference.state_dict())  # same parameter names: checkpoints fit either
    x = torch.randn(2, 5, size, size + 2, dtype=torch.float64, requires_grad=True)
    results = []
    for conv in (reference, ours):
        out = conv(x)
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
        results.append((out, *torch.autograd.grad((out * weights).sum(), (x, conv.weight, conv.bias))))
    for got, expected in zip(results[1], results[0]):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-12)


def test_patch_discriminator_is_70px_patchgan():
    d = PatchDiscriminator(1, ndf=8)
    assert d(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 30, 30)  # 70×70 receptive fields
    assert d(torch.zeros(3, 1, 64, 64)).shape == (3, 1, 6, 6)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert {m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}


def test_reference_parameter_counts():
    assert round(parameter_count(ResnetGenerator(1, ngf=64, n_blocks=9)) / 1e6, 2) == 11.37
    assert round(parameter_count(PatchDiscriminator(1, ndf=64)) / 1e6, 2) == 2.76


def test_init_is_normal_002_with_zero_bias():
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(1, ngf=32, n_blocks=3))
    weights = torch.cat([m.weight.flatten() for m in g.modules()
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(m.bias.abs().max() == 0 for m in g.modules() if isinstance(m, nn.Conv2d))


def test_lsgan_loss_values_and_buffers():
    loss = LSGANLoss()
    prediction = torch.tensor([[0.5, 1.5]])
    assert loss(prediction, True).item() == pytest.approx((0.25 + 0.25) / 2)
    assert loss(prediction, False).item() == pytest.approx((0.25 + 2.25) / 2)
    assert set(dict(loss.named_buffers())) == {"real_label", "fake_label"}
    assert loss.to(torch.float64)(prediction.double(), True).dtype == torch.float64


def test_pool_fills_then_mixes_history_and_round_trips():
    assert ImagePool(0).query(images := torch.ones(2, 1, 4, 4)) is images
    torch.manual_seed(0)
    pool = ImagePool(3)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as given
    history, returned_old = {0.0, 1.0, 2.0}, 0
    for value in range(3, 40):
        out = pool.query(torch.full((1, 1, 1, 1), float(value))).item()
        assert out == value or out in history
        returned_old += out != value
        history.add(float(value))
        assert len(pool.images) == 3
    assert 5 < returned_old < 32  # about half the queries swap in an older image
    saved, rng = pool.state_dict(), torch.get_rng_state()
    expected = [pool.query(torch.full((1, 1, 1, 1), 100.0 + i)).item() for i in range(10)]
    restored = ImagePool(3)
    restored.load_state_dict(saved)
    torch.set_rng_state(rng)
    assert [restored.query(torch.full((1, 1, 1, 1), 100.0 + i)).item() for i in range(10)] == expected


def test_lr_is_constant_then_decays_linearly_towards_zero():
    factors = [lr_factor(i, 10, 4) for i in range(10)]
    assert factors[:6] == [1.0] * 6
    assert factors[6:] == pytest.approx([4 / 5, 3 / 5, 2 / 5, 1 / 5])
    assert [lr_factor(i, 5, 0) for i in range(5)] == [1.0] * 5


def test_scheduler_follows_the_factor_over_training_steps():
    config = from_profile("cpu", image_size=32, ngf=4, n_blocks=1, ndf=4, iterations=4, decay_fraction=0.5)
    model = CycleGAN(config, torch.device("cpu"))
    lrs = []
    for _ in range(4):
        lrs.append(model.lr)
        model.step(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3])


def test_profiles_and_overrides():
    paper = from_profile("paper")
    assert (paper.image_size, paper.n_blocks, paper.ngf, paper.iterations, paper.batch_size) == (256, 9, 64, 5000, 1)
    assert paper.effective_load_size == 286
    cpu = from_profile("cpu", image_size=64, flip=None)
    assert cpu.image_size == 64 and cpu.flip is True and cpu.ngf == PROFILES["cpu"].ngf
    with pytest.raises(ValueError, match="unknown profile 'gpu'; choose one of: cpu, paper"):
        from_profile("gpu")
    with pytest.raises(ValueError, match="unknown setting"):
        from_profile("cpu", colour=3)
    with pytest.raises(ValueError, match="multiple of 4"):
        from_profile("cpu", image_size=30)
    with pytest.raises(ValueError, match="iterations must be positive"):
        from_profile("cpu", iterations=0)


def test_incompatible_weights_name_the_file_and_the_difference():
    small = ResnetGenerator(1, ngf=8, n_blocks=1)
    with pytest.raises(ValueError,
                       match=r"ckpt\.pt: G_A does not fit.*checkpoint \(16, 1, 7, 7\) vs model \(8, 1, 7, 7\)"):
        load_network(small, ResnetGenerator(1, ngf=16, n_blocks=1).state_dict(), "G_A", "ckpt.pt")
    with pytest.raises(ValueError, match="takes 3 input channel"):
        load_network(small, ResnetGenerator(3, ngf=8, n_blocks=1).state_dict(), "G_A", "ckpt.pt")
    with pytest.raises(ValueError, match="missing model"):
        load_network(ResnetGenerator(1, ngf=8, n_blocks=2), small.state_dict(), "G_A", "ckpt.pt")


def test_report_metrics_on_known_images():
    rng = np.random.default_rng(0)
    covid = rng.integers(0, 256, (5, 16, 16), dtype=np.uint8)
    parents = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    metrics = synthesis_metrics(parents, parents.copy(), covid)
    assert metrics["mean_abs_change_from_parent"]["max"] == 0
    assert metrics["histogram_distance_to_real_target"]["synthetic"] == \
        metrics["histogram_distance_to_real_target"]["parents (baseline)"]
    memorised = synthesis_metrics(parents, covid[:3].copy(), covid)
    assert memorised["nearest_real_target_distance"]["synthetic"]["max"] == 0
    assert histogram_distances(histogram(covid), histogram(covid)) == {"l1": 0.0, "wasserstein_grey_levels": 0.0}
    black, white = np.zeros((1, 2, 2), np.uint8), np.full((1, 2, 2), 255, np.uint8)
    assert histogram_distances(histogram(black), histogram(white)) == {"l1": 2.0, "wasserstein_grey_levels": 255.0}


def test_batched_passes_equal_separate_calls():
    """The training step runs translation + identity, and D on real + fake, as one batch each;
    with per-image instance norm that must equal separate calls (compared in float64: batch size
    changes the kernels, and so the last bits of float32, from one CPU to another)."""
    torch.manual_seed(0)
    model = CycleGAN(from_profile("cpu", image_size=32, ngf=8, n_blocks=2, ndf=8), torch.device("cpu"))
    for net in model.nets.values():
        net.double()
    a, b = (torch.rand(2, 1, 32, 32, dtype=torch.float64) * 2 - 1 for _ in range(2))
    same = dict(rtol=0, atol=1e-10)
    with torch.no_grad():
        fake_B, idt_A, fake_A, idt_B, rec_A, rec_B = model.generators(a, b, True)
        for batched, separate in ((fake_B, model.G_A(a)), (idt_A, model.G_A(b)), (fake_A, model.G_B(b)),
                                  (idt_B, model.G_B(a)), (rec_A, model.G_B(model.G_A(a)))):
            torch.testing.assert_close(batched, separate, **same)
        assert model.generators(a, b, False)[1] is None
        (real_pred, fake_pred), _ = model.discriminators(a, b, fake_A, fake_B)
        torch.testing.assert_close(real_pred, model.D_A(b), **same)
        torch.testing.assert_close(fake_pred, model.D_A(fake_B), **same)
