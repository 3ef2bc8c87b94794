#!/usr/bin/python3
"""torch.onnx's export of the OFFICIAL model of a family (tests/fixtures/<family>/reference.py), with the weights
ExportBench --save-weights wrote (safetensors, read here without the safetensors package), opset 17, input
'input' [N,3,S,S] normalised, output 'logits'. Tries a dynamic batch first; where torch.onnx cannot trace one, writes
static exports at batch 1 and 8 (in a fresh process: after a failed export torch 1.13's exporter can fail on graphs it
exports otherwise, as it does for TransXNet). Prints one JSON line with the files and whether the batch is dynamic."""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backbone_bench import reference  # noqa: E402

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).copy())
    return out


# torch 1.13 on Debian: the ONNX lint pass fails with a pybind11 holder error on some graphs; it only checks the
# graph, so it is skipped (ONNX Runtime loading the file is the check that matters here)
torch._C._jit_pass_onnx_lint = lambda graph: None
torch._C._jit_pass_lint = lambda graph: None


def export(model, path, batch, size, dynamic):
    x = torch.randn(batch, 3, size, size)
    torch.onnx.export(model, x, path, opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}} if dynamic else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True, help="output prefix")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--static", action="store_true", help="static exports at batch 1 and 8 only")
    a = ap.parse_args()
    model = reference(a.family).build(a.variant)
    state = read_safetensors(a.weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    model.eval()
    result = {"variant": a.variant, "missing_keys": len(missing), "unexpected_keys": len(unexpected)}
    if a.static:
        export(model, a.out + "-b1.onnx", 1, a.size, False)
        export(model, a.out + "-b8.onnx", 8, a.size, False)
        result.update(dynamic_batch=False, files=[a.out + "-b1.onnx", a.out + "-b8.onnx"])
    else:
        try:
            export(model, a.out + ".onnx", 2, a.size, True)
            result.update(dynamic_batch=True, files=[a.out + ".onnx"])
        except Exception as e:  # noqa: BLE001 - torch.onnx's failures vary by op
            static = subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--static"],
                                    stdout=subprocess.PIPE, text=True, check=True)
            result.update(json.loads(static.stdout.strip().splitlines()[-1]))
            result["dynamic_error"] = str(e).splitlines()[0][:200]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
