import subprocess
import sys


def test_public_api_imports_light():
    """`import docqa` exposes the API without loading torch, transformers or gradio."""
    code = (
        "import sys, docqa\n"
        "from docqa import Pipeline, Answer, Citation, Settings, answer\n"
        "heavy = ['torch', 'transformers', 'gradio', 'faiss', 'sentence_transformers']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_answer_to_dict_shape(make_pipeline):
    answer = make_pipeline("The harvest begins in March [1].").ask("When does the tea harvest begin?")
    d = answer.to_dict()
    assert {"id", "question", "answer", "abstained", "citations", "retrieved", "timings", "model"} <= set(d)
    assert {"n", "source", "chunk_id", "text", "score"} <= set(d["citations"][0])
    assert d["citations"][0]["source"] == "yunnan.txt"
    assert set(d["retrieved"][0]) == set(d["citations"][0]) - {"supports"}
