"""Suite-wide settings: tests run small networks, for which one torch thread is fastest and
keeps timings stable on the 2-core CI machine."""

import torch

torch.set_num_threads(1)
