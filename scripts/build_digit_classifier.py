"""Rebuild the shipped digit classifier `zoo/digit-classifier.safetensors` (used by flips/seq and cosTS).

    nice -n 10 python scripts/build_digit_classifier.py [--epochs 3] [--threads 2]

Trains `metrics.digit_classifier.build_digit_net` on the 60,000 MNIST training
digits (../shared/data/mnist), each pasted at a fresh random position of a
black 64x64 canvas every epoch (the Moving-MNIST frame size), on the CPU.
Reports the accuracy on the 10,000 MNIST test digits pasted the same way
(seeded) and centred, and writes both into the model card. Weights are stored
as float16 to keep the file small (the loader turns them back to float32).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from napari_biogan.core.checkpoint import save_tensors
from napari_biogan.data.mnist import load_mnist_test, load_mnist_train
from napari_biogan.metrics.digit_classifier import (CANVAS, DIGIT_CLASSIFIER_FILE, FEATURE_DIM, DigitClassifier,
                                                     build_digit_net, place_digits)


def accuracy(classifier: DigitClassifier, frames: np.ndarray, labels: np.ndarray) -> float:
    return float((classifier.predict(frames) == labels).mean())


def centred(digits: np.ndarray) -> np.ndarray:
    pad = (CANVAS - digits.shape[1]) // 2
    out = np.zeros((len(digits), CANVAS, CANVAS), np.float32)
    out[:, pad:pad + digits.shape[1], pad:pad + digits.shape[2]] = digits
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N shuffled digits (smoke test)")
    parser.add_argument("--out", default=str(DIGIT_CLASSIFIER_FILE))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = load_mnist_train()
    x_test, y_test = load_mnist_test()
    order = rng.permutation(len(x_train))[:args.limit]  # the npz is ordered by class
    x_train, y_train = x_train[order].astype(np.float32) / 255, y_train[order]
    x_test = x_test.astype(np.float32) / 255

    net = build_digit_net()
    steps_per_epoch = len(x_train) // args.batch
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.15)
    start = time.time()
    step = 0
    for epoch in range(args.epochs):
        net.train()
        perm = rng.permutation(len(x_train))
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch:(b + 1) * args.batch]
            frames = torch.from_numpy(place_digits(x_train[idx], rng))[:, None]
            loss = F.cross_entropy(net(frames), torch.from_numpy(y_train[idx]), label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                print(f"epoch {epoch} step {step}/{total} loss {loss.item():.3f} {time.time() - start:.0f}s",
                      flush=True)

    classifier = DigitClassifier(net, {})
    test_rng = np.random.default_rng(12345)
    acc_random = accuracy(classifier, place_digits(x_test, test_rng), y_test)
    acc_centred = accuracy(classifier, centred(x_test), y_test)
    train_s = time.time() - start
    print(f"test accuracy: random positions {acc_random:.4f}, centred {acc_centred:.4f}; trained in {train_s:.0f}s")

    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    card = {
        "kind": "digit-classifier",
        "name": "digit-classifier",
        "description": "Small CNN digit classifier for 64x64 Moving-MNIST frames (flips/seq, cosTS, digit FVD).",
        "input": {"shape": [1, CANVAS, CANVAS], "range": [0.0, 1.0], "background": 0.0},
        "feature_dim": FEATURE_DIM,
        "architecture": "4 stride-2 convs (32, 64, 128, 192; BN, ReLU), global max-pool, 512-d ReLU, linear 10",
        "metrics": {"test_accuracy": round(acc_random, 4), "test_accuracy_centred": round(acc_centred, 4)},
        "training": {"data": "MNIST training set (60,000 digits) pasted at random positions of 64x64 canvases",
                     "test": "MNIST t10k (10,000 digits), random positions (seed 12345)",
                     "epochs": args.epochs, "batch_size": args.batch, "optimizer": "AdamW one-cycle",
                     "lr": args.lr, "seconds": round(train_s), "seed": args.seed},
        "weights_dtype": "float16",
    }
    save_tensors(args.out, tensors, card, overwrite=True)
    print("saved", args.out)


if __name__ == "__main__":
    main()
