"""Quantisation-aware training's rounding is ONNX Runtime's: a linear layer made int8-aware gives what
the dynamically quantised graph of `--int8` gives, and its gradients still flow."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from training.fake_int8 import make_int8_aware


def _int8_graph(linear: torch.nn.Linear, tmp_path) -> onnxruntime.InferenceSession:
    """The layer as a MatMul + Add graph, quantised the way kwstream's ONNX backend quantises."""
    weight = numpy_helper.from_array(linear.weight.detach().numpy().T.copy(), "weight")
    bias = numpy_helper.from_array(linear.bias.detach().numpy(), "bias")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["product"]), helper.make_node("Add", ["product", "bias"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, linear.in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None, linear.out_features])], [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    plain, quantised = tmp_path / "linear.onnx", tmp_path / "linear-int8.onnx"
    onnx.save(model, plain)
    quantize_dynamic(str(plain), str(quantised), weight_type=QuantType.QUInt8, op_types_to_quantize=["MatMul"])
    return onnxruntime.InferenceSession(str(quantised), providers=["CPUExecutionProvider"])


def test_int8_aware_linear_matches_onnx_runtime_int8(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("q_proj", torch.nn.Linear(64, 32))
    x = torch.randn(1, 25, 64) * 3 + 0.5
    with torch.no_grad():
        plain = model(x).numpy()
    assert make_int8_aware(model) == 1
    with torch.no_grad():
        aware = model(x).numpy()
    runtime = _int8_graph(model.q_proj, tmp_path).run(None, {"x": x.numpy()})[0]
    rounding = np.abs(plain - runtime).max()
    assert rounding > 0.01  # int8 does move the output...
    assert np.abs(aware - runtime).max() < rounding / 20  # ...and the aware layer moves it the same way


def test_int8_aware_layer_keeps_its_parameters_and_gradients():
    model = torch.nn.Sequential()
    model.add_module("lm_head", torch.nn.Linear(8, 4))
    model.add_module("other", torch.nn.Linear(4, 4))
    names = list(model.state_dict())
    assert make_int8_aware(model) == 1  # only the layers the int8 graph quantises
    assert list(model.state_dict()) == names
    model(torch.randn(2, 5, 8)).sum().backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("values", [[0.0, 0.0], [1.0, 2.0], [-3.0, -1.0]])
def test_activation_rounding_handles_one_signed_or_zero_range(values):
    from training.fake_int8 import fake_uint8_activation

    x = torch.tensor(values).reshape(1, 1, 2)
    assert torch.allclose(fake_uint8_activation(x), x, atol=0.02)
