"""Networks of survey2survey.nets: the paper's architecture, shapes, per-band grouping."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from survey2survey.errors import ModelError
from survey2survey.nets import (
    PhysicsResidualGenerator,
    AECNN,
    NETWORKS,
    AugCGANGenerator,
    Autoencoder,
    Discriminator,
    GeneratorDown,
    GeneratorUp,
    LatentDiscriminator,
    LatentEncoder,
    NoiseEmulator,
    PatchGANDiscriminator,
    ResnetGenerator,
    build_generator,
    count_parameters,
    generator_cfht_to_sdss,
    generator_sdss_to_cfht,
)
from survey2survey.nets.discriminator import fourier_channels, high_pass_and_fourier
from survey2survey.nets.layers import (
    HIGH_PASS_KERNEL,
    ConvLReLU,
    GroupedLinear,
    FoldedUpConvLReLU,
    UpConvLReLU,
    Upsample,
    fold_upsampling,
    same_avg_pool2d,
    symmetric_pad2d,
)
from survey2survey.nets.noise_emulator import symmetry_orbits
from tests._discriminator_reference import forward_per_band


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


# ---------------------------------------------------------------- parameter counts
@pytest.mark.parametrize(
    "build, expected",
    [
        (generator_sdss_to_cfht, 1_425_093),
        (generator_cfht_to_sdss, 1_019_269),
        (Autoencoder, 2_162_501),
        (Discriminator, 3_859_845),
        (NoiseEmulator, 22_010),
    ],
    ids=["G_sdss_to_cfht", "G_cfht_to_sdss", "autoencoder", "discriminator", "noise_emulator"],
)
def test_paper_networks_have_exact_parameter_counts(build, expected):
    assert count_parameters(build()) == expected


def test_variant_and_benchmark_parameter_counts():
    # pixel shuffle (variant e): parameter-free depth-to-space as in the paper's code, so
    # each convolution after an up-sampling sees a quarter of the channels
    assert count_parameters(generator_sdss_to_cfht(upsample="pixelshuffle")) == 829_125
    assert count_parameters(generator_cfht_to_sdss(upsample="pixelshuffle")) == 644_485
    # Zhu et al.'s code prints these for 3-channel images (9-block generator, n_layers=3 PatchGAN)
    assert count_parameters(ResnetGenerator(bands=3, n_blocks=9)) == 11_378_179
    assert count_parameters(PatchGANDiscriminator(bands=3)) == 2_764_737
    # Survey2Survey Table 1, column N_P, summed (3 colour channels)
    assert count_parameters(AECNN(bands=3)) == 3584 + 73792 + 18464 + 9248 + 18496 + 73856 + 3459


def test_discriminator_and_noise_emulator_scale_per_band():
    assert count_parameters(Discriminator(bands=1)) * 5 == 3_859_845
    assert count_parameters(NoiseEmulator(bands=1)) == 128 + 4160 + 65 + 49


# ---------------------------------------------------------------- shapes
def test_generators_map_between_the_paper_grids():
    sdss, cfht = torch.randn(2, 5, 64, 64), torch.randn(2, 5, 136, 136)
    for upsample in ("nearest", "pixelshuffle"):
        assert generator_sdss_to_cfht(upsample=upsample)(sdss).shape == (2, 5, 136, 136)
        assert generator_cfht_to_sdss(upsample=upsample)(cfht).shape == (2, 5, 64, 64)


@pytest.mark.parametrize("size", [64, 136])
def test_autoencoder_and_discriminator_shapes(size):
    x = torch.randn(2, 5, size, size)
    assert Autoencoder()(x).shape == (2, 5, size, size)
    assert Discriminator()(x).shape == (2, 5)


def test_build_generator_other_survey_pairs():
    # e.g. HSC (152 px) <-> DES (~100 px), 4 bands, and a non-square grid
    up = build_generator(100, 152, bands=4)
    down = build_generator(152, 100, bands=4, upsample="pixelshuffle")
    assert isinstance(up, GeneratorUp) and isinstance(down, GeneratorDown)
    assert up(torch.randn(1, 4, 100, 100)).shape == (1, 4, 152, 152)
    assert down(torch.randn(1, 4, 152, 152)).shape == (1, 4, 100, 100)
    odd = build_generator((33, 41), (70, 90), bands=2)
    assert odd(torch.randn(1, 2, 33, 41)).shape == (1, 2, 70, 90)
    assert Autoencoder(bands=2)(torch.randn(1, 2, 33, 41)).shape == (1, 2, 33, 41)
    with pytest.raises(ModelError, match="no generator from 64x64 to 64x64"):
        build_generator(64, 64)
    with pytest.raises(ModelError, match="larger .* along both axes"):
        build_generator((64, 64), (136, 32))


@pytest.mark.parametrize("hw", [(1, 1), (17, 23), (64, 64)])
def test_noise_emulator_any_size(hw):
    ne = NoiseEmulator()
    z1, z2 = ne.sample_inputs(3, *hw)
    assert z1.shape == (3, 5) and z2.shape == (3, 5, hw[0] + 6, hw[1] + 6)
    assert ne(z1, z2).shape == (3, 5, *hw)
    assert ne.sample(2, *hw).shape == (2, 5, *hw)


def test_benchmark_network_shapes():
    x = torch.randn(2, 5, 64, 64)
    z = torch.randn(2, 32)
    assert len(ResnetGenerator().blocks) == 6  # the paper's benchmark (g)
    assert ResnetGenerator(ngf=8, n_blocks=2)(x).shape == x.shape
    assert PatchGANDiscriminator()(x).shape == (2, 1, 6, 6)
    gen = AugCGANGenerator(ngf=8, n_blocks=2)
    y = gen(x, z)
    assert y.shape == x.shape
    assert not torch.allclose(y, gen(x, torch.randn(2, 32)))  # the code z matters
    assert LatentEncoder()(x, x).shape == (2, 32)
    assert LatentDiscriminator()(z).shape == (2, 1)
    assert AECNN(bands=5, in_size=136, out_size=64)(torch.randn(1, 5, 136, 136)).shape == (1, 5, 64, 64)
    out = AECNN(bands=3, output_activation="sigmoid")(torch.randn(1, 3, 64, 64) * 10)
    assert out.min() >= 0 and out.max() <= 1
    # our default: a linear output, since stretched fluxes are unbounded and can be negative
    assert AECNN(bands=5).decode is not None and AECNN().output_activation == "none"


def test_wrong_inputs_and_arguments_are_model_errors():
    expected = r"GeneratorUp expects input of shape \(N, 5, 64, 64\), got \(1, 5, 136, 136\)"
    with pytest.raises(ModelError, match=expected):
        generator_sdss_to_cfht()(torch.randn(1, 5, 136, 136))
    with pytest.raises(ModelError, match="Discriminator expects"):
        Discriminator()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ModelError, match="z2 must have shape"):
        NoiseEmulator()(torch.randn(2, 5), torch.randn(2, 5, 5, 5))
    with pytest.raises(ModelError, match="z1 must have shape"):
        NoiseEmulator().amplitude(torch.randn(2, 4))
    with pytest.raises(ModelError, match="upsample must be one of"):
        generator_sdss_to_cfht(upsample="bilinear")
    with pytest.raises(ModelError, match="bands must be a positive integer"):
        Autoencoder(bands=0)
    with pytest.raises(ModelError, match="must be larger"):
        GeneratorUp(in_size=136, out_size=64)
    with pytest.raises(ModelError, match="divisible by 4"):
        ResnetGenerator()(torch.randn(1, 5, 30, 30))


# ---------------------------------------------------------------- paper conventions
def test_same_average_pooling_matches_tensorflow_same():
    x = torch.randn(2, 3, 5, 7)
    got = same_avg_pool2d(x)
    assert got.shape == (2, 3, 3, 4)  # odd sizes round up
    ref = torch.empty_like(got)
    for i in range(3):
        for j in range(4):
            # the edge window averages only the pixels that exist
            ref[:, :, i, j] = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean(dim=(2, 3))
    torch.testing.assert_close(got, ref)


def test_symmetric_padding_matches_numpy():
    x = torch.randn(2, 3, 6, 9)
    want = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="symmetric")
    np.testing.assert_array_equal(symmetric_pad2d(x, 2).numpy(), want)


def test_initialisation_follows_the_paper():
    d = Discriminator(bands=2)
    convs = [m for m in d.modules() if isinstance(m, ConvLReLU)]
    fcs = [m for m in d.modules() if isinstance(m, GroupedLinear)]
    assert len(convs) == 8 and len(fcs) == 8  # 5 + 3 convolutions; 4 + 2 ACM, 2 FC
    for m in convs + fcs:
        assert torch.all(m.bias == 0.1)
    for conv in convs:
        k = conv.kernel_size[0] ** 2
        # Xavier bound of one band's layer, not of the grouped convolution as a whole
        fan_in, fan_out = conv.in_channels // conv.groups * k, conv.out_channels // conv.groups * k
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = conv.weight.abs().max().item()
        assert 0.9 * bound < w <= bound
    hp = d.high_pass.kernel
    assert hp.shape == (2, 1, 5, 5) and torch.equal(hp[1, 0], torch.tensor(HIGH_PASS_KERNEL))
    assert "high_pass.kernel" not in d.state_dict()  # a fixed constant, not a weight


@pytest.mark.parametrize(
    "net, shape, last",
    [(Autoencoder, (1, 5, 64, 64), "conv9"), (generator_sdss_to_cfht, (1, 5, 64, 64), "conv10"),
     (generator_cfht_to_sdss, (1, 5, 136, 136), "conv8")],
)  # fmt: skip
def test_leaky_relu_after_the_last_convolution(net, shape, last):
    model = net()
    seen = {}
    getattr(model, last).register_forward_hook(lambda m, inp, out: seen.update(inp=inp[0]))
    out = model(torch.randn(shape))
    conv = getattr(model, last)
    pre = F.conv2d(seen["inp"], conv.weight, conv.bias, padding=conv.padding)
    assert (pre < 0).any()
    torch.testing.assert_close(out, F.leaky_relu(pre, 0.2))


def test_generator_down_crops_with_an_unpadded_convolution():
    g = generator_cfht_to_sdss()
    assert g.conv6.padding == (0, 0) and g.conv6.kernel_size == (5, 5)
    assert all(getattr(g, f"conv{i}").padding != (0, 0) for i in (1, 2, 3, 4, 5, 7, 8))


# ---------------------------------------------------------------- discriminator
@pytest.mark.parametrize("size, n", [(64, 2), (136, 1)])
def test_grouped_discriminator_equals_the_per_band_loop(size, n):
    d = Discriminator()
    x = torch.randn(n, 5, size, size)
    with torch.no_grad():
        grouped, looped = d(x), forward_per_band(d, x)
    torch.testing.assert_close(grouped, looped, rtol=1e-4, atol=1e-4 * looped.abs().max().item())


def test_fourier_channels_are_real_and_imaginary_parts_per_band():
    x = torch.randn(2, 3, 8, 6)
    f = fourier_channels(x)
    assert f.shape == (2, 6, 8, 6)
    spectrum = np.fft.fft2(x.numpy().astype(np.float64))  # unnormalised, no shift
    np.testing.assert_allclose(f[:, 0::2].numpy(), spectrum.real, atol=1e-4)
    np.testing.assert_allclose(f[:, 1::2].numpy(), spectrum.imag, atol=1e-4)


def test_sub_discriminators_only_see_their_band():
    d = Discriminator()
    x = torch.randn(2, 5, 64, 64)
    x2 = x.clone()
    x2[:, 3] = torch.randn(2, 64, 64)
    with torch.no_grad():
        a, b = d(x), d(x2)
    changed = (a - b).abs().amax(dim=0)
    assert changed[3] > 0 and torch.all(changed[[0, 1, 2, 4]] == 0)


# ---------------------------------------------------------------- noise emulator
def test_noise_kernel_is_symmetric():
    ne = NoiseEmulator()
    k = ne.symmetric_kernel().detach()
    assert k.shape == (5, 1, 7, 7)
    for turns in (1, 2, 3):
        assert torch.equal(torch.rot90(k, turns, dims=(2, 3)), k)
    assert torch.equal(k.flip(-1), k) and torch.equal(k.flip(-2), k) and torch.equal(k.transpose(2, 3), k)
    assert all(len(torch.unique(k[b])) == 10 for b in range(5))  # w0 ... w9 of Fig. 2f
    # the paper's code: average with the three 90-degree rotations, then with the mirror
    raw = ne.kernel.detach()
    rot = (raw + sum(torch.rot90(raw, t, dims=(2, 3)) for t in (1, 2, 3))) / 4
    torch.testing.assert_close(k, (rot + rot.flip(-1)) / 2)
    assert symmetry_orbits(7).unique().numel() == 10


def test_noise_emulator_is_deterministic_given_seeds():
    ne = NoiseEmulator()
    z1, z2 = ne.sample_inputs(4, 20, 30, generator=torch.Generator().manual_seed(7))
    z1b, z2b = ne.sample_inputs(4, 20, 30, generator=torch.Generator().manual_seed(7))
    assert torch.equal(z1, z1b) and torch.equal(z2, z2b)
    assert torch.equal(ne(z1, z2), ne(z1, z2))
    a = ne.sample(2, 16, 16, generator=torch.Generator().manual_seed(3))
    b = ne.sample(2, 16, 16, generator=torch.Generator().manual_seed(3))
    c = ne.sample(2, 16, 16, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_noise_emulator_matches_a_per_band_reference():
    ne = NoiseEmulator(bands=3)
    z1, z2 = ne.sample_inputs(2, 12, 10)
    amp = ne.amplitude(z1)
    assert amp.shape == (2, 3) and torch.all(amp >= 0)
    out = ne(z1, z2)
    k = ne.symmetric_kernel()
    for b in range(3):
        # amplitude of band b from its own three FC layers
        h = F.leaky_relu(z1[:, b : b + 1] @ ne.fc1.weight[b] + ne.fc1.bias[b], 0.2)
        h = F.leaky_relu(h @ ne.fc2.weight[b] + ne.fc2.bias[b], 0.2)
        a = F.softplus(h @ ne.fc3.weight[b] + ne.fc3.bias[b])  # (N, 1)
        torch.testing.assert_close(a[:, 0], amp[:, b])
        ref = F.conv2d(z2[:, b : b + 1] * a[:, :, None, None], k[b : b + 1])
        torch.testing.assert_close(out[:, b : b + 1], ref)


def test_noise_emulator_trains():
    ne = NoiseEmulator(bands=2)
    ne.sample(2, 8, 8).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ne.parameters())


# ---------------------------------------------------------------- GPU-friendliness
def test_channels_last_gives_the_same_result():
    x = torch.randn(2, 5, 64, 64)
    for net in (Discriminator(), generator_sdss_to_cfht()):
        with torch.no_grad():
            ref = net(x)
            net_cl = net.to(memory_format=torch.channels_last)
            got = net_cl(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_bfloat16_autocast():
    x = torch.randn(1, 5, 64, 64)
    d, g, ne = Discriminator(), generator_sdss_to_cfht(), NoiseEmulator()
    z1, z2 = ne.sample_inputs(1, 64, 64)
    with torch.no_grad():
        ref = (d(x), g(x), ne(z1, z2))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = (d(x), g(x), ne(z1, z2))
    # the generator's convolutions run in bfloat16 (err > 0 below), its output layer in float32
    assert low[1].dtype == torch.float32
    # ... but not the discriminator's high-pass filter and FFT
    with torch.autocast("cpu", dtype=torch.bfloat16):
        filtered, fourier = high_pass_and_fourier(x, d.high_pass.kernel)
    assert filtered.dtype == fourier.dtype == torch.float32
    assert torch.equal(filtered, d.high_pass(x)) and torch.equal(fourier, fourier_channels(filtered))
    for r, lo in zip(ref, low):
        assert torch.isfinite(lo).all()
        err = (lo.float() - r).abs().max() / r.abs().max()
        assert 0 < err < 0.1, err


# ---------------------------------------------------------------- up-sampling folded into convolutions
@pytest.mark.parametrize("k, padding, hw", [(3, "same", (8, 8)), (3, "same", (17, 13)), (5, "same", (7, 9)),
                                            (5, "valid", (34, 34)), (3, "valid", (10, 12)), (5, "valid", (9, 12))])
def test_up_sampling_folded_into_the_convolution_is_the_same_function(k, padding, hw):
    torch.manual_seed(0)
    layer = UpConvLReLU(6, 4, k, padding=padding).double()
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    x = torch.randn(3, 6, *hw, dtype=torch.float64)
    size = (2 * hw[0], 2 * hw[1])
    reference = F.leaky_relu(F.conv2d(F.interpolate(x, size=size, mode="nearest"), layer.weight, layer.bias,
                                      padding=layer.padding), 0.2)
    torch.testing.assert_close(layer(x, size), reference, rtol=0, atol=0)  # the plain layer is the paper's
    holder = nn.Sequential(layer)
    fold_upsampling(holder)
    folded = holder[0]
    assert type(folded) is FoldedUpConvLReLU and folded.weight is layer.weight and folded.bias is layer.bias
    out = folded(x, size)
    assert out.shape == reference.shape
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    # gradients reach the original weights the same way
    g_ref = torch.autograd.grad(reference.square().sum(), layer.weight)[0]
    g_fold = torch.autograd.grad(folded(x, size).square().sum(), layer.weight)[0]
    torch.testing.assert_close(g_fold, g_ref, rtol=1e-10, atol=1e-10)


def test_folded_up_sampling_only_where_it_is_exact():
    x = torch.randn(1, 4, 8, 8)
    holder = nn.Sequential(UpConvLReLU(4, 4, 3), UpConvLReLU(1, 4, 3, upsample="pixelshuffle"))
    fold_upsampling(holder)
    folded, shuffle = holder[0], holder[1]
    # not a factor of 2: nearest resize, then the convolution
    odd = folded(x, (17, 17))
    assert torch.equal(odd, ConvLReLU.forward(folded, F.interpolate(x, size=(17, 17), mode="nearest")))
    # pixel shuffle (variant e) is not folded: shuffle, then the convolution of the quarter channels
    assert type(shuffle) is UpConvLReLU
    assert torch.equal(shuffle(x, (16, 16)), ConvLReLU.forward(shuffle, F.pixel_shuffle(x, 2)))


def test_folding_cuts_the_generator_flops():
    from torch.utils.flop_counter import FlopCounterMode

    def gflop(net, shape):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(shape))
        return counter.get_total_flops() / 1e9

    g = generator_sdss_to_cfht()
    assert gflop(g, (1, 5, 64, 64)) == pytest.approx(13.6, abs=0.05)  # the paper's network as written
    assert gflop(fold_upsampling(g), (1, 5, 64, 64)) == pytest.approx(7.94, abs=0.05)


@pytest.mark.parametrize("build, shape", [(generator_sdss_to_cfht, (2, 5, 64, 64)),
                                          (generator_cfht_to_sdss, (2, 5, 136, 136)),
                                          (Autoencoder, (2, 5, 64, 64))])
def test_networks_with_folded_up_sampling_equal_the_plain_port(build, shape):
    torch.manual_seed(1)
    net = build().double()
    keys = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(*shape, dtype=torch.float64)
    with torch.no_grad():
        plain = net(x)
        folded = fold_upsampling(net)(x)
    torch.testing.assert_close(folded, plain, rtol=1e-12, atol=1e-12)
    # the same weights under the same names: a folded network saves and loads as before
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in keys.items()}


# ---------------------------------------------------------------- rebuilding
def test_every_network_rebuilds_from_json_init_kwargs():
    examples = [
        Autoencoder(bands=4),
        generator_sdss_to_cfht(upsample="pixelshuffle"),
        GeneratorDown(bands=3, in_size=[152, 152], out_size=[100, 100]),
        NoiseEmulator(bands=2),
        Discriminator(bands=1),
        ResnetGenerator(bands=2, ngf=8, n_blocks=1),
        PatchGANDiscriminator(bands=2, ndf=8, n_layers=2),
        AugCGANGenerator(bands=2, latent_dim=4, ngf=8, n_blocks=1),
        LatentEncoder(bands=2, latent_dim=4, nef=8),
        LatentDiscriminator(latent_dim=4, ndf=8),
        AECNN(bands=2, in_size=136, out_size=64, output_activation="sigmoid"),
        PhysicsResidualGenerator.from_surveys("cfht", "sdss", 5, 136, 64),
    ]
    assert {type(m).__name__ for m in examples} == set(NETWORKS)
    for m in examples:
        kwargs = json.loads(json.dumps(m.init_kwargs))
        rebuilt = NETWORKS[type(m).__name__](**kwargs)
        assert rebuilt.init_kwargs == m.init_kwargs
        shapes = {k: v.shape for k, v in m.state_dict().items()}
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
