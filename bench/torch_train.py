"""PyTorch CPU training throughput for the same nets as bench/train.ts (samples/s on the last line).
Run by bench:train only when `import torch` works; prints nothing useful otherwise.
Arguments: net batch [seconds [threads]]."""
import sys
import time

import torch
import torch.nn as nn

net, batch = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 4:
    torch.set_num_threads(int(sys.argv[4]))


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def vgg_small():
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(
        *block(1, 16), *block(16, 16), nn.MaxPool2d(2), *block(16, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 3 * 3, 128), nn.ReLU(), nn.Linear(128, 10))


class BasicBlock(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
            nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o))
        self.proj = nn.Identity() if stride == 1 and i == o else nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        return torch.relu(self.body(x) + self.proj(x))


def resnet8():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def mobilenet_small():
    layers = [nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    i = 16
    for o, s in [(32, 1), (64, 2), (64, 1)]:
        layers += [nn.Conv2d(i, i, 3, s, 1, groups=i, bias=False), nn.BatchNorm2d(i), nn.ReLU(),
                   nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
        i = o
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


models = {'lenet5': lenet5, 'vgg-small': vgg_small, 'resnet8': resnet8, 'mobilenet-small': mobilenet_small}
if net not in models:
    sys.exit(0)
model = models[net]()
opt = torch.optim.Adam(model.parameters(), 1e-3)
x = torch.rand(batch, 1, 28, 28)
y = torch.randint(0, 10, (batch,))
loss_fn = nn.CrossEntropyLoss()


def step():
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()


for _ in range(3):
    step()
steps, t0 = 0, time.perf_counter()
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 8
while time.perf_counter() - t0 < seconds or steps < 5:
    step()
    steps += 1
print(steps * batch / (time.perf_counter() - t0))
