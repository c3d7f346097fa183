"""Cell metrics of Osokin et al. (REFERENCE section 2): C2ST with a fresh WGAN-GP critic, and
reconstruction of held-out cells by latent optimisation beside the nearest training neighbour.

C2ST (lower is better, about 0 = indistinguishable): for each class, its real test
set is split in half ``splits`` times; per split a fresh DCGAN critic (no batch norm)
is trained ``critic_steps`` steps with WGAN-GP (Adam 1e-4, betas (0, 0.9), lambda 10)
on 64 real cells of the first half against 64 fresh samples of the other set (the
model's cells of that class, or other real cells); its score on the held-out half is
the Wasserstein estimate mean D(real) - mean D(other) - 10 GP, averaged over
``eval_passes`` passes in batches of 64, each with fresh samples. This critic is
trained to score real cells high, so the score is the reference code's
"D(fake) - D(real) - 10 GP" of a critic that scores fakes high. Reported: mean ± std
over the splits, per class and averaged over classes (the std of the per-split class
averages). ``QUICK_C2ST`` trains 200 critic steps (not 5,000) of a narrower critic at a
10x learning rate (at 1e-4 a fresh critic is still far from unit gradients after a few
hundred steps, so the penalty term would dominate every score): its figures are
labelled "quick" and are not the paper's numbers. On held-out rcell2 cells it gives
-0.4 ± 0.7 for YFP cells against other YFP cells and 11.7 ± 0.8 for YFP against TFP.

Reconstruction: per held-out cell (shape, protein of its class), 5 restarts of the
latent, L-BFGS on pixel MSE (:func:`core.latent.fit_latent`), the best restart kept;
L2 = root mean squared error in [0, 1] units of the (shape, protein) pair (the
reference code's "L2"), noise NLL = 0.5 |z|^2 + (nz / 2) log 2 pi (about
nz / 2 (1 + log 2 pi) for real draws: 142 at nz = 100), and the same L2 of the nearest
training cell of that class as a baseline. Reported as median ± MAD.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..core.errors import BioGanError, DataError

if TYPE_CHECKING:
    import torch

Progress = Callable[[int, int], None]


class Cancelled(BioGanError):
    """A long metric stopped because its cancel event was set."""


@dataclass(frozen=True)
class C2stSettings:
    splits: int = 10
    critic_steps: int = 5000
    batch_size: int = 64
    eval_passes: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    critic_width: int = 64  # the reference code's ndf
    label: str = "paper"

    @property
    def prefix(self) -> str:
        """Metric key prefix: "c2st" for the paper's setting, "c2st_quick" (etc.) otherwise."""
        return "c2st" if self.label == "paper" else f"c2st_{self.label}"

    def describe(self) -> str:
        return (f"C2ST ({self.label}: {self.splits} splits, fresh critic of width {self.critic_width} trained "
                f"{self.critic_steps} steps, batch {self.batch_size}, {self.eval_passes} held-out passes)")


PAPER_C2ST = C2stSettings()
QUICK_C2ST = C2stSettings(critic_steps=200, critic_width=16, lr=1e-3, label="quick")


# -- the two-sample score ---------------------------------------------------------------------------------

