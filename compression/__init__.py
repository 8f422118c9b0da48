"""Model compression: pruning, quantization-aware training, row-wise int8 tables, distillation,
TFLite export, and the measurement and selection of the resulting variants.

The TFX component that runs the stage is `components.compress_model.CompressModel`.
"""
