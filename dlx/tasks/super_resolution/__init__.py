"""4x super-resolution of MNIST (docs/curriculum.md#f20): SRResNet, then SRGAN from it.

common    the degradation, the bicubic baseline, the data, the loss, the report
srresnet  the SRResNet's config, model and report
srgan     SRGAN's config, model, perceptual content loss, two-player step, report
"""