def c2st_scores(test: "torch.Tensor", other: Callable[[int, "torch.Generator"], "torch.Tensor"],
                settings: C2stSettings = PAPER_C2ST, seed: int = 0, progress: Progress | None = None,
                cancel: threading.Event | None = None, _done: int = 0, _total: int | None = None) -> np.ndarray:
    """Scores of ``settings.splits`` splits of ``test`` (M, C, Y, X) in [-1, 1] against ``other(n, rng)``.

    ``progress(done, total)`` counts critic steps; setting ``cancel`` raises :class:`Cancelled`.
    """
    import torch

    from ..families.cells_nets import CellCritic
    from ..nn.losses import gradient_penalty

    test = torch.as_tensor(test, dtype=torch.float32)
    if len(test) < 4:
        raise DataError(f"C2ST needs at least 4 real cells of a class; got {len(test)}.")
    total = _total or settings.splits * settings.critic_steps
    channels, height, width = test.shape[1:]
    batch = settings.batch_size
    scores = []
    for split in range(settings.splits):
        rng = torch.Generator().manual_seed(seed * 1_000_003 + split)
        order = torch.randperm(len(test), generator=rng)
        half = len(test) // 2
        train, held = test[order[:half]], test[order[half:]]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 7919 + split)
            critic = CellCritic(channels, height, width, settings.critic_width, batch_norm=False)
        optimizer = torch.optim.Adam(critic.parameters(), settings.lr, betas=tuple(settings.betas))
        for step in range(settings.critic_steps):
            if cancel is not None and cancel.is_set():
                raise Cancelled("The C2ST was cancelled.")
            real = train[torch.randint(len(train), (batch,), generator=rng)]
            fake = other(batch, rng).float()
            loss = critic(fake).mean() - critic(real).mean() + \
                settings.gp_weight * gradient_penalty(critic, real, fake, rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = _done + split * settings.critic_steps + step + 1
            if progress is not None and (step % 10 == 9 or step + 1 == settings.critic_steps):
                progress(done, total)
        values = []
        for _ in range(settings.eval_passes):
            for start in range(0, len(held), batch):
                real = held[start:start + batch]
                fake = other(len(real), rng).float()
                penalty = gradient_penalty(critic, real, fake, rng)
                with torch.no_grad():
                    values.append(float(critic(real).mean() - critic(fake).mean() - settings.gp_weight * penalty))
        scores.append(float(np.mean(values)))
    return np.asarray(scores)


def pool_sampler(pool: "torch.Tensor") -> Callable[[int, "torch.Generator"], "torch.Tensor"]:
    """Draws with replacement from a set of real cells (real-vs-real tests)."""
    import torch

    pool = torch.as_tensor(pool, dtype=torch.float32)
    return lambda n, rng: pool[torch.randint(len(pool), (n,), generator=rng)]


def model_sampler(model, protein: int) -> Callable[[int, "torch.Generator"], "torch.Tensor"]:
    """Fresh (shape, protein) cells of class ``protein`` (0-based) from ``model``, in [-1, 1]."""
    import torch

    family, nets, config = model.family, model.nets, model.config
    controls = model.check_controls({"protein": protein + 1})

    def draw(n: int, rng: "torch.Generator") -> "torch.Tensor":
        z = family.sample_latent(config, n, rng).to(model.device)
        nets.eval()
        with torch.no_grad():
            cells = family.decode(nets, config, {"latent": z}, controls)["cell"].float().cpu()
        return cells[:, [0, 1 + protein]]

    return draw


@dataclass
class C2stResult:
    """C2ST split scores per class (and, optionally, of real cells against real cells of the same class)."""

    settings: C2stSettings
    scores: dict[str, np.ndarray]
    real: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0

    @staticmethod
    def _average(scores: dict[str, np.ndarray]) -> np.ndarray:
        return np.mean(np.stack(list(scores.values())), axis=0)

    @property
    def mean(self) -> float:
        return float(self._average(self.scores).mean())

    @property
    def std(self) -> float:
        return float(self._average(self.scores).std())

    def as_metrics(self, with_real: bool = True) -> dict[str, float]:
        """Flat metric keys: ``<prefix>`` (averaged), ``<prefix>_std``, ``<prefix>_<class>`` (+ ``_std``);
        ``..._real`` the real-vs-real reference. ``<prefix>`` says "quick" for the quick setting."""
        p = self.settings.prefix
        out = {p: self.mean, f"{p}_std": self.std}
        if with_real and self.real:
            out[f"{p}_real"] = float(self._average(self.real).mean())
        for name, values in self.scores.items():
            out[f"{p}_{name}"] = float(values.mean())
            out[f"{p}_{name}_std"] = float(values.std())
            if with_real and name in self.real:
                out[f"{p}_{name}_real"] = float(self.real[name].mean())
        return out

    def lines(self) -> list[str]:
        """A readable table: one line per class, the average, and the real-vs-real reference."""
        rows = [self.settings.describe()]
        for name, values in self.scores.items():
            ref = f"   (real vs real {self.real[name].mean():.2f} ± {self.real[name].std():.2f})" \
                if name in self.real else ""
            rows.append(f"  {name:>12}: {values.mean():.2f} ± {values.std():.2f}{ref}")
        rows.append(f"  {'average':>12}: {self.mean:.2f} ± {self.std:.2f}")
        return rows


def model_c2st(model, pairs, classes, settings: C2stSettings = QUICK_C2ST, seed: int = 0,
               with_real: bool = True, progress: Progress | None = None,
               cancel: threading.Event | None = None) -> C2stResult:
    """C2ST of ``model`` per protein class against held-out real (shape, protein) ``pairs`` in [-1, 1].

    ``with_real``: also the same-class real-vs-real reference (each class's cells split into two
    disjoint halves, one as the test set, the other as the sample). ``progress(done, total)``
    counts critic steps over all of it; ``cancel`` (a threading.Event) stops with :class:`Cancelled`.
    """
    import torch

    pairs = torch.as_tensor(pairs, dtype=torch.float32)
    classes = np.asarray(classes)
    names = model.config.protein_names
    present = [c for c in range(len(names)) if (classes == c).sum() >= 4]
    if not present:
        raise DataError("C2ST needs at least 4 real cells of a protein class.")
    runs = len(present) * (2 if with_real else 1)
    total = runs * settings.splits * settings.critic_steps
    per_run = settings.splits * settings.critic_steps
    result = C2stResult(settings, {})
    started, run = time.perf_counter(), 0
    for c in present:
        test = pairs[torch.from_numpy(classes == c)]
        result.scores[names[c]] = c2st_scores(test, model_sampler(model, c), settings, seed + c, progress, cancel,
                                              run * per_run, total)
        run += 1
        if with_real:
            order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed + 101 * c))
            half = len(test) // 2
            result.real[names[c]] = c2st_scores(test[order[:half]], pool_sampler(test[order[half:]]), settings,
                                                seed + c, progress, cancel, run * per_run, total)
            run += 1
    result.seconds = time.perf_counter() - started
    return result


