"""Layers and blocks the models are built from (Flax Linen; Flax's own layers wherever
Flax has them). One module per topic:

  activations    relu, leaky_relu, sigmoid, hard_sigmoid, tanh, softmax, get(name)
  conv           Conv (1D/2D/3D, stride, padding, dilation, groups), conv_output_size,
                 PointwiseConv, DepthwiseConv2D, DepthwiseSeparableConv, ConvTranspose
  pooling        max/avg/overlapping/global pooling
  normalization  local_response_norm, LocalResponseNorm (AlexNet)
  blocks         ResidualBlock, BottleneckBlock, InceptionBlock, DenseBlock,
                 TransitionBlock, ConvBNReLU
  embeddings     sinusoidal_embedding
  attention      scaled_dot_product_attention, masks, MultiHeadAttention (KV cache)
  transformer    TokenEmbedding, positional encodings, FeedForward, Encoder/Decoder
                 layers and stacks (pre- or post-norm)
  recurrent      SimpleRNNCell, LSTMCell, GRUCell, Recurrent (stacked, bidirectional),
                 BahdanauAttention, LuongAttention
  graph          message passing on padded graph batches: GCNLayer, GINLayer, readout, GNN
"""
