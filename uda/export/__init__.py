"""Export of trained networks (ONNX / TorchScript / safetensors)."""
