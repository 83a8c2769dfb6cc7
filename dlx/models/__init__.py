"""Models, one file per family. Each is a Flax module called as
`model(inputs, train=False)` that returns logits (or the family's outputs).

  mlp, lenet, cnn1d                     MLP, LeNet-5, 1D CNN
  alexnet, vgg, googlenet, resnet,      the classic CNNs: ImageNet configurations with
  densenet, mobilenet                   published parameter counts, plus small-input
                                        options and `*_tiny` variants
  vit                                   Vision Transformer
  gpt, transformer, rnn_lm, seq2seq     sequence models (GPT with a KV cache)
  vae, gan, unet, ddpm, autoencoder     generative models (unet also segments)
  yolo, rpn, fcn                        detection and segmentation
  gnn                                   graph classifiers and the edge-blind baseline
  rnade                                 RNADE: NADE with a mixture of Gaussians per
                                        conditional (real-valued data)
  skipgram                              skip-gram word embeddings (word2vec)
  attention_maps                        the attention weights of any of the Transformers,
                                        read out of one forward pass
  preprocess                            ResizeInputs (224x224x3 inside the step)
"""
