"""Export a transformers checkpoint to an OpenVINO GenAI folder: `python ov_export.py SRC DST int8|int4`.

Run by docqa.generate.ov in a subprocess whose PYTHONPATH starts with the export toolchain
(optimum-intel, nncf and the transformers release optimum-intel supports, installed beside the project
by `make install`; see requirements-openvino-export.txt). It imports nothing from docqa, so the
toolchain's transformers never meets docqa's own.

DST gets the stateful OpenVINO model with compressed weights (int8: per-channel asymmetric; int4:
symmetric, group 128, every layer), the tokenizer and detokenizer as OpenVINO models, and the
tokenizer and generation config files. The caller writes DST as a temporary folder and renames it.
"""

from __future__ import annotations

import sys
import time

# No usage events to Google Analytics from openvino, nncf or optimum-intel: with openvino_telemetry
# unimportable they fall back to their no-op stubs (docqa.generate.ov does the same in docqa's process).
sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]


def export(src: str, dst: str, weights: str) -> None:
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer
    from optimum.intel import OVModelForCausalLM, OVWeightQuantizationConfig
    from transformers import AutoTokenizer

    if weights == "int8":
        quantization = OVWeightQuantizationConfig(bits=8, sym=False)
    elif weights == "int4":
        quantization = OVWeightQuantizationConfig(bits=4, sym=True, group_size=128, ratio=1.0)
    else:
        raise SystemExit(f"weights must be int8 or int4, not {weights!r}")
    model = OVModelForCausalLM.from_pretrained(src, export=True, quantization_config=quantization, compile=False)
    model.save_pretrained(dst)
    tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.save_pretrained(dst)
    encoder, decoder = convert_tokenizer(tokenizer, with_detokenizer=True)
    ov.save_model(encoder, f"{dst}/openvino_tokenizer.xml")
    ov.save_model(decoder, f"{dst}/openvino_detokenizer.xml")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__.splitlines()[0])
    started = time.perf_counter()
    export(*sys.argv[1:4])
    print(f"exported in {time.perf_counter() - started:.0f} s", file=sys.stderr)
