"""How much a trained generator uses its self-attention, and what it does without it.

    python benchmarks/bench_attention_use.py MODEL [MODEL ...] [-n 32] [--without DIR]

MODEL is a zoo name or a .safetensors file of a video model (SAVGAN). For each of G_V's attention
blocks: its map, its weight gamma, the share of the bare attention output that is one constant per
channel (what softmax weights spread evenly over all tokens give, and what the next normalisation
removes), and the attention's contribution: gamma times the std of its varying part over the std of
the block's input (0: the block is the identity). ``--without DIR`` also writes each model with its
generator's gammas set to 0 as ``DIR/<name>.safetensors``, for ``bench_video_models.py --models DIR``
and ``bench_video_fade.py``: the trained SAVGAN with its attention taken out. ``--untrained`` also
measures fresh generators of each model's config with their gammas at 1 (at 0 they show nothing), with
Nyström and with full attention: how much an attention block does before training has shaped it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_video_generator import attention_blocks  # the generator's SelfAttention blocks


def attention_use(model, n: int, seed: int = 0) -> list[tuple[tuple[int, ...], float, float, float]]:
    """Per attention block of G_V: (map shape, gamma, constant share of the attention output, contribution)."""
    import torch

    blocks = attention_blocks(model)
    inputs = {}
    hooks = [block.register_forward_hook(lambda module, args, out: inputs.__setitem__(module, args[0].detach()))
             for block in blocks]
    rows = []
    try:
        with torch.no_grad():
            model.nets["generator"](model.latents(n, seed=seed))
            for block in blocks:
                x = inputs[block]
                flat_x = x.reshape(*x.shape[:2], -1)
                out = block.attend(x).reshape_as(flat_x)
                constant = out.mean(-1, keepdim=True)
                varying = (out - constant).square().mean().sqrt()
                spread = (flat_x - flat_x.mean(-1, keepdim=True)).square().mean().sqrt()
                share = float(constant.square().mean() / out.square().mean())
                rows.append((tuple(x.shape[2:]), block.gamma.item(), share, float(block.gamma.abs() * varying / spread)))
    finally:
        for hook in hooks:
            hook.remove()
    return rows


def untrained(model, attention: str):
    """A fresh model of ``model``'s config (training seed 0) with ``attention`` and G_V's gammas at 1."""
    from dataclasses import replace

    from napari_biogan.core.model import GanModel

    return GanModel.new(model.family.name, config=replace(model.config, attention=attention, attention_gamma=1.0),
                        seed=0)


def without_attention(model, path: Path) -> None:
    """Save ``model`` with G_V's attention weights gamma set to 0 (each block then passes its input on)."""
    import torch

    with torch.no_grad():
        for block in attention_blocks(model):
            block.gamma.zero_()
    model.save(path, overwrite=True, include=("generator",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("-n", type=int, default=32, help="clips whose feature maps are measured")
    parser.add_argument("--untrained", action="store_true",
                        help="also fresh generators of each config, gammas at 1, Nyström and full attention")
    parser.add_argument("--without", default=None, metavar="DIR",
                        help="also write each model with G_V's attention gammas at 0 into DIR")
    args = parser.parse_args()

    import torch

    from napari_biogan.core.model import GanModel
    from napari_biogan.core.zoo import resolve_model

    torch.set_num_threads(1)
    print(f"{args.n} clips, sample seed 0\n")
    print("| model | block | map (T, Y, X) | gamma | constant share of the attention output | contribution |")
    print("|---|---|---|---|---|---|")
    for spec in args.models:
        path = Path(spec) if Path(spec).is_file() else resolve_model(spec)
        model = GanModel.load(path, device="cpu")
        if not attention_blocks(model):
            raise SystemExit(f"{spec} has no attention in its generator (a 3DGAN, or not a SAVGAN).")
        variants = [(spec, model)]
        if args.untrained:  # full attention over 8k tokens: few clips, or the N x N matrix fills the memory
            variants += [(f"{spec}, untrained, {mode}", untrained(model, mode)) for mode in ("nystrom", "full")]
        for name, variant in variants:
            n = min(args.n, 2) if variant.config.attention == "full" else args.n
            for block, (shape, gamma, share, contribution) in enumerate(attention_use(variant, n)):
                print(f"| {name} | {block} | {shape} | {gamma:+.4f} | {share:.3f} | {contribution * 100:.3f} % |")
        if args.without:
            out = Path(args.without) / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            without_attention(model, out)
            print(f"(wrote {out})")


if __name__ == "__main__":
    main()