def real_c2st(test, other, settings: C2stSettings = QUICK_C2ST, seed: int = 0, progress: Progress | None = None,
              cancel: threading.Event | None = None) -> np.ndarray:
    """Real vs real: split scores of real cells ``test`` against real cells ``other`` (both (M, C, Y, X), [-1, 1])."""
    return c2st_scores(test, pool_sampler(other), settings, seed, progress, cancel)


def real_pairs(real, n: int | None = None, seed: int = 0) -> tuple["torch.Tensor", np.ndarray]:
    """(shape, protein) pairs in [-1, 1] and their classes from cell TrainingData; ``n``: a random subset."""
    import torch

    key = "pair" if "pair" in real else "image"
    count = len(real)
    index = np.arange(count)
    if n is not None and n < count:
        index = np.sort(np.random.default_rng(seed).choice(count, n, replace=False))
    taken = real.take(torch.from_numpy(index))
    classes = taken["class"].numpy() if "class" in taken else np.zeros(len(index), np.int64)
    return taken[key].float(), classes


# -- reconstruction ---------------------------------------------------------------------------------------

def noise_nll(latent) -> float:
    """-log N(z; 0, I) = 0.5 |z|^2 + (nz / 2) log 2 pi."""
    z = np.asarray(latent, dtype=np.float64).reshape(-1)
    return float(0.5 * (z ** 2).sum() + 0.5 * len(z) * math.log(2 * math.pi))


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


@dataclass
class Reconstructions:
    """Per cell: L2 (RMSE, [0, 1]) of the best reconstruction, its noise NLL, the nearest-neighbour L2."""

    l2: np.ndarray
    nll: np.ndarray
    classes: np.ndarray
    seconds: np.ndarray
    latents: np.ndarray
    images: np.ndarray  # (M, 2, Y, X) reconstructions of the (shape, protein) pairs, [0, 1]
    nn_l2: np.ndarray | None = None
    latent_dim: int = 0

    def summary(self) -> dict[str, float]:
        out = {"recon_l2": _median(self.l2), "recon_l2_mad": _mad(self.l2),
               "recon_nll": _median(self.nll), "recon_nll_mad": _mad(self.nll),
               "recon_nll_real": 0.5 * self.latent_dim * (1 + math.log(2 * math.pi)),
               "recon_seconds_per_cell": float(np.mean(self.seconds))}
        if self.nn_l2 is not None:
            out.update(nn_l2=_median(self.nn_l2), nn_l2_mad=_mad(self.nn_l2))
        return out


def _median(values) -> float:
    return float(np.median(values))


def _mad(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.median(np.abs(values - np.median(values))))


