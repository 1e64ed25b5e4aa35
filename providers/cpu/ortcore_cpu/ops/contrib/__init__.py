"""onnxruntime's contrib ops (domain ``com.microsoft``, plus the two contrib normalizations
onnxruntime registers in the ONNX domain), with onnxruntime's CPU semantics.

* ``fused``: FusedGemm, FusedMatMul, Gelu, BiasGelu, FastGelu, QuickGelu, Trilu
  (FusedConv lives with Conv in ``nn.conv``);
* ``normalization``: SkipLayerNormalization, SkipSimplifiedLayerNormalization and the
  ONNX-domain LayerNormalization-1 and SimplifiedLayerNormalization;
* ``attention``: Attention, MultiHeadAttention, RotaryEmbedding, GroupQueryAttention;
* ``quantized``: QLinearAdd/Mul/Sigmoid/LeakyRelu/GlobalAveragePool/Concat, QGemm,
  DynamicQuantizeMatMul, MatMulIntegerToFloat, MatMulNBits, DynamicQuantizeLSTM.

These ops have no schema in the onnx package, so every kernel is registered ``since=1``
with an open end.
"""
