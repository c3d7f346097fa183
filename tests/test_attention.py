"""nn/attention.py: exact and Nyström self-attention on 1D, 2D and 3D maps."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from napari_biogan.nn import attention
from napari_biogan.nn import landmark_products as products
from napari_biogan.nn.attention import (SelfAttention, full_attention, landmark_grid, newton_schulz_pinv,
                                        nystrom_attention)


def _qkv(x, module):
    flat = x.reshape(len(x), x.shape[1], -1)
    return tuple(layer(flat.transpose(1, 2)) for layer in (module.query, module.key, module.value))


def test_nystrom_equals_full_when_every_token_is_a_landmark():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 64, 4), torch.randn(2, 64, 4), torch.randn(2, 64, 8)
    exact = full_attention(q, k, v)
    # 4x4x4 map, 64 landmarks: the segment means are the tokens, so only the Newton-Schulz
    # truncation separates the two. Six iterations (the method's count) leave a few 1e-2
    # on unit-variance values; more iterations converge to the exact result.
    six = nystrom_attention(q, k, v, landmarks=64, spatial_shape=(4, 4, 4))
    many = nystrom_attention(q, k, v, landmarks=64, spatial_shape=(4, 4, 4), iterations=25)
    assert (six - exact).abs().max() < 0.08
    assert (many - exact).abs().max() < min(5e-3, 0.2 * (six - exact).abs().max())


def test_newton_schulz_inverts_a_softmax_matrix_per_sample():
    torch.manual_seed(1)
    k = (torch.randn(3, 16, 16) * torch.tensor([0.5, 1.0, 2.0])[:, None, None]).softmax(-1)
    z = newton_schulz_pinv(k, iterations=30)
    eye = torch.eye(16).expand(3, 16, 16)
    assert torch.allclose(k @ z, eye, atol=1e-3)


def test_nystrom_approximates_full_attention_on_smooth_maps():
    # Smooth maps (a coarse random field, trilinearly upsampled) are what the generator's
    # mid-level features look like: neighbouring tokens nearly agree, so segment means are
    # good landmarks. Relative error measured 2% at m=64 on 2048 tokens; we allow 6%, and
    # require it to be far below the error of the trivial answer (the mean value everywhere).
    torch.manual_seed(2)
    x = F.interpolate(torch.randn(2, 32, 2, 4, 4), size=(8, 16, 16), mode="trilinear", align_corners=False)
    module = SelfAttention(32, "full")
    torch.nn.init.normal_(module.query.weight, std=0.3)
    q, k, v = _qkv(x, module)
    exact = full_attention(q, k, v)
    approx = nystrom_attention(q, k, v, landmarks=64, spatial_shape=(8, 16, 16))
    error = (approx - exact).norm() / exact.norm()
    trivial = (v.mean(1, keepdim=True).expand_as(exact) - exact).norm() / exact.norm()
    assert error < 0.06
    assert error < 0.25 * trivial


def test_module_fast_path_equals_the_plain_nystrom_formula():
    # The module folds the value projection into the landmarks and works channels-first;
    # it must give the same numbers as projecting q, k, v and calling nystrom_attention.
    torch.manual_seed(9)
    for value_channels in (None, 8):
        module = SelfAttention(32, "nystrom", landmarks=16, value_channels=value_channels)
        with torch.no_grad():
            module.gamma.fill_(0.7)
        x = torch.randn(2, 32, 4, 8, 6)
        q, k, v = _qkv(x, module)
        out = nystrom_attention(q, k, v, landmarks=16, spatial_shape=(4, 8, 6))
        if module.project is not None:
            out = module.project(out)
        expected = x + 0.7 * out.transpose(1, 2).reshape_as(x)
        assert torch.allclose(module(x), expected, atol=1e-5), value_channels


def _plain(module, x):
    """The block by the plain formula: project q, k, v on every token, materialise k1 and k3."""
    q, k, v = _qkv(x, module)
    out = nystrom_attention(q, k, v, landmarks=module.landmarks, spatial_shape=tuple(x.shape[2:]))
    if module.project is not None:
        out = module.project(out)
    return x + module.gamma * out.transpose(1, 2).reshape_as(x)


@pytest.mark.parametrize("shape", [(8, 16, 32), (5, 30, 31)])
def test_chunked_path_equals_the_plain_formula_forward_and_backward(shape):
    # The module runs the two N-sized products over chunks of tokens (online softmax over
    # the chunks, probabilities recomputed chunk by chunk in the backward pass); these maps
    # have 4 chunks (the last one shorter on the second). In float64 it must match the plain formula, output
    # and every gradient; logits are large, so the running maximum matters.
    torch.manual_seed(10)
    module = SelfAttention(16, "nystrom", landmarks=64, value_channels=8).double()
    with torch.no_grad():
        module.gamma.fill_(0.8)
    x = (torch.randn(2, 16, *shape, dtype=torch.float64) * 3).requires_grad_()
    weights = torch.randn_like(x)
    results = []
    for forward in (module, lambda x: _plain(module, x)):
        out = forward(x)
        grads = torch.autograd.grad((out * weights).sum(), [x, *module.parameters()])
        results.append((out, grads))
    (out, grads), (expected, expected_grads) = results
    assert torch.allclose(out, expected, atol=1e-9)
    names = ["x"] + [name for name, _ in module.named_parameters()]
    for name, grad, reference in zip(names, grads, expected_grads):
        if name == "key.bias":  # softmax is shift-invariant: exactly zero in theory, rounding noise in both
            assert grad.abs().max() < 1e-9 and reference.abs().max() < 1e-9
            continue
        assert torch.allclose(grad, reference, rtol=1e-7, atol=1e-9 * reference.abs().max()), name
    with torch.no_grad():  # generation: the same chunked code, in the module's precision
        generated = module.float()(x.float())
    assert torch.allclose(generated, expected.float(), atol=1e-4)


def test_chunked_functions_pass_gradcheck(monkeypatch):
    # Chunks of 6 tokens over 15 (uneven last chunk), float64, both custom Functions.
    monkeypatch.setattr(products, "CHUNK", 6)
    torch.manual_seed(11)
    q_l = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    k = (torch.randn(2, 2, 15, dtype=torch.float64) * 2).requires_grad_()
    x = torch.randn(2, 3, 15, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(products._LandmarkAverage.apply, (q_l, k, x))
    mixed_t = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    residual = torch.randn(2, 3, 15, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(products._Spread.apply, (mixed_t, k, q_l, residual))
    assert torch.autograd.gradcheck(lambda m, q, k_l: products._Spread.apply(m, q, k_l, None), (mixed_t, k, q_l))


def test_bf16_autocast_training_stays_close_to_fp32():
    # Under bf16 autocast the chunks run in bf16 (statistics and accumulations in fp32):
    # output and gradients within bf16's rounding of the fp32 ones.
    torch.manual_seed(12)
    module = SelfAttention(16, "nystrom", landmarks=64)
    with torch.no_grad():
        module.gamma.fill_(0.8)
    x = (F.interpolate(torch.randn(2, 16, 2, 4, 4), size=(8, 16, 32), mode="trilinear") * 3).requires_grad_()
    grads = []
    for autocast in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = module(x)
        grads.append((out - x, *torch.autograd.grad(out.square().sum(), [x, module.query.weight])))
    for reference, low in zip(*grads):
        assert torch.isfinite(low).all() and ((low.float() - reference).norm() / reference.norm()) < 0.05


def test_gamma_zero_makes_a_fresh_block_the_identity():
    torch.manual_seed(3)
    for mode in ("full", "nystrom"):
        module = SelfAttention(16, mode, landmarks=8)
        x = torch.randn(2, 16, 4, 6, 6)
        assert module.gamma.item() == 0.0
        assert torch.equal(module(x), x)
        with torch.no_grad():
            module.gamma.fill_(1.0)
        assert not torch.allclose(module(x), x)


@pytest.mark.parametrize("shape", [(5, 7, 9), (3, 10, 6), (1, 12, 12), (11, 13), (40,)])
def test_any_map_shape_and_dimension(shape):
    torch.manual_seed(4)
    module = SelfAttention(16, "nystrom", landmarks=16)
    with torch.no_grad():
        module.gamma.fill_(0.5)
    x = torch.randn(2, 16, *shape, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and module.query.weight.grad is not None


def test_landmark_grid_keeps_cells_cube_like_and_at_most_m():
    assert landmark_grid((16, 32, 32), 64) == (4, 4, 4)
    assert landmark_grid((8, 16, 16), 64) == (4, 4, 4)
    assert landmark_grid((2, 64, 64), 64) == (1, 8, 8)
    assert landmark_grid((2, 2), 64) == (2, 2)  # fewer tokens than landmarks: every token
    for shape in [(5, 7, 9), (10, 64, 64), (3, 3, 100)]:
        grid = landmark_grid(shape, 64)
        assert 1 <= torch.tensor(grid).prod() <= 64 and all(g <= s for g, s in zip(grid, shape))


def test_nystrom_is_deterministic():
    torch.manual_seed(5)
    module = SelfAttention(16, "nystrom", landmarks=16)
    with torch.no_grad():
        module.gamma.fill_(1.0)
    x = torch.randn(2, 16, 6, 8, 8)
    assert torch.equal(module(x), module(x))


def test_bf16_autocast_on_cpu_stays_close_to_fp32():
    torch.manual_seed(6)
    x = F.interpolate(torch.randn(2, 32, 2, 4, 4), size=(8, 16, 16), mode="trilinear", align_corners=False)
    for mode in ("full", "nystrom"):
        module = SelfAttention(32, mode, landmarks=64)
        with torch.no_grad():
            module.gamma.fill_(1.0)
            reference = module.attend(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = module.attend(x)
        assert low.dtype == torch.bfloat16
        # bf16 has 8 significant bits: a few 1e-2 relative error is its rounding, not a bug.
        assert ((low.float() - reference).norm() / reference.norm()) < 0.05, mode


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operation produces (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_nystrom_never_forms_an_n_by_n_matrix():
    torch.manual_seed(7)
    n, channels = 4096, 16  # 16 x 16 x 16 tokens
    q, k = torch.randn(1, n, 2, requires_grad=True), torch.randn(1, n, 2, requires_grad=True)
    v = torch.randn(1, n, channels, requires_grad=True)
    with _LargestTensor() as probe:
        nystrom_attention(q, k, v, landmarks=64, spatial_shape=(16, 16, 16)).sum().backward()
    assert probe.largest <= n * 64  # N x m at most
    with _LargestTensor() as probe:
        full_attention(q, k, v).sum().backward()
    assert probe.largest >= n * n  # the probe does see a quadratic matrix when there is one


def test_module_makes_no_n_by_m_matrix_in_training_or_generation():
    # The reference function above materialises N x m; the module's chunked Functions must
    # not, forward or backward: nothing larger than the map itself (B, C, N) may appear.
    torch.manual_seed(13)
    module = SelfAttention(16, "nystrom", landmarks=64)
    with torch.no_grad():
        module.gamma.fill_(1.0)
    x = torch.randn(2, 16, 16, 32, 32, requires_grad=True)  # N = 16,384 tokens, 8 chunks of 2,048
    n_by_m = 2 * x[0, 0].numel() * 64
    with _LargestTensor() as probe:
        module(x).square().sum().backward()
    assert x.numel() <= probe.largest < n_by_m / 2
    assert module.query.weight.grad is not None and torch.isfinite(x.grad).all()
    with _LargestTensor() as probe, torch.no_grad():
        module(x)
    assert probe.largest <= x.numel()


def test_chunks_on_worker_threads_give_the_same_numbers_as_one_thread():
    # On CPU the chunks are spread over torch's threads, each running its chunks
    # single-threaded, and partial results are combined in chunk order: output and
    # gradients are bit-identical whatever the thread count (resumed runs stay exact).
    torch.manual_seed(14)
    module = SelfAttention(16, "nystrom", landmarks=64)
    with torch.no_grad():
        module.gamma.fill_(0.9)
    x = torch.randn(2, 16, 8, 32, 32) * 3  # 8,192 tokens: 4 chunks of 2,048
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            leaf = x.clone().requires_grad_()
            out = module(leaf)
            grads = torch.autograd.grad(out.square().sum(), [leaf, module.query.weight, module.value.weight])
            with torch.inference_mode():
                generated = module(x)
            results.append((out, generated, *grads))
    finally:
        torch.set_num_threads(threads)
    for one, several in zip(*results):
        assert torch.equal(one, several)


def test_worker_threads_run_their_operations_single_threaded():
    # torch sets a thread's count lazily, from the process default, on its first use: the
    # pool must fix its threads at 1 for good while the caller keeps its own count.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        pool = attention._single_threaded_pool(2)
        assert {pool.submit(torch.get_num_threads).result() for _ in range(6)} == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_nystrom_block_traces_to_torchscript_with_every_chunk():
    # The BioImage Model Zoo export traces networks without autograd. The tracer records only
    # the calling thread's operations, so under tracing the chunks run in that thread and the
    # custom Functions are left out: the trace (checked against a second trace by torch) must
    # reproduce the module on a map of several chunks.
    torch.manual_seed(15)
    module = SelfAttention(16, "nystrom", landmarks=64).requires_grad_(False)
    with torch.no_grad():
        module.gamma.fill_(0.7)
    x = torch.randn(1, 16, 8, 16, 16)  # 2,048 tokens: 4 chunks
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # outside tracing this map would go to worker threads
        with torch.no_grad():
            traced = torch.jit.trace(module, x)
            expected = module(x)
        other = torch.randn(1, 16, 8, 16, 16)
        assert torch.allclose(traced(x), expected, atol=1e-6)
        with torch.no_grad():
            assert torch.allclose(traced(other), module(other), atol=1e-6)
    finally:
        torch.set_num_threads(threads)


def test_nystrom_blocks_refuse_double_backward():
    # Documented: the chunked Functions are differentiable once (generators only); the
    # critics' gradient penalty goes through "full" attention (tested below).
    module = SelfAttention(16, "nystrom", landmarks=8)
    with torch.no_grad():
        module.gamma.fill_(1.0)
    x = torch.randn(1, 16, 4, 6, 6, requires_grad=True)
    grad, = torch.autograd.grad(module(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        grad.square().sum().backward()


def test_small_maps_use_exact_attention_and_double_backward_works():
    torch.manual_seed(8)
    module = SelfAttention(16, "nystrom", landmarks=64, spectral_norm=True).eval()  # eval: fixed SN weights
    with torch.no_grad():
        module.gamma.fill_(1.0)
    x = torch.randn(2, 16, 3, 4, 4, requires_grad=True)  # 48 tokens <= 64 landmarks
    q, k, v = _qkv(x, module)
    exact = x + module.gamma * full_attention(q, k, v).transpose(1, 2).reshape_as(x)
    assert torch.allclose(module(x), exact, atol=1e-6)
    module.train()
    grad, = torch.autograd.grad(module(x).square().sum(), x, create_graph=True)  # WGAN-GP needs this
    grad.square().sum().backward()
    assert module.query.parametrizations.weight.original.grad is not None


def test_value_channels_adds_a_projection_back():
    module = SelfAttention(32, "full", value_channels=16)
    assert module.project is not None
    assert module(torch.randn(1, 32, 5, 5)).shape == (1, 32, 5, 5)
    with pytest.raises(ValueError):
        SelfAttention(32, "linear")


def test_logit_bound_is_an_upper_bound_reached_at_the_box_corners():
    torch.manual_seed(13)
    a, b = torch.randn(3, 4, 500) * 2, torch.randn(3, 4, 64) * 2
    assert (products._logit_bound(a, b) >= (a.transpose(1, 2) @ b).amax(dim=-1) - 1e-5).all()
    # when b holds every corner of its bounding box, the bound is the maximum itself
    signs = torch.cartesian_prod(*[torch.tensor([-1.0, 1.0])] * 4).T  # (4, 16): the corners of [-1, 1]^4
    corners = (signs * torch.tensor([1.0, 2.0, 0.5, 3.0])[:, None] + torch.tensor([0.3, -1.0, 2.0, 0.0])[:, None])
    corners = corners[None].expand(3, -1, -1)
    exact = (a.transpose(1, 2) @ corners).amax(dim=-1)
    assert torch.allclose(products._logit_bound(a, corners), exact, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_shifted_forward_passes_equal_the_exact_softmax_ones(dtype):
    # The forward passes shift the logits by bounds of their maxima instead of the maxima;
    # softmax does not depend on the shift, so they must agree with the exact passes.
    torch.manual_seed(14)
    q, k, x = (torch.randn(2, 4, 3000, dtype=dtype) * 3, torch.randn(2, 4, 3000, dtype=dtype) * 3,
               torch.randn(2, 8, 3000, dtype=dtype))
    q_l, k_l = attention.pool_landmarks(q.transpose(1, 2), None, 16).transpose(1, 2) * 4, \
        attention.pool_landmarks(k.transpose(1, 2), None, 16).transpose(1, 2) * 4
    mixed_t = torch.randn(2, 8, 16, dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    average, shift, denominator = products._average_forward(q_l, k, x)
    exact, row_max, exact_denominator = products._average_forward_exact(q_l, k, x)
    assert (shift >= row_max - 1e-4).all()  # a bound of each landmark's maximum logit
    assert torch.allclose(average, exact, atol=tol)
    assert torch.allclose(denominator * torch.exp(shift - row_max), exact_denominator, rtol=tol)
    for residual in (x, None):
        assert torch.allclose(products._spread_forward(mixed_t, q, k_l, residual),
                              products._spread_forward_exact(mixed_t, q, k_l, residual), atol=tol)


def test_loose_bounds_fall_back_to_the_exact_passes(monkeypatch):
    # Queries (s, s) against keys (s, 0) and (0, s): the box bound (2 s^2) overshoots the true
    # maximum s^2 by 400 nats at s = 20, so exp() of every shifted logit underflows. Each pass must notice and redo the work exactly: finite and right.
    s = 20.0
    corners = torch.tensor([[s, 0.0], [0.0, s]]).T[None]  # (1, d=2, 2): (s, 0) and (0, s)
    diagonal = torch.full((1, 2, 1), s)
    calls = []
    for name in ("_average_forward_exact", "_spread_forward_exact"):
        exact = getattr(products, name)
        monkeypatch.setattr(products, name, lambda *a, _exact=exact, _name=name: calls.append(_name) or _exact(*a))
    keys, values = corners.repeat(1, 1, 20), torch.randn(1, 3, 40)  # 40 keys, every logit s^2
    average = products._average_forward(diagonal, keys, values)[0]  # one landmark query at (s, s)
    mixed_t, residual = torch.randn(1, 3, 2), torch.randn(1, 3, 40)
    spread = products._spread_forward(mixed_t, diagonal.expand(1, 2, 40), corners, residual)
    assert calls == ["_average_forward_exact", "_spread_forward_exact"]
    assert torch.allclose(average, values.mean(dim=-1)[:, None], atol=1e-5)
    assert torch.allclose(spread, residual + mixed_t.mean(dim=-1, keepdim=True), atol=1e-5)