def reconstruct_cells(model, pairs, classes, restarts: int = 5, steps: int = 50, seed: int = 0,
                      search=None, progress: Progress | None = None,
                      cancel: threading.Event | None = None) -> Reconstructions:
    """Reconstruct each (shape, protein) cell of ``pairs`` (M, 2, Y, X) in [0, 1] with its class's protein.

    ``search``: (pairs, classes) of training cells in [0, 1] for the nearest-neighbour baseline
    (same class, L2 on both channels); None: leave-one-out among ``pairs`` themselves.
    """
    from ..core.latent import fit_latent

    pairs = np.asarray(pairs, dtype=np.float32)
    classes = np.asarray(classes).astype(np.int64)
    k = len(model.config.protein_names)
    if pairs.ndim != 4 or pairs.shape[1] != 2:
        raise DataError(f"Reconstruction takes (shape, protein) cells shaped (M, 2, Y, X); got {pairs.shape}.")
    l2, nll, took, latents, images = [], [], [], [], []
    for i, (pair, c) in enumerate(zip(pairs, classes)):
        if cancel is not None and cancel.is_set():
            raise Cancelled("The reconstruction was cancelled.")
        target = np.zeros((1 + k, *pair.shape[1:]), np.float32)
        target[0], target[1 + c] = pair[0], pair[1]
        started = time.perf_counter()
        fit = fit_latent(model, target, {"protein": int(c) + 1}, restarts=restarts, steps=steps, seed=seed + i)
        took.append(time.perf_counter() - started)
        image = fit.reconstruction[0][[0, 1 + c]]
        images.append(image)
        l2.append(rmse(image, pair))
        nll.append(noise_nll(fit.latent))
        latents.append(fit.latent.numpy().reshape(-1))
        if progress is not None:
            progress(i + 1, len(pairs))
    search_pairs, search_classes = (pairs, classes) if search is None else search
    nn_l2 = nearest_neighbour_l2(pairs, classes, np.asarray(search_pairs, np.float32), np.asarray(search_classes),
                                 leave_one_out=search is None)
    return Reconstructions(np.asarray(l2), np.asarray(nll), classes, np.asarray(took), np.stack(latents),
                           np.stack(images), nn_l2, model.family.latent_dim(model.config))


def find_cell(model, image, protein: int = 0, restarts: int = 5, steps: int = 50, seed: int = 0):
    """"Find this cell in the model": one crop as the user has it -> (:class:`~core.latent.LatentFit`,
    the Explore :class:`~core.contract.Point` at its latent).

    ``image``: (1 + k, Y, X) with every protein (``protein`` 0), or (2, Y, X) = (shape, the protein
    ``protein``, 1-based as the "protein" control counts). 8-bit crops are scaled /255 as in
    training, [0, 1] floats kept, other data scaled by this crop's own percentiles.
    """
    from ..core.contract import Point
    from ..core.latent import fit_latent
    from ..families.cells import _scaled

    data = np.asarray(image)
    k = len(model.config.protein_names)
    size = (model.config.height, model.config.width)
    if data.ndim != 3 or data.shape[0] not in (2, 1 + k):
        raise DataError(f"Finding a cell needs one crop shaped (2, Y, X) or ({1 + k}, Y, X); got {data.shape}.")
    crop = _scaled(data[None], size)[0]
    target = crop
    if crop.shape[0] == 2 and k > 1:
        if not 1 <= protein <= k:
            raise DataError(f"A (shape, protein) crop needs its protein: 1 to {k} "
                            f"({', '.join(model.config.protein_names)}).")
        target = np.zeros((1 + k, *size), np.float32)
        target[0], target[protein] = crop[0], crop[1]
    controls = model.check_controls({"protein": protein})
    fit = fit_latent(model, target, controls, restarts=restarts, steps=steps, seed=seed)
    point = Point({"latent": fit.latent}, controls, {"latent": "fitted (metrics.cells.find_cell)",
                                                     "fit_mse": round(fit.mse, 8)})
    return fit, point


def nearest_neighbour_l2(pairs, classes, search, search_classes, leave_one_out: bool = False) -> np.ndarray:
    """L2 (RMSE) of each cell to its nearest cell of the same class in ``search``."""
    out = []
    flat = search.reshape(len(search), -1).astype(np.float64)
    for i, (pair, c) in enumerate(zip(pairs, classes)):
        members = np.flatnonzero(search_classes == c)
        if leave_one_out:
            members = members[members != i]
        if not len(members):
            out.append(np.nan)
            continue
        d = np.sqrt(((flat[members] - pair.reshape(1, -1)) ** 2).mean(1))
        out.append(float(d.min()))
    return np.asarray(out)


def reconstruction_metrics(model, pairs, classes, n: int = 16, seed: int = 0, restarts: int = 5,
                           steps: int = 50) -> dict[str, float]:
    """The reconstruction summary of up to ``n`` real cells (``pairs`` in [-1, 1]); the nearest-neighbour
    baseline is leave-one-out among the real cells given (the training set is not at hand here)."""
    pairs01 = (np.asarray(pairs, np.float32) + 1) / 2
    rec = reconstruct_cells(model, pairs01[:n], np.asarray(classes)[:n], restarts, steps, seed)
    rec.nn_l2 = nearest_neighbour_l2(pairs01[:n], np.asarray(classes)[:n], pairs01, np.asarray(classes),
                                     leave_one_out=True)
    return rec.summary()


def describe(values: dict[str, Any]) -> str:
    """One line of metric values for logs."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
