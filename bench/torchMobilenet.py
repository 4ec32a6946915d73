"""Reference export for the benchmark (issue 12): MobileNetV2 1.0 (224) defined
by hand (no torchvision), random weights with BatchNorm statistics calibrated
on random input, exported with torch.onnx.export (opset 13) from NCHW pixels
to the 1280-d pooled features. Usage: python3 torchMobilenet.py OUT.onnx
Needs Debian's python3-torch; the bench skips its line where it is absent."""
import sys
import torch
from torch import nn


def conv_bn(cin, cout, k, stride, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class Inverted(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = conv_bn(cin, hidden, 1, 1) if expand != 1 else []
        layers += conv_bn(hidden, hidden, 3, stride, groups=hidden) + conv_bn(hidden, cout, 1, 1, relu=False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    # (expansion, channels, repeats, first stride): the paper's table 2, width 1.0.
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self):
        super().__init__()
        layers = conv_bn(3, 32, 3, 2)
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(Inverted(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += conv_bn(cin, 1280, 1, 1)
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x).mean(dim=(2, 3))


def main(out):
    torch.manual_seed(0)
    model = MobileNetV2()
    # Random weights give exploding activations; BatchNorm statistics from random input bring them to O(1).
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(8, 3, 224, 224))
    model.eval()
    torch.onnx.export(model, torch.rand(1, 3, 224, 224), out, opset_version=13, input_names=['image'], output_names=['features'],
                      dynamic_axes={'image': {0: 'n'}, 'features': {0: 'n'}})


if __name__ == '__main__':
    main(sys.argv[1])
